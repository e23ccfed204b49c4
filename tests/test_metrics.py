import krippendorff
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score

from codefocus.errors import InvalidArgumentError
from codefocus.metrics.alignment import (
    PromptAlignment,
    PromptCounts,
    PromptUnits,
    align,
    alpha_from_pairs,
    cohen_kappa_from_pairs,
    overlap_matrix,
    per_prompt,
    pool,
    top_k_indices,
    unit_flags,
)
from codefocus.metrics.stats import (
    bootstrap,
    bootstrap_mean,
    paired_mean_test,
    paired_permutation_test,
)


def test_top_k_breaks_ties_by_position_and_ranks_nan_last():
    assert list(top_k_indices([0.5, 0.9, 0.5, 0.9, np.nan], 3)) == [1, 3, 0]
    assert list(top_k_indices([np.nan, 0.1], 2)) == [1, 0]
    assert list(top_k_indices([1.0], 5)) == [0]
    with pytest.raises(InvalidArgumentError):
        top_k_indices([1.0], 0)


def test_san_martino_hand_computed():
    # units: [0,4) [5,10) [11,15); human spans: [0,4) and [7,15)
    prompt = PromptUnits.build(
        "p",
        [(0, 4), (5, 10), (11, 15)],
        [0.9, 0.8, 0.1],
        [(0, 4), (7, 15)],
        ["datatype", "operator"],
    )
    (scores,) = align([prompt], ks=[2])
    # top-2 = [0,4) and [5,10).  Overlaps: h1∩m1 = 4, h2∩m2 = 3 ([7,10))
    # P = (4/4 + 3/5) / 2 = 0.8 ; R = (4/4 + 3/8) / 2 = 0.6875
    assert scores.precision == pytest.approx(0.8)
    assert scores.recall == pytest.approx(0.6875)
    assert scores.f1 == pytest.approx(2 * 0.8 * 0.6875 / (0.8 + 0.6875))
    assert scores.coverage == pytest.approx(1.0)
    assert scores.per_category_recall == {"datatype": 1.0, "operator": pytest.approx(0.375)}
    # unit flags: human = [1,1,1], model = [1,1,0]
    assert scores.kappa == pytest.approx(0.0)


def test_pooling_is_micro_not_macro():
    a = PromptUnits.build("a", [(0, 2)], [1.0], [(0, 2)])
    b = PromptUnits.build("b", [(0, 2), (3, 5)], [1.0, 0.5], [(3, 5), (6, 8), (9, 10)])
    pooled = align([a, b], ks=[1])[0]
    # a: P=1, R=1 (1 human); b: P=0, R=0 (3 humans) -> micro R = 1/4, P = 1/2
    assert pooled.precision == pytest.approx(0.5)
    assert pooled.recall == pytest.approx(0.25)
    singles = per_prompt([a, b], 1)
    assert [s.recall for s in singles] == [1.0, 0.0]


def test_recall_denominator_override():
    a = PromptUnits.build("a", [(0, 2)], [1.0], [(0, 2)])
    assert align([a], ks=[1], recall_denominator=4)[0].recall == pytest.approx(0.25)


def test_overlap_matrix_half_open():
    assert overlap_matrix(np.array([[0, 5]]), np.array([[5, 8], [4, 6], [0, 10]])).tolist() == [
        [0, 1, 5]
    ]


def test_unit_flags():
    units = np.array([[0, 3], [4, 8], [9, 12]])
    assert unit_flags(units, np.array([[5, 6]])).tolist() == [0, 1, 0]


pairs_strategy = st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1)), min_size=2, max_size=60)


@given(pairs_strategy)
def test_alpha_closed_form_equals_krippendorff_package(pairs):
    a = [p[0] for p in pairs]
    b = [p[1] for p in pairs]
    counts = [sum(1 for p in pairs if p == v) for v in [(0, 0), (0, 1), (1, 0), (1, 1)]]
    ours = alpha_from_pairs(*counts)
    if len(set(a + b)) < 2:
        assert np.isnan(ours)
        return
    reference = krippendorff.alpha(reliability_data=[a, b], level_of_measurement="nominal")
    assert ours == pytest.approx(reference, abs=1e-12)
    assert alpha_from_pairs(counts[0], counts[2], counts[1], counts[3]) == pytest.approx(ours)


@given(pairs_strategy)
def test_kappa_equals_sklearn(pairs):
    a = [p[0] for p in pairs]
    b = [p[1] for p in pairs]
    counts = [sum(1 for p in pairs if p == v) for v in [(0, 0), (0, 1), (1, 0), (1, 1)]]
    ours = cohen_kappa_from_pairs(*counts)
    if np.isnan(ours):
        return
    assert ours == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)


@st.composite
def prompts(draw):
    n_units = draw(st.integers(1, 12))
    bounds = sorted(
        draw(st.lists(st.integers(0, 100), min_size=2 * n_units, max_size=2 * n_units, unique=True))
    )
    units = [(bounds[2 * i], bounds[2 * i + 1]) for i in range(n_units)]
    scores = draw(st.lists(st.floats(0, 1), min_size=n_units, max_size=n_units))
    humans = []
    for _ in range(draw(st.integers(1, 5))):
        s = draw(st.integers(0, 99))
        humans.append((s, draw(st.integers(s + 1, 101))))
    return PromptUnits.build("p", units, scores, humans)


@settings(max_examples=60, deadline=None)
@given(st.lists(prompts(), min_size=1, max_size=4), st.integers(1, 15))
def test_metric_bounds(batch, k):
    s = align(batch, ks=[k])[0]
    # a unit may overlap several (overlapping) human spans, so P and R are bounded by the
    # overlap multiplicity, but never negative; coverage is a share
    assert s.precision >= 0 and s.recall >= 0
    assert 0 <= s.coverage <= 1
    assert np.isnan(s.alpha) or -1 <= s.alpha <= 1


@settings(max_examples=60, deadline=None)
@given(prompts())
def test_precision_recall_swap_when_roles_swap(prompt):
    """With every unit selected and disjoint spans, swapping units and human spans swaps P and R."""
    human = [tuple(h) for h in prompt.unit_spans.tolist()]
    predicted = [(0, 5), (10, 20)]
    forward = PromptUnits.build("f", predicted, [1.0, 1.0], human)
    backward = PromptUnits.build("b", human, [1.0] * len(human), predicted)
    f = align([forward], ks=[len(predicted)])[0]
    b = align([backward], ks=[len(human)])[0]
    assert f.precision == pytest.approx(b.recall)
    assert f.recall == pytest.approx(b.precision)


def test_alpha_perfect_and_chance():
    assert alpha_from_pairs(5, 0, 0, 5) == pytest.approx(1.0)
    assert alpha_from_pairs(0, 5, 5, 0) < 0


def _counts(seed, n=40):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        units = [(j * 5, j * 5 + 4) for j in range(10)]
        human = [units[j] for j in rng.choice(10, 3, replace=False)]
        out.append(
            PromptAlignment(PromptUnits.build(str(i), units, rng.random(10), human)).counts(3)
        )
    return out


def test_bootstrap_interval_contains_estimate():
    counts = _counts(1)
    intervals = bootstrap(counts, resamples=300, seed=3)
    pooled = pool(counts, 3)
    for name in ("precision", "recall", "f1", "alpha"):
        iv = intervals[name]
        assert iv.estimate == pytest.approx(getattr(pooled, name))
        assert iv.low <= iv.estimate <= iv.high
        assert iv.high - iv.low > 0


def _as_precision(values) -> list[PromptCounts]:
    """Prompts whose pooled precision is the plain mean of ``values`` (one top word each)."""
    return [PromptCounts(float(v), 0.0, 1, 0, (0, 0, 0, 0), 0) for v in values]


def test_the_mean_bootstrap_and_paired_test_draw_as_the_pooled_ones():
    # a mean is pooled precision with one top word per prompt: the same seed must draw the same
    # resamples and swaps, so the same interval and p-value (bit for bit on 0/1 values, whose
    # sums are exact; to rounding on others)
    rng = np.random.default_rng(4)
    for values, others, exact in (
        (rng.integers(0, 2, 13).astype(float), rng.integers(0, 2, 13).astype(float), True),
        (rng.random(40), rng.random(40), False),
    ):
        for seed in (0, 7):
            pooled = bootstrap(_as_precision(values), resamples=300, seed=seed)["precision"]
            mean = bootstrap_mean(values, resamples=300, seed=seed)
            test = paired_permutation_test(
                _as_precision(values), _as_precision(others), "precision", 500, seed
            )
            paired = paired_mean_test(values, others, permutations=500, seed=seed)
            ours = (mean.estimate, mean.low, mean.high, paired.difference, paired.p_value)
            theirs = (pooled.estimate, pooled.low, pooled.high, test.difference, test.p_value)
            assert ours == (theirs if exact else pytest.approx(theirs, rel=1e-12, abs=1e-15))
    assert paired_mean_test([0.5, 1.0], [0.5, 1.0], 100).p_value == 1.0
    with pytest.raises(InvalidArgumentError):
        bootstrap_mean([])
    with pytest.raises(InvalidArgumentError):
        paired_mean_test([1.0], [1.0, 0.0])


def test_paired_test_same_method_is_not_significant_and_different_is():
    counts = _counts(1)
    same = paired_permutation_test(counts, counts, permutations=200)
    assert same.difference == 0 and same.p_value == 1.0
    # a method that always selects the human spans beats a random one
    perfect = []
    rng = np.random.default_rng(1)
    for i in range(40):
        units = [(j * 5, j * 5 + 4) for j in range(10)]
        chosen = rng.choice(10, 3, replace=False)
        scores = np.zeros(10)
        scores[chosen] = 1
        human = [units[j] for j in chosen]
        perfect.append(PromptAlignment(PromptUnits.build(str(i), units, scores, human)).counts(3))
    random_method = _counts(2)
    test = paired_permutation_test(perfect, random_method, permutations=500)
    assert test.difference > 0.3 and test.p_value < 0.01
    with pytest.raises(InvalidArgumentError):
        paired_permutation_test(perfect, random_method[:3])


def _naive_counts(prompt: PromptUnits, k: int) -> PromptCounts:
    """Each K from scratch, as the metric is defined (the reference for ``PromptAlignment``)."""
    human_vs_unit = overlap_matrix(prompt.human_spans, prompt.unit_spans).astype(float)
    unit_lengths = np.maximum(prompt.unit_spans[:, 1] - prompt.unit_spans[:, 0], 1)
    human_lengths = prompt.human_spans[:, 1] - prompt.human_spans[:, 0]
    top = top_k_indices(prompt.scores, k)
    shared = human_vs_unit[:, top]
    with np.errstate(divide="ignore", invalid="ignore"):
        per_human = np.where(human_lengths[:, None] > 0, shared / human_lengths[:, None], 0.0).sum(
            axis=1
        )
    unit_vs_unit = overlap_matrix(prompt.unit_spans, prompt.unit_spans) > 0
    h = (human_vs_unit > 0).any(axis=0)
    m = unit_vs_unit[:, top].any(axis=1) if len(top) else np.zeros(len(h), dtype=bool)
    category_sum: dict[str, float] = {}
    category_count: dict[str, int] = {}
    for index, category in enumerate(prompt.human_categories):
        category_sum[category] = category_sum.get(category, 0.0) + float(per_human[index])
        category_count[category] = category_count.get(category, 0) + 1
    return PromptCounts(
        precision_sum=float((shared / unit_lengths[top]).sum()),
        recall_sum=float(per_human.sum()),
        n_top=len(top),
        n_human=len(human_lengths),
        pairs=(
            int((~h & ~m).sum()),
            int((~h & m).sum()),
            int((h & ~m).sum()),
            int((h & m).sum()),
        ),
        covered_human=int((shared > 0).any(axis=1).sum()),
        category_recall_sum=category_sum,
        category_count=category_count,
    )


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(0, 25),
    st.integers(0, 6),
    st.sampled_from([1, 3, 5, 10, 40]),
    st.booleans(),
)
def test_prompt_alignment_equals_each_k_from_scratch_bit_for_bit(
    seed, n_units, n_human, k, disjoint
):
    rng = np.random.default_rng(seed)
    if disjoint:  # a tokenizer's units: one after another, some empty
        ends = np.cumsum(rng.integers(0, 6, n_units))
        units = [
            (int(e - w), int(e)) for e, w in zip(ends, rng.integers(0, 3, n_units), strict=True)
        ]
        units = [(max(a, int(ends[i - 1]) if i else 0), b) for i, (a, b) in enumerate(units)]
    else:  # overlaps, empty units
        starts = np.sort(rng.integers(0, 120, n_units))
        units = [(int(a), int(a + rng.integers(0, 9))) for a in starts]
    scores = rng.choice([0.0, 0.25, 0.5, np.nan, *rng.random(4)], n_units)  # ties and NaN
    human_starts = rng.integers(0, 120, n_human)
    human = [(int(a), int(a + rng.integers(0, 15))) for a in human_starts]  # empty spans too
    categories = [str(rng.choice(["a", "b", "c"])) for _ in human]
    prompt = PromptUnits.build("p", units, scores, human, categories)
    assert PromptAlignment(prompt).counts(k) == _naive_counts(prompt, k)
