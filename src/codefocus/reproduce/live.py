"""A live model's results scored beside the five study models of Kou et al. (FSE 2024).

``compare`` takes results in the study's stored format (``{prompt text: [[unit, score], ...]}``
per model and method, read by ``read_added`` from a folder of ``{method}_{model}.json.gz`` files
or from a study directory) and scores them by the very code path that scores the study's files
(``kou2024.stored_counts``: ``prompt_units`` -> ``PromptAlignment`` -> ``pool``, recall divided by
the study's label-row count), so a stored file written back under another name scores exactly
as the study model it came from.

Uncertainty of a live row: a 95% percentile bootstrap over prompts. Each resample draws the
prompts with replacement, pools the drawn prompts' counts and recomputes P, R, F1 and alpha; the
recall denominator of a resample is the sum of the drawn prompts' labelled rows (the study's
denominator, resampled). One set of draws serves every method and K of a live model, over the
union of the prompts its files hold (a prompt a file lacks counts nothing in it), so that the
ranking of its methods can be bootstrapped too: Spearman's rho between the live F1 at K = 10 of
the methods it ran and the study's Table 3 (mean of the five open models) for those methods, with
an interval from the same resamples (the study's means are held fixed). Fewer than three methods
in common give no rho.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codefocus.data.paths import resolve_data_dir
from codefocus.errors import DataError, InvalidArgumentError, UnknownNameError
from codefocus.metrics.alignment import check_k
from codefocus.metrics.stats import (
    Interval,
    _pooled,
    _table,
    percentile_interval,
    resample_weights,
)
from codefocus.reproduce import kou2024
from codefocus.reproduce.kou2024 import (
    DEFAULT_KS,
    MEAN_MODEL,
    METHODS,
    MODELS,
    OPEN_MODELS,
    ReproductionRow,
    StoredCounts,
)
from codefocus.serialization import JsonRecord

Stored = dict[str, list[list]]
Added = Mapping[tuple[str, str], Mapping[str, list]]

STUDY_FILE = "study.sqlite"
SUFFIX = ".json.gz"
RANK_K = 10
RESAMPLES = 1000
# codefocus's names of the two perturbation methods, accepted for the study's
ALIASES = {"bert_masking": "bert_perturbation", "shap": "shap_perturbation"}


@dataclass(frozen=True)
class LiveRow(JsonRecord):
    """A live model's Table 2 cell group with 95% bootstrap intervals (``estimate`` = the row's)."""

    row: ReproductionRow
    precision_interval: Interval
    recall_interval: Interval
    f1_interval: Interval
    alpha_interval: Interval
    resamples: int = RESAMPLES

    def to_json_line(self, precise: bool = False) -> str:
        """The row's line (``ReproductionRow.to_json_line``) with the F1 and alpha intervals
        (``f1_low``, ``f1_high``, ``alpha_low``, ``alpha_high``) and ``"live": true``."""
        record = json.loads(self.row.to_json_line(precise))
        for name, interval, digits in (
            ("f1", self.f1_interval, 3),
            ("alpha", self.alpha_interval, 2),
        ):
            record[f"{name}_low"] = _number(interval.low, None if precise else digits)
            record[f"{name}_high"] = _number(interval.high, None if precise else digits)
        record["live"] = True
        return json.dumps(record)


@dataclass(frozen=True)
class LiveRanking(JsonRecord):
    """Spearman's rho between a live model's ranking of its methods (F1 at ``k``) and the
    study's Table 3 ranking of the same methods, with a 95% bootstrap interval over prompts;
    ``None`` with fewer than three methods in common (or no variation to rank)."""

    model: str
    k: int
    methods: list[str]
    spearman: float | None
    spearman_low: float | None
    spearman_high: float | None

    def to_json_line(self, precise: bool = False) -> str:
        digits = None if precise else 3
        return json.dumps(
            {
                "model": self.model,
                "spearman": _number(self.spearman, digits),
                "spearman_low": _number(self.spearman_low, digits),
                "spearman_high": _number(self.spearman_high, digits),
                "methods": len(self.methods),
            }
        )


@dataclass(frozen=True)
class LiveComparison(JsonRecord):
    """Table 2 of the study's models (``rows``), the live rows, Table 3 (``means``, ``mean5``)
    and each live model's rank correlation with Table 3."""

    rows: list[ReproductionRow]
    live: list[LiveRow]
    means: list[ReproductionRow]
    rankings: list[LiveRanking]

    @property
    def live_models(self) -> list[str]:
        return list(dict.fromkeys(r.row.model for r in self.live))


def _number(value: float | None, digits: int | None) -> float | None:
    if value is None or math.isnan(value):
        return None
    return value if digits is None else round(value, digits)


# ---------------------------------------------------------------- reading added results


def parse_stored_name(name: str) -> tuple[str, str]:
    """``reading_first_default.json.gz`` -> (``default``, ``reading_first``): (model, method)."""
    if name.endswith(SUFFIX):
        stem = name[: -len(SUFFIX)]
        for method in sorted(METHODS, key=len, reverse=True):
            if stem.startswith(method + "_") and len(stem) > len(method) + 1:
                return stem[len(method) + 1 :], method
    raise DataError(
        f"{name}: not a {{method}}_{{model}}{SUFFIX} file name (methods: {', '.join(METHODS)})"
    )


def read_added(path: str | Path) -> dict[tuple[str, str], Stored]:
    """Results in the study's stored format, keyed by (model, method): from a folder of
    ``{method}_{model}.json.gz`` files, or from a study directory (it holds ``study.sqlite``)."""
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root} is not a directory")
    if (root / STUDY_FILE).is_file():
        from codefocus.studies.export import stored_results

        results = stored_results(root)
        if not results:
            raise DataError(f"{root}: the study holds no finished method results")
        return check_added(results, str(root))
    files = sorted(p for p in root.iterdir() if p.name.endswith(SUFFIX))
    if not files:
        raise DataError(
            f"{root}: holds neither {{method}}_{{model}}{SUFFIX} files nor a {STUDY_FILE}"
        )
    keys = []
    for file in files:
        try:
            keys.append(check_key(*parse_stored_name(file.name), str(root)))
        except DataError as error:
            raise DataError(f"{root}: {error}") from None
    added = {key: kou2024.load_stored(file) for key, file in zip(keys, files, strict=True)}
    return check_added(added, str(root))


def check_added(added: Added, source: str = "added results") -> dict[tuple[str, str], Stored]:
    """Method names made the study's (``bert_masking`` -> ``bert_perturbation``), each checked
    known, and no model named like one of the study's (or its mean)."""
    checked: dict[tuple[str, str], Stored] = {}
    for key, stored in added.items():
        model, method = check_key(*key, source)
        if (model, method) in checked:
            raise InvalidArgumentError(f"{source}: two results of {model} for {method}")
        if not isinstance(stored, Mapping):
            raise DataError(f"{source}: {model} {method}: expected prompt -> [[unit, score], ...]")
        checked[(model, method)] = dict(stored)
    return checked


def check_key(model: str, method: str, source: str = "added results") -> tuple[str, str]:
    """(model, method) with the study's method name; the model must not be named like one of
    the study's (or its mean), so that its rows cannot be taken for the study's."""
    method = ALIASES.get(method, method)
    if method not in METHODS:
        raise UnknownNameError(
            f"{source}: unknown method {method!r}: choose from {', '.join(METHODS)}"
        )
    if not model or not isinstance(model, str):
        raise InvalidArgumentError(f"{source}: a result of {method} has no model name")
    if model in MODELS or model == MEAN_MODEL:
        raise InvalidArgumentError(
            f"{source}: model name {model!r} is one of the study's "
            f"({', '.join((*MODELS, MEAN_MODEL))}); give the live model another name"
        )
    return model, method


def merge_added(parts: Sequence[Added]) -> dict[tuple[str, str], Stored]:
    """Several ``read_added`` results as one; the same (model, method) twice is an error."""
    merged: dict[tuple[str, str], Stored] = {}
    for part in parts:
        for (model, method), stored in part.items():
            if (model, method) in merged:
                raise InvalidArgumentError(f"{model} {method} is given twice")
            merged[(model, method)] = dict(stored)
    return merged


# ---------------------------------------------------------------- the bootstrap


def counts_table(
    counts: StoredCounts, k: int, universe: Mapping[str, int], rows_per_prompt: Mapping[str, int]
) -> np.ndarray:
    """``metrics.stats``' per-prompt table of one result at K, one row per prompt of
    ``universe`` (zeros where the result lacks it), the human-span column replaced by the
    prompt's labelled rows: the study's recall denominator, per prompt."""
    table = np.zeros((len(universe), 8))
    index = [universe[text] for text in counts.prompts]
    table[index] = _table(counts.counts[k])
    table[index, 3] = [rows_per_prompt.get(text, 0) for text in counts.prompts]
    return table


def rank_correlation(
    live: Sequence[float],
    resampled: np.ndarray,
    reference: Sequence[float],
    confidence: float = 0.95,
) -> tuple[float | None, float | None, float | None]:
    """Spearman's rho of ``live`` with ``reference`` (scipy), and the percentile interval of
    rho over ``resampled`` (resamples x methods live values; the reference held fixed)."""
    from scipy.stats import spearmanr

    if len(live) < 3:
        return None, None, None

    def rho_of(values) -> float:
        with warnings.catch_warnings():  # no variation to rank: NaN, left out below
            warnings.simplefilter("ignore")
            return float(spearmanr(values, reference).statistic)

    rho = rho_of(live)
    rhos = np.array([rho_of(values) for values in np.asarray(resampled, dtype=np.float64)])
    interval = percentile_interval(rho, rhos, confidence)
    low, high = interval.low, interval.high
    return (
        None if math.isnan(rho) else rho,
        None if math.isnan(low) else low,
        None if math.isnan(high) else high,
    )


def score_live(
    model: str,
    results: Mapping[str, Stored],
    labels: kou2024.StudyLabels,
    ks: Sequence[int],
    rank_k: int = RANK_K,
    resamples: int = RESAMPLES,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[list[LiveRow], dict[str, tuple[float, np.ndarray]]]:
    """One live model's rows (``results``: method -> stored result) with intervals, and per
    method its F1 at ``rank_k`` with that F1 in every resample (for the ranking)."""
    score_ks = sorted({*ks, rank_k})
    counts = {
        method: kou2024.stored_counts(stored, labels, score_ks, f"{model} {method}")
        for method, stored in results.items()
    }
    universe = {
        text: i
        for i, text in enumerate(dict.fromkeys(t for c in counts.values() for t in c.prompts))
    }
    if resamples <= 0:
        raise InvalidArgumentError(f"resamples must be positive, got {resamples}")
    weights = resample_weights(max(len(universe), 1), resamples, seed)[:, : len(universe)]
    rows: list[LiveRow] = []
    ranked: dict[str, tuple[float, np.ndarray]] = {}
    for method, stored_count in counts.items():
        for k in score_ks:
            row = ReproductionRow.from_scores(model, method, stored_count.scores([k])[0])
            resampled = _pooled(
                weights @ counts_table(stored_count, k, universe, labels.rows_per_prompt)
            )
            if k == rank_k:
                ranked[method] = (row.f1, resampled["f1"])
            if k not in ks:
                continue
            rows.append(
                LiveRow(
                    row,
                    percentile_interval(row.precision, resampled["precision"], confidence),
                    percentile_interval(row.recall, resampled["recall"], confidence),
                    percentile_interval(row.f1, resampled["f1"], confidence),
                    percentile_interval(row.alpha, resampled["alpha"], confidence),
                    resamples,
                )
            )
    return rows, ranked


# ---------------------------------------------------------------- the comparison


def compare(
    added: Added,
    data_dir: str | Path | None = None,
    ks: Sequence[int] = DEFAULT_KS,
    models: Sequence[str] = OPEN_MODELS,
    methods: Sequence[str] | None = None,
    resamples: int = RESAMPLES,
    seed: int = 0,
    rank_k: int = RANK_K,
    workers: int | None = None,
) -> LiveComparison:
    """The study's Table 2 rows of ``models`` and Table 3, each added model's rows with 95%
    bootstrap intervals, and each added model's rank correlation with Table 3.

    ``added`` maps (model, method) to a stored result (``{prompt: [[unit, score], ...]}``);
    ``methods`` (default: those of ``added``) selects the methods scored, added results of
    other methods are left out.
    """
    checked = check_added(added)
    ks = list(dict.fromkeys(check_k(k) for k in ks))
    rank_k = check_k(rank_k)
    if methods is None:
        methods = [m for m in METHODS if any(method == m for _, method in checked)]
    methods = [ALIASES.get(m, m) for m in methods]
    for method in methods:
        if method not in METHODS:
            raise UnknownNameError(f"unknown method {method!r}: choose from {', '.join(METHODS)}")
    study = kou2024.reproduce(data_dir, list(models), methods, ks, workers) if models else []
    rows = [r for r in study if r.model != MEAN_MODEL]
    means = [r for r in study if r.model == MEAN_MODEL]
    labels = kou2024.study_labels(resolve_data_dir(data_dir))

    live: list[LiveRow] = []
    ranked: dict[str, dict[str, tuple[float, np.ndarray]]] = {}
    for model in dict.fromkeys(model for model, _ in checked):
        results = {m: checked[(model, m)] for m in methods if (model, m) in checked}
        if not results:
            continue
        model_rows, ranked[model] = score_live(model, results, labels, ks, rank_k, resamples, seed)
        live += model_rows

    reference = _reference(
        [m for model_ranked in ranked.values() if len(model_ranked) >= 3 for m in model_ranked],
        means,
        rank_k,
        data_dir,
        workers,
    )
    rankings = []
    for model, by_method in ranked.items():
        if len(by_method) < 3:  # too few to rank: no reference needed
            rankings.append(LiveRanking(model, rank_k, list(by_method), None, None, None))
            continue
        common = [m for m in by_method if m in reference]
        rho, low, high = rank_correlation(
            [by_method[m][0] for m in common],
            np.stack([by_method[m][1] for m in common], axis=1) if common else np.zeros((0, 0)),
            [reference[m] for m in common],
        )
        rankings.append(LiveRanking(model, rank_k, common, rho, low, high))
    return LiveComparison(rows, live, means, rankings)


def _reference(
    methods: Sequence[str],
    means: Sequence[ReproductionRow],
    k: int,
    data_dir: str | Path | None,
    workers: int | None,
) -> dict[str, float]:
    """Table 3's F1 at K of ``methods`` (the study's ranking), scoring what is not at hand."""
    needed = list(dict.fromkeys(methods))
    reference = {r.method: r.f1 for r in means if r.k == k and r.method in needed}
    missing = [m for m in needed if m not in reference]
    if missing:
        rows = kou2024.reproduce(data_dir, list(OPEN_MODELS), missing, [k], workers)
        reference |= {r.method: r.f1 for r in rows if r.model == MEAN_MODEL}
    return reference
