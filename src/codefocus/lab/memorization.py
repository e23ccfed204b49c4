"""Memorization vs generalization (Rabin et al.): train on noised labels, watch what changes.

A model that fits random labels as well as real ones has memorized; held-out accuracy alone does
not show it. For every noise level the same classifier (same initialisation, same batch order) is
trained for a fixed number of epochs, and after each epoch we record train/test accuracy and F1,
the test predicted scores, the Gini coefficient of the per-sample training loss and the critical
sample ratio under single-variable renaming (each variable of each test program renamed on its
own, as the paper does, unless ``renamings`` bounds it). Predicted scores are read two ways: the
paper's (each epoch's scores sorted, then averaged rank by rank over all epochs) and the last
epoch's. Two model sizes of clearly different capacity (``transformer`` and ``transformer-large``,
over 10x the parameters) test the paper's Observation 1 on the same data. Each finished level is
written at once; a re-run skips finished levels.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from codefocus.errors import InvalidArgumentError, UnknownNameError
from codefocus.lab.classifier import (
    SCHEDULES,
    CodeClassifier,
    EncodedPrograms,
    Vocabulary,
    lr_scheduler,
)
from codefocus.lab.datasets import LabDataset, Sample, load_algorithms
from codefocus.lab.methodnames import build_methodnames
from codefocus.lab.noise import input_noise, label_noise
from codefocus.lab.renaming import single_renamings
from codefocus.metrics.classification import gini, macro_f1, subtoken_f1
from codefocus.serialization import JsonRecord
from codefocus.storage import write_text_atomic

NOISE_KINDS = ("label", "input")
# Classifier sizes: the AutoFocus-style attention-pooled transformer; attention pooling over
# token embeddings alone (no encoder) as a lower-capacity contrast; and a wider, deeper encoder
# with more than 10x the transformer's parameters at any vocabulary size up to the 5,000 tokens
# of ``Vocabulary.build`` (4.71M against 0.45M there; the ratio grows as the vocabulary shrinks,
# since the embeddings are the small model's largest part). ``parameter_count`` gives the count.
# Each model has its own peak learning rate (Adam, under the config's warmup and decay), and
# both encoders have pre-norm layers (``norm_first``): post-norm at a constant 1e-3, the six-layer
# encoder did not even fit clean labels in 15 epochs; at these settings both fit them.
MODELS: dict[str, dict] = {
    "transformer": {"dim": 64, "layers": 2, "norm_first": True, "learning_rate": 3e-3},
    "attention-bag": {"dim": 64, "layers": 0, "norm_first": False, "learning_rate": 3e-3},
    "transformer-large": {"dim": 256, "layers": 6, "norm_first": True, "learning_rate": 3e-4},
}


# ---------------------------------------------------------------- results


@dataclass
class MemorizationConfig:
    dataset: str
    model: str = "transformer"
    noise_kind: str = "label"
    noise: list[int] = field(default_factory=lambda: [0, 25, 50, 75, 100])
    epochs: int = 30
    seed: int = 0  # initialisation, batch order and the noise draw (and the data: see data_seed)
    batch_size: int = 16
    learning_rate: float | None = None  # Adam's peak; None: the model's own (MODELS)
    schedule: str = "cosine"  # after the warmup: constant, linear or cosine decay (towards 0)
    warmup: float = 0.1  # share of all optimiser steps spent warming up linearly
    clip_norm: float | None = 1.0  # bound on the gradient's global L2 norm (None: none)
    data_seed: int | None = None  # the split and subset of the data; None: ``seed``
    max_len: int = 400
    renamings: int | None = None  # variables renamed per test program for CSR (None: each)
    csr_programs: int | None = None  # test programs used for CSR (None: all)
    per_class: int | None = None  # algorithms: files read per class (a subset)

    def key(self) -> str:
        """Identifies the configuration, so results of another one are never mixed in; the
        model's own spec (size, peak learning rate, norm placement) is part of it, since a
        change there trains the same named model otherwise."""
        payload = {k: v for k, v in asdict(self).items() if k != "noise"}
        payload["model_spec"] = MODELS.get(self.model)
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def dataset_seed(self) -> int:
        return self.seed if self.data_seed is None else self.data_seed

    def peak_learning_rate(self) -> float:
        rate = self.learning_rate
        return float(MODELS[self.model]["learning_rate"] if rate is None else rate)

    def training(self, train_size: int) -> dict:
        """How a level trains, as recorded with it: optimiser, peak learning rate, schedule and
        its step counts, gradient clipping, batch size and the layers' norm placement."""
        total = self.epochs * -(-train_size // self.batch_size)  # optimiser steps in all
        return {
            "optimizer": "adam",
            "learning_rate": self.peak_learning_rate(),
            "schedule": self.schedule,
            "warmup_steps": round(self.warmup * total),
            "total_steps": total,
            "clip_norm": self.clip_norm,
            "batch_size": self.batch_size,
            "norm_first": bool(MODELS[self.model]["norm_first"]),
        }


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
class LevelResult(JsonRecord):
    noise: int
    noise_kind: str
    noised_samples: int
    epochs: list[EpochRecord]
    config_key: str
    parameters: int | None = None  # trainable parameters of the model, sum(p.numel())
    seed: int | None = None  # initialisation, batch order, noise draw (None: before it was kept)
    training: dict | None = None  # ``MemorizationConfig.training``: how it was trained

    def scores_over_epochs(self) -> list[float]:
        """The paper's predicted-score distribution: each epoch's test scores sorted from highest
        to lowest, then averaged rank by rank over all epochs."""
        if not self.epochs:
            return []
        ranked = -np.sort(-np.array([e.test_scores for e in self.epochs], dtype=float), axis=1)
        return [float(x) for x in ranked.mean(axis=0)]

    def scores_last_epoch(self) -> list[float]:
        """The last epoch's test scores sorted from highest to lowest (a snapshot, not the paper's
        view)."""
        return sorted(self.epochs[-1].test_scores, reverse=True) if self.epochs else []


@dataclass
class MemorizationResult(JsonRecord):
    config: MemorizationConfig
    classes: list[str]
    sizes: dict[str, int]
    levels: list[LevelResult]

    def save(self, path: str | Path) -> None:
        write_text_atomic(path, json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> MemorizationResult:
        return cls.from_dict(json.loads(Path(path).read_text()))

    @property
    def dataset_is_names(self) -> bool:
        """Method-name data records sub-token F1, which then stands for F1."""
        return bool(self.levels) and self.levels[0].epochs[0].test_subtoken_f1 is not None

    def primary_f1(self, record: EpochRecord, split: str) -> float:
        """Sub-token F1 for method names (as the study), macro-F1 otherwise."""
        value = getattr(record, f"{split}_subtoken_f1")
        return value if value is not None else getattr(record, f"{split}_f1")


# ---------------------------------------------------------------- training


def parameter_count(model: str, vocabulary: Vocabulary, classes: list[str], language: str) -> int:
    """Trainable parameters of ``model`` (a ``MODELS`` name) on this vocabulary and these classes:
    sum(p.numel()) over the network."""
    spec = MODELS[model]
    built = CodeClassifier(
        vocabulary, classes, language, spec["dim"], spec["layers"], norm_first=spec["norm_first"]
    )
    return sum(p.numel() for p in built.net.parameters() if p.requires_grad)


def _evaluate(
    model: CodeClassifier, encoded: EncodedPrograms, labels: list[int] | None, size: int = 64
):
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
            if losses is not None and labels is not None:
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
    """Train one noise level from the shared initialisation; a record per epoch.

    ``config.seed`` draws the noise (the same for every model, nested across levels), the
    initialisation (the same for every level) and the batch order. Adam at the peak learning
    rate after a linear warmup, then ``config.schedule``'s decay, with the gradient clipped."""
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
        config.max_len, config.seed, spec["norm_first"],
    )  # fmt: skip
    train_encoded = EncodedPrograms(model, [s.code for s in train])
    test_encoded = EncodedPrograms(model, [s.code for s in dataset.test])
    flat = [code for group in renamed for code in group]
    variant_encoded = EncodedPrograms(model, flat)
    test_labels = [s.label for s in dataset.test]
    names = dataset.name == "methodnames"
    rng = np.random.default_rng((config.seed, 1))  # the batch order: apart from the noise draw
    training = config.training(len(train))
    optimiser = torch.optim.Adam(model.net.parameters(), lr=training["learning_rate"])
    scheduler = lr_scheduler(
        optimiser, training["total_steps"], training["warmup_steps"], config.schedule
    )
    records = []
    for epoch in range(1, config.epochs + 1):
        order = rng.permutation(len(train))
        total = model.train_epoch(
            train_encoded, labels, order, config.batch_size, optimiser, scheduler, config.clip_norm
        )
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
    parameters = sum(p.numel() for p in model.net.parameters() if p.requires_grad)
    return LevelResult(
        noise, config.noise_kind, int(noised), records, config.key(), parameters, config.seed,
        training,
    )  # fmt: skip


def load_lab_dataset(
    name: str, data_dir=None, per_class: int | None = None, seed: int = 0
) -> LabDataset:
    """A lab dataset by name: ``algorithms`` (the Java algorithm data), ``methodnames`` (built
    from the sources of codefocus's pinned packages), or a directory a ``LabDataset`` was saved
    to."""
    if name == "algorithms":
        return load_algorithms(data_dir, per_class, seed)
    if name == "algorithms-cpp":
        return load_algorithms(data_dir, per_class, seed, "cpp")
    if name == "methodnames":
        return build_methodnames(seed=seed)
    path = Path(name)
    if (path / "dataset.json").is_file():
        return LabDataset.load(path)
    raise UnknownNameError(
        f"unknown dataset {name!r}: choose algorithms, methodnames, or a directory "
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
    if config.schedule not in SCHEDULES:
        raise UnknownNameError(
            f"unknown schedule {config.schedule!r}: choose from {', '.join(SCHEDULES)}"
        )
    if not 0 <= config.warmup < 1:
        raise InvalidArgumentError(f"warmup is a share of the steps in [0, 1), got {config.warmup}")
    for name in ("learning_rate", "clip_norm"):
        value = getattr(config, name)
        if value is not None and not value > 0:
            raise InvalidArgumentError(f"{name.replace('_', '-')} must be positive, got {value}")
    for name in ("csr_programs", "per_class", "renamings", "batch_size", "max_len"):
        value = getattr(config, name)
        if value is not None and value < 1:
            raise InvalidArgumentError(f"{name.replace('_', '-')} must be at least 1, got {value}")


def csr_variants(samples: list[Sample], language: str, limit: int | None = None) -> list[list[str]]:
    """For each program, its single renamings: each variable renamed on its own, one copy per
    variable (at most ``limit`` copies when bounded)."""
    return [single_renamings(s.code, language, limit) for s in samples]


def prepare(config: MemorizationConfig, dataset: LabDataset) -> tuple[Vocabulary, list[list[str]]]:
    """What every model and noise level shares: the vocabulary of the clean training programs and
    the renamed test programs of the critical sample ratio."""
    if len(dataset.classes) < 2 or not dataset.train or not dataset.test:
        raise InvalidArgumentError("the dataset needs two classes and non-empty train and test")
    vocabulary = Vocabulary.build(dataset.train, dataset.language)
    tests = dataset.test[: config.csr_programs]
    return vocabulary, csr_variants(tests, dataset.language, config.renamings)


def sizes_of(dataset: LabDataset, renamed: list[list[str]]) -> dict[str, int]:
    sizes = {"train": len(dataset.train), "valid": len(dataset.valid), "test": len(dataset.test)}
    sizes["csr_programs"] = len(renamed)
    sizes["csr_programs_with_variables"] = sum(1 for group in renamed if group)
    sizes["csr_variants"] = sum(len(group) for group in renamed)
    return sizes


def run_memorization(
    config: MemorizationConfig,
    out: str | Path,
    data_dir=None,
    dataset: LabDataset | None = None,
    on_epoch: Callable[[int, EpochRecord], None] | None = None,
    on_dataset: Callable[[LabDataset], None] | None = None,
) -> MemorizationResult:
    """Every noise level of the study; finished levels found in ``out`` are reused. Writes the
    levels and ``memorization.json``; ``reports.memorization.write_report`` writes the rest."""
    validate(config)
    out = Path(out)
    try:
        (out / "levels").mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InvalidArgumentError(f"cannot write results to {out}: {error.strerror}") from None
    dataset = dataset or load_lab_dataset(
        config.dataset, data_dir, config.per_class, config.dataset_seed()
    )
    if on_dataset:
        on_dataset(dataset)
    vocabulary, renamed = prepare(config, dataset)
    write_text_atomic(out / "config.json", json.dumps(asdict(config), indent=1))
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
            on_epoch=functools.partial(on_epoch, noise) if on_epoch else None,
        )
        write_text_atomic(path, json.dumps(level.to_dict()))  # a crash never leaves half a level
        levels.append(level)
    result = MemorizationResult(config, dataset.classes, sizes_of(dataset, renamed), levels)
    result.save(out / "memorization.json")  # its CSVs, plots and page: reports.memorization
    return result
