import math

import pytest

from codefocus.errors import UnknownNameError
from codefocus.metrics.similarity import code_bleu, dissimilarity, sacre_bleu, study_bleu

CODE = "def add(a, b):\n    total = a + b\n    return total\n"


def test_study_bleu_identical_and_disjoint():
    assert study_bleu(CODE, CODE) == pytest.approx(1.0)
    assert study_bleu(CODE, "x y z w v") == 0.0


def test_study_bleu_hand_computed():
    # 5 tokens vs 5 tokens, one substitution at the end:
    # p1 = 4/5, p2 = 3/4, p3 = 2/3, p4 = 1/2, no brevity penalty
    reference = "a b c d e"
    candidate = "a b c d x"
    expected = math.exp((math.log(4 / 5) + math.log(3 / 4) + math.log(2 / 3) + math.log(1 / 2)) / 4)
    assert study_bleu(reference, candidate) == pytest.approx(expected)


def test_sacrebleu_bounds():
    assert sacre_bleu(CODE, CODE) == pytest.approx(1.0)
    assert 0.0 <= sacre_bleu(CODE, "def add(a, b): return b") < 1.0


def test_codebleu_rewards_renamed_but_equal_code():
    renamed = "def add(x, y):\n    s = x + y\n    return s\n"
    assert code_bleu(CODE, CODE) == pytest.approx(1.0)
    # identical syntax and data flow, different names: CodeBLEU stays above plain BLEU
    assert code_bleu(CODE, renamed) > study_bleu(CODE, renamed)


def test_dissimilarity():
    assert dissimilarity(CODE, CODE) == pytest.approx(0.0)
    with pytest.raises(UnknownNameError):
        dissimilarity(CODE, CODE, "rouge")


@pytest.mark.parametrize("metric", ["bleu", "bleu-smooth", "sacrebleu", "codebleu"])
def test_identical_short_code_is_not_different(metric):
    # unsmoothed BLEU of fewer than 4 tokens is 0 even against itself: 1 - BLEU must still be 0
    short = "    return len(string)\n"
    assert dissimilarity(short, short, metric) == 0.0
    assert dissimilarity(short, short.rstrip("\n"), "bleu") == 0.0  # same whitespace tokens


def test_smoothed_bleu_gives_partial_credit_to_short_code():
    a, b = "    return len(string)\n", "    return len(text)\n"
    assert dissimilarity(a, b, "bleu") == 1.0  # the study's setting, kept for reproduction
    assert 0.0 < dissimilarity(a, b, "bleu-smooth") < 1.0
