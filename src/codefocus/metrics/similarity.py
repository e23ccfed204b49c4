"""Similarity of two pieces of code, for perturbation methods and for code without tests.

* ``study_bleu``: what Kou et al. used — NLTK ``sentence_bleu`` on whitespace tokens, default
  4-gram weights, no smoothing (so any missing n-gram order gives 0).
* ``smoothed_bleu``: the same NLTK BLEU with Chen & Cherry's smoothing method 1 (epsilon counts
  for missing n-gram orders), so a short completion that differs in one token is not called
  maximally different.
* ``sacre_bleu``: sacrebleu's sentence BLEU (13a tokenisation, exponential smoothing), in [0, 1].
* ``code_bleu``: CodeBLEU through the ``codebleu`` package. Its 0.7.0 release pins
  tree-sitter < 0.23 yet only works with the 0.23 grammars, so pip cannot resolve it as a normal
  dependency: install it with ``pip install --no-deps codebleu==0.7.0`` beside
  ``tree-sitter==0.23.2 tree-sitter-python==0.23.6`` (the README's test command does).
"""

from __future__ import annotations

import warnings

from codefocus.errors import CodefocusError


def study_bleu(reference: str, candidate: str) -> float:
    from nltk.translate.bleu_score import sentence_bleu

    with warnings.catch_warnings():  # NLTK warns when an n-gram order has no overlap
        warnings.simplefilter("ignore")
        return float(sentence_bleu([reference.split()], candidate.split()))


def smoothed_bleu(reference: str, candidate: str) -> float:
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(
            sentence_bleu(
                [reference.split()],
                candidate.split(),
                smoothing_function=SmoothingFunction().method1,
            )
        )


def sacre_bleu(reference: str, candidate: str) -> float:
    import sacrebleu

    return float(sacrebleu.sentence_bleu(candidate, [reference]).score / 100.0)


def code_bleu(reference: str, candidate: str, language: str = "python") -> float:
    try:
        from codebleu import calc_codebleu
    except ImportError:
        raise CodefocusError(
            "CodeBLEU needs the codebleu package: pip install --no-deps codebleu==0.7.0 "
            "tree-sitter==0.23.2 tree-sitter-python==0.23.6"
        ) from None
    return float(calc_codebleu([reference], [candidate], lang=language)["codebleu"])


SIMILARITIES = {
    "bleu": study_bleu,
    "bleu-smooth": smoothed_bleu,
    "sacrebleu": sacre_bleu,
    "codebleu": code_bleu,
}


def check_similarity(metric: str) -> str:
    if metric not in SIMILARITIES:
        from codefocus.errors import UnknownNameError

        raise UnknownNameError(
            f"unknown similarity {metric!r}: choose from {', '.join(SIMILARITIES)}"
        )
    return metric


def dissimilarity(reference: str, candidate: str, metric: str = "bleu") -> float:
    """1 - similarity: the importance score of a perturbation (the study's 1 - BLEU).

    Identical code is 0 in every setting: unsmoothed BLEU of a completion with fewer than four
    whitespace tokens is 0 even against itself, which would call an unchanged output maximally
    different. (For ``bleu`` "identical" means the same whitespace tokens, what BLEU compares.)
    """
    check_similarity(metric)
    if reference == candidate or (
        metric.startswith("bleu") and reference.split() == candidate.split()
    ):
        return 0.0
    value = 1.0 - SIMILARITIES[metric](reference, candidate)
    return min(1.0, max(0.0, value))  # sacrebleu's 100.0 / 100 can land a hair above 1
