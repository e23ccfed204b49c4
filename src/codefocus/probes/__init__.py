"""Attention-guided robustness probes: do the words a model attends to most break its code when
they change? ``runner`` plans and runs the probes (resumable), ``analysis`` computes break
rates with bootstrap intervals and paired tests against random words."""
