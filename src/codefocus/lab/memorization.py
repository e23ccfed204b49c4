"""Memorization vs generalization (Rabin et al.): train on noised labels, watch what changes.

A model that fits random labels as well as real ones has memorized; held-out accuracy alone does
not show it. For every noise level the same classifier (same initialisation, same batch order) is
trained for a fixed number of epochs, and after each epoch we record train/test accuracy and F1,
the test predicted scores, the Gini coefficient of the per-sample training loss and the critical
sample ratio under single-variable renaming. Each finished level is written at once; a re-run
skips finished levels.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from codefocus.errors import InvalidArgumentError, UnknownNameError
from codefocus.lab.classifier import CodeClassifier, Vocabulary, pad_ids
from codefocus.lab.datasets import LabDataset, Sample
from codefocus.lab.parsing import delete, parse
from codefocus.lab.renaming import single_renamings

NOISE_KINDS = ("label", "input")
# Classifier sizes: the AutoFocus-style attention-pooled transformer, and attention pooling over
# token embeddings alone (no encoder) as a lower-capacity contrast.
MODELS = {"transformer": {"dim": 64, "layers": 2}, "attention-bag": {"dim": 64, "layers": 0}}


# ---------------------------------------------------------------- noise


def label_noise(labels: list[int], share: float, classes: int, seed: int) -> list[int]:
    """Labels with exactly round(share * n) of them replaced by a different, random label.

    Seeded; the noised samples of a smaller share are a subset of a larger share's, and a sample
    gets the same wrong label at every level, so levels differ only in how much is noised.
    """
    if not 0.0 <= share <= 1.0:
        raise InvalidArgumentError(f"noise share must be in [0, 1], got {share}")
    if classes < 2 and share > 0:
        raise InvalidArgumentError("label noise needs at least two classes")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    offsets = rng.integers(1, max(classes, 2), size=len(labels))  # 1..classes-1: never the same
    noised = list(labels)
    for index in order[: round(share * len(labels))]:
        noised[index] = int((labels[index] + offsets[index]) % classes)
    return noised


def input_noise(
    samples: list[Sample], share: float, language: str, seed: int, deleted: float = 0.5
) -> list[Sample]:
    """Samples with round(share * n) programs corrupted by deleting half of their statements.

    The label stays; the evidence for it is damaged (a second kind of noise, beside labels).
    """
    if not 0.0 <= share <= 1.0:
        raise InvalidArgumentError(f"noise share must be in [0, 1], got {share}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(samples))
    out = list(samples)
    for index in order[: round(share * len(samples))]:
        parsed = parse(samples[index].code, language)
        count = len(parsed.statements)
        if count == 0:
            continue
        chosen = rng.choice(count, size=max(1, math.ceil(deleted * count)), replace=False)
        out[index] = Sample(
            delete(parsed, {int(i) for i in chosen}), samples[index].label, samples[index].source
        )
    return out


# ---------------------------------------------------------------- metrics


def gini(values) -> float:
    """G = sum_i sum_j |x_i - x_j| / (2 n sum_i x_i), in O(n log n) by sorting.

    With x sorted ascending (1-based rank i), sum_i sum_j |x_i - x_j| = 2 sum_i (2i - n - 1) x_i.
    0 when every sample has the same loss; near 1 when one sample carries all of it.
    """
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    n = x.size
    total = x.sum()
    if n == 0 or total <= 0:
        return 0.0
    ranks = np.arange(1, n + 1)
    return float(np.sum((2 * ranks - n - 1) * x) / (n * total))


def macro_f1(truth, predicted, classes: int) -> float:
    """Unweighted mean over classes of F1 (a class absent from both counts as F1 0, as sklearn)."""
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    scores = []
    for c in range(classes):
        tp = np.sum((truth == c) & (predicted == c))
        fp = np.sum((truth != c) & (predicted == c))
        fn = np.sum((truth == c) & (predicted != c))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0


def subtokens(name: str) -> list[str]:
    """``getFileName`` / ``get_file_name`` -> ['get', 'file', 'name']."""
    words = []
    for part in re.split(r"[_\W]+", name):
        words += re.findall(r"[A-Z]+(?=[A-Z][a-z]|\d|$)|[A-Z]?[a-z]+|[A-Z]+|\d+", part)
    return [w.lower() for w in words if w]


def subtoken_f1(truth: list[str], predicted: list[str]) -> float:
    """Sub-token F1 of predicted method names (code2vec's measure, counts summed over samples)."""
    tp = fp = fn = 0
    for true_name, predicted_name in zip(truth, predicted, strict=True):
        want, got = subtokens(true_name), subtokens(predicted_name)
        remaining = list(want)
        for token in got:
            if token in remaining:
                remaining.remove(token)
                tp += 1
            else:
                fp += 1
        fn += len(remaining)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


# ---------------------------------------------------------------- results


@dataclass
class MemorizationConfig:
    dataset: str
    model: str = "transformer"
    noise_kind: str = "label"
    noise: list[int] = field(default_factory=lambda: [0, 25, 50, 75, 100])
    epochs: int = 30
    seed: int = 0
    batch_size: int = 16
    learning_rate: float = 1e-3
    max_len: int = 400
    renamings: int = 5  # variants per test program for the critical sample ratio
    csr_programs: int | None = None  # test programs used for CSR (None: all)
    per_class: int | None = None  # algorithms: files read per class (a subset)

    def key(self) -> str:
        """Identifies the configuration, so results of another one are never mixed in."""
        payload = {k: v for k, v in asdict(self).items() if k != "noise"}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    train_accuracy: float  # against the (noised) labels it was trained on: the fit
    train_f1: float
    train_accuracy_clean: float  # against the true labels
    test_accuracy: float
    test_f1: float
    gini: float
    csr: float
    test_scores: list[float]  # probability of the predicted label, per test program
    train_subtoken_f1: float | None = None
    test_subtoken_f1: float | None = None


@dataclass
class LevelResult:
    noise: int
    noise_kind: str
    noised_samples: int
    epochs: list[EpochRecord]
    config_key: str

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> LevelResult:
        return cls(**{**data, "epochs": [EpochRecord(**e) for e in data["epochs"]]})


@dataclass
class MemorizationResult:
    config: MemorizationConfig
    classes: list[str]
    sizes: dict[str, int]
    levels: list[LevelResult]

    def to_dict(self) -> dict:
        return {
            "config": asdict(self.config),
            "classes": self.classes,
            "sizes": self.sizes,
            "levels": [level.to_dict() for level in self.levels],
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> MemorizationResult:
        data = json.loads(Path(path).read_text())
        return cls(
            MemorizationConfig(**data["config"]),
            data["classes"],
            data["sizes"],
            [LevelResult.from_dict(level) for level in data["levels"]],
        )

    @property
    def dataset_is_names(self) -> bool:
        """Method-name data records sub-token F1, which then stands for F1."""
        return bool(self.levels) and self.levels[0].epochs[0].test_subtoken_f1 is not None

    def primary_f1(self, record: EpochRecord, split: str) -> float:
        """Sub-token F1 for method names (as the study), macro-F1 otherwise."""
        value = getattr(record, f"{split}_subtoken_f1")
        return value if value is not None else getattr(record, f"{split}_f1")


# ---------------------------------------------------------------- training


class _Encoded:
    """Token ids of a list of programs, for batching in any order."""

    def __init__(self, model: CodeClassifier, codes: list[str]) -> None:
        self.rows = [model.vocabulary.encode(c, model.language, model.max_len).ids for c in codes]

    def batches(self, size: int, order=None):
        order = range(len(self.rows)) if order is None else order
        order = list(order)
        for begin in range(0, len(order), size):
            chosen = order[begin : begin + size]
            yield chosen, pad_ids([self.rows[i] for i in chosen])


def _evaluate(model: CodeClassifier, encoded: _Encoded, labels: list[int] | None, size: int = 64):
    """Probabilities (n x classes) and, when labels are given, per-sample cross-entropy.

    Programs are batched by length (less padding); results come back in input order.
    """
    import torch

    model.net.eval()
    count = len(encoded.rows)
    probabilities = np.zeros((count, len(model.classes)), dtype=np.float64)
    losses = np.zeros(count, dtype=np.float64) if labels is not None else None
    by_length = sorted(range(count), key=lambda i: len(encoded.rows[i]))
    with torch.no_grad():
        for chosen, ids in encoded.batches(size, by_length):
            logits, _ = model.net(ids)
            probabilities[chosen] = torch.softmax(logits, -1).double().numpy()
            if losses is not None:
                target = torch.tensor([labels[i] for i in chosen])
                losses[chosen] = torch.nn.functional.cross_entropy(
                    logits, target, reduction="none"
                ).numpy()
    return probabilities, losses


def _critical_ratio(model: CodeClassifier, base: np.ndarray, variants: list[list[str]], encoded):
    """Share of programs whose prediction changes under at least one single renaming.

    ``variants[i]`` are the renamed versions of the program predicted ``base[i]``; a program
    with no variable to rename counts as not critical (it is still one of "all").
    """
    if not variants:
        return float("nan")
    predicted = _evaluate(model, encoded, None)[0].argmax(1) if len(encoded.rows) else []
    critical, cursor = 0, 0
    for program, group in enumerate(variants):
        if any(predicted[cursor + k] != base[program] for k in range(len(group))):
            critical += 1
        cursor += len(group)
    return critical / len(variants)


def train_level(
    dataset: LabDataset,
    vocabulary: Vocabulary,
    config: MemorizationConfig,
    noise: int,
    renamed: list[list[str]],
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> LevelResult:
    """Train one noise level from the shared initialisation; a record per epoch."""
    import torch

    true_labels = [s.label for s in dataset.train]
    train = dataset.train
    if config.noise_kind == "label":
        labels = label_noise(true_labels, noise / 100, len(dataset.classes), config.seed)
    else:
        labels = true_labels
        train = input_noise(dataset.train, noise / 100, dataset.language, config.seed)
    noised = (
        sum(a != b for a, b in zip(labels, true_labels, strict=True))
        if config.noise_kind == "label"
        else sum(a.code != b.code for a, b in zip(train, dataset.train, strict=True))
    )
    spec = MODELS[config.model]
    model = CodeClassifier(
        vocabulary, dataset.classes, dataset.language, spec["dim"], spec["layers"],
        config.max_len, config.seed,
    )  # fmt: skip
    train_encoded = _Encoded(model, [s.code for s in train])
    test_encoded = _Encoded(model, [s.code for s in dataset.test])
    flat = [code for group in renamed for code in group]
    variant_encoded = _Encoded(model, flat)
    test_labels = [s.label for s in dataset.test]
    names = dataset.name == "methodnames"
    rng = np.random.default_rng(config.seed)
    optimiser = torch.optim.Adam(model.net.parameters(), lr=config.learning_rate)
    records = []
    for epoch in range(1, config.epochs + 1):
        model.net.train()
        total = 0.0
        for chosen, ids in train_encoded.batches(config.batch_size, rng.permutation(len(train))):
            logits, _ = model.net(ids)
            loss = torch.nn.functional.cross_entropy(
                logits, torch.tensor([labels[i] for i in chosen])
            )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * len(chosen)
        train_probabilities, losses = _evaluate(model, train_encoded, labels)
        test_probabilities, _ = _evaluate(model, test_encoded, None)
        train_predicted = train_probabilities.argmax(1)
        test_predicted = test_probabilities.argmax(1)
        csr_base = test_predicted[: len(renamed)]
        record = EpochRecord(
            epoch=epoch,
            train_loss=total / max(1, len(train)),
            train_accuracy=float(np.mean(train_predicted == np.array(labels))),
            train_f1=macro_f1(labels, train_predicted, len(dataset.classes)),
            train_accuracy_clean=float(np.mean(train_predicted == np.array(true_labels))),
            test_accuracy=float(np.mean(test_predicted == np.array(test_labels))),
            test_f1=macro_f1(test_labels, test_predicted, len(dataset.classes)),
            gini=gini(losses),
            csr=_critical_ratio(model, csr_base, renamed, variant_encoded),
            test_scores=[round(float(p), 6) for p in test_probabilities.max(1)],
        )
        if names:
            record.train_subtoken_f1 = subtoken_f1(
                [dataset.classes[i] for i in labels], [dataset.classes[i] for i in train_predicted]
            )
            record.test_subtoken_f1 = subtoken_f1(
                [dataset.classes[i] for i in test_labels],
                [dataset.classes[i] for i in test_predicted],
            )
        records.append(record)
        if on_epoch:
            on_epoch(record)
    return LevelResult(noise, config.noise_kind, int(noised), records, config.key())


def load_dataset(config: MemorizationConfig, data_dir=None) -> LabDataset:
    if config.dataset == "algorithms":
        from codefocus.lab.datasets import load_algorithms

        return load_algorithms(data_dir, config.per_class, config.seed)
    if config.dataset == "methodnames":
        from codefocus.lab.methodnames import build_methodnames

        return build_methodnames(seed=config.seed)
    path = Path(config.dataset)
    if (path / "dataset.json").is_file():
        return LabDataset.load(path)
    raise UnknownNameError(
        f"unknown dataset {config.dataset!r}: choose algorithms, methodnames, or a directory "
        "written by `codefocus data methodnames` / `autofocus train`"
    )


def validate(config: MemorizationConfig) -> None:
    if config.model not in MODELS:
        raise UnknownNameError(f"unknown model {config.model!r}: choose from {', '.join(MODELS)}")
    if config.noise_kind not in NOISE_KINDS:
        raise UnknownNameError(
            f"unknown noise kind {config.noise_kind!r}: choose from {', '.join(NOISE_KINDS)}"
        )
    if not config.noise or any(not 0 <= n <= 100 for n in config.noise):
        raise InvalidArgumentError("noise levels are percentages between 0 and 100")
    if config.epochs < 1:
        raise InvalidArgumentError("epochs must be at least 1")
    for name in ("csr_programs", "per_class", "renamings", "batch_size", "max_len"):
        value = getattr(config, name)
        if value is not None and value < 1:
            raise InvalidArgumentError(f"{name.replace('_', '-')} must be at least 1, got {value}")


def run_memorization(
    config: MemorizationConfig,
    out: str | Path,
    data_dir=None,
    dataset: LabDataset | None = None,
    on_epoch: Callable[[int, EpochRecord], None] | None = None,
    on_dataset: Callable[[LabDataset], None] | None = None,
) -> MemorizationResult:
    """Every noise level of the study; finished levels found in ``out`` are reused."""
    validate(config)
    out = Path(out)
    try:
        (out / "levels").mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InvalidArgumentError(f"cannot write results to {out}: {error.strerror}") from None
    dataset = dataset or load_dataset(config, data_dir)
    if len(dataset.classes) < 2 or not dataset.train or not dataset.test:
        raise InvalidArgumentError("the dataset needs two classes and non-empty train and test")
    if on_dataset:
        on_dataset(dataset)
    (out / "config.json").write_text(json.dumps(asdict(config), indent=1))
    # the vocabulary comes from the clean training programs, so every level shares it
    vocabulary = Vocabulary.build(dataset.train, dataset.language)
    csr_tests = dataset.test[: config.csr_programs]
    renamed = [single_renamings(s.code, dataset.language, config.renamings) for s in csr_tests]
    levels = []
    for noise in config.noise:
        path = out / "levels" / f"{config.noise_kind}_{noise}.json"
        if path.is_file():
            level = LevelResult.from_dict(json.loads(path.read_text()))
            if level.config_key == config.key() and len(level.epochs) == config.epochs:
                levels.append(level)
                if on_epoch:
                    for record in level.epochs:
                        on_epoch(noise, record)
                continue
        level = train_level(
            dataset,
            vocabulary,
            config,
            noise,
            renamed,
            on_epoch=(lambda record, n=noise: on_epoch(n, record)) if on_epoch else None,
        )
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(level.to_dict()))
        temporary.replace(path)  # atomic: a crash never leaves half a level
        levels.append(level)
    sizes = {"train": len(dataset.train), "valid": len(dataset.valid), "test": len(dataset.test)}
    sizes["csr_programs"] = len(renamed)
    sizes["csr_programs_with_variables"] = sum(1 for group in renamed if group)
    result = MemorizationResult(config, dataset.classes, sizes, levels)
    result.save(out / "memorization.json")
    write_csvs(result, out)
    return result


CSV_METRICS = {
    "train_f1": lambda r, e: r.primary_f1(e, "train"),
    "test_f1": lambda r, e: r.primary_f1(e, "test"),
    "train_accuracy": lambda r, e: e.train_accuracy,
    "train_accuracy_clean": lambda r, e: e.train_accuracy_clean,
    "test_accuracy": lambda r, e: e.test_accuracy,
    "train_loss": lambda r, e: e.train_loss,
    "gini": lambda r, e: e.gini,
    "csr": lambda r, e: e.csr,
}


def write_csvs(result: MemorizationResult, out: str | Path) -> list[Path]:
    """One CSV per metric, ``epoch,0_percent,25_percent,...``; scores ranked per level."""
    out = Path(out)
    header = ["epoch", *[f"{level.noise}_percent" for level in result.levels]]
    written = []
    for name, value in CSV_METRICS.items():
        lines = [",".join(header)]
        for epoch in range(result.config.epochs):
            row = [str(epoch + 1)]
            for level in result.levels:
                row.append(f"{value(result, level.epochs[epoch]):.6f}")
            lines.append(",".join(row))
        path = out / f"{name}.csv"
        path.write_text("\n".join(lines) + "\n")
        written.append(path)
    lines = [",".join(["rank", *header[1:]])]
    finals = [sorted(level.epochs[-1].test_scores, reverse=True) for level in result.levels]
    for rank in range(len(finals[0]) if finals else 0):
        lines.append(",".join([str(rank + 1), *(f"{scores[rank]:.6f}" for scores in finals)]))
    path = out / "test_scores_final.csv"
    path.write_text("\n".join(lines) + "\n")
    return [*written, path]


def reading(result: MemorizationResult) -> list[str]:
    """Plain statements with the numbers behind them, for the terminal and the report."""
    lines = []
    finals = {level.noise: level.epochs[-1] for level in result.levels}
    epochs = result.config.epochs
    clean = finals.get(0)
    noisiest = max(finals)
    if clean is not None and noisiest > 0:
        last = finals[noisiest]
        ratio = last.train_accuracy / clean.train_accuracy if clean.train_accuracy else float("nan")
        lines.append(
            f"Memorization capacity: after {epochs} epochs the model fits "
            f"{last.train_accuracy:.1%} of its training labels under {noisiest}% label noise, "
            f"against {clean.train_accuracy:.1%} with clean labels (ratio {ratio:.2f})."
            if result.config.noise_kind == "label"
            else f"Input noise: after {epochs} epochs train accuracy is {last.train_accuracy:.1%} "
            f"with {noisiest}% of training programs damaged, {clean.train_accuracy:.1%} without."
        )
    ordered = sorted(finals)
    ginis = [finals[n].gini for n in ordered]
    if len(ordered) > 1:
        falls = all(b <= a for a, b in zip(ginis, ginis[1:], strict=False))
        rises = all(b >= a for a, b in zip(ginis, ginis[1:], strict=False))
        trend = "falls" if falls else "rises" if rises else "is not monotonic"
        values = ", ".join(f"{n}%: {g:.3f}" for n, g in zip(ordered, ginis, strict=True))
        lines.append(
            f"Gini of per-sample training loss at the last epoch {trend} as noise rises ({values})."
        )
        # once every level fits its labels the losses are all near zero and their Gini is
        # noise; the phase that tells is while the model is still fitting the clean labels
        by_level = {level.noise: level for level in result.levels}
        first = by_level[ordered[0]]
        fitted = next((e.epoch for e in first.epochs if e.train_accuracy >= 0.95), None)
        phase = fitted or len(first.epochs)
        until = (
            f"until {ordered[0]}% noise fits 95% of its training labels"
            if fitted
            else f"{ordered[0]}% noise never fits 95% of its training labels"
        )
        early = [float(np.mean([e.gini for e in by_level[n].epochs[:phase]])) for n in ordered]
        falls = all(b <= a for a, b in zip(early, early[1:], strict=False))
        values = ", ".join(f"{n}%: {g:.3f}" for n, g in zip(ordered, early, strict=True))
        lines.append(
            f"Mean Gini over epochs 1-{phase} ({until}) "
            f"{'falls' if falls else 'does not fall monotonically'} as noise rises ({values})."
        )
        fit = [
            next((e.epoch for e in by_level[n].epochs if e.train_accuracy >= 0.95), None)
            for n in ordered
        ]
        values = ", ".join(
            f"{n}%: {'not reached' if f is None else f'epoch {f}'}"
            for n, f in zip(ordered, fit, strict=True)
        )
        lines.append(f"First epoch with 95% of training labels fitted: {values}.")
        f1s = [result.primary_f1(finals[n], "test") for n in ordered]
        values = ", ".join(f"{n}%: {f:.3f}" for n, f in zip(ordered, f1s, strict=True))
        kind = "sub-token F1" if result.dataset_is_names else "macro-F1"
        lines.append(f"Test {kind} at the last epoch: {values}.")
        csrs = [finals[n].csr for n in ordered]
        values = ", ".join(f"{n}%: {c:.3f}" for n, c in zip(ordered, csrs, strict=True))
        lines.append(f"Critical sample ratio at the last epoch: {values}.")
        means = [float(np.mean(finals[n].test_scores)) for n in ordered]
        values = ", ".join(f"{n}%: {m:.3f}" for n, m in zip(ordered, means, strict=True))
        lines.append(f"Mean predicted score on test programs: {values}.")
    return lines
