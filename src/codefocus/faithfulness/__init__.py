"""Which attribution can you trust? Faithfulness to the model beside alignment with programmers.

``evaluate_faithfulness(model, attribution)`` (or ``Attribution.faithfulness(model)``) measures,
per method, how the model's log-probability of its own code moves when the method's top-ranked
words are left out or kept alone (comprehensiveness, sufficiency, AOPC), against random and
lowest-ranked controls; whether greedy code changes; and the linear datamodeling score.
``summarize`` puts many tasks' results beside the methods' alignment, with bootstrap intervals.
"""

from codefocus.faithfulness.evaluate import PERTURBATIONS, evaluate_faithfulness
from codefocus.faithfulness.results import Faithfulness, MethodFaithfulness
from codefocus.faithfulness.summary import MethodSummary, summarize

__all__ = [
    "PERTURBATIONS",
    "Faithfulness",
    "MethodFaithfulness",
    "MethodSummary",
    "evaluate_faithfulness",
    "summarize",
]
