"""The code-classification lab: datasets, attention-pooled classifiers, AutoFocus analysis."""
