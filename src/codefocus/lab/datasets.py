"""Datasets of the lab: Java algorithm classification (bi-tbcnn) and Python method names.

Algorithms: the AutoFocus authors' crawl of GitHub Java programs in 10 classes. Files that do not
parse are dropped (counted); exact duplicates (same tokens) and near duplicates (same token
sequence once identifiers and literals are abstracted — type-2 clones) are removed before a
seeded, stratified 70/10/20 split.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import tarfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from codefocus.data.paths import data_file, resolve_data_dir
from codefocus.errors import DataError
from codefocus.lab.parsing import parse
from codefocus.serialization import JsonRecord
from codefocus.storage import write_text_atomic

ABSTRACT_KINDS = {
    "identifier",
    "type_identifier",
    "decimal_integer_literal",
    "string_fragment",
    "decimal_floating_point_literal",
    "character_literal",
    "integer",
    "float",
    "string_content",
    "number_literal",
    "field_identifier",
    "namespace_identifier",
    "char_literal",
    "raw_string_content",
}


@dataclass
class Sample(JsonRecord):
    code: str
    label: int
    source: str


@dataclass
class LabDataset:
    name: str
    language: str
    classes: list[str]
    train: list[Sample]
    valid: list[Sample]
    test: list[Sample]
    report: dict = field(default_factory=dict)
    # where the samples came from (method names: each package with its version), for a reader
    # to rebuild or compare the same set
    manifest: dict = field(default_factory=dict)

    def sha256(self) -> str:
        """A digest of the classes and every split's samples, in order: equal digests, same data."""
        digest = hashlib.sha256(json.dumps(self.classes).encode())
        for split in ("train", "valid", "test"):
            for sample in getattr(self, split):
                digest.update(
                    json.dumps([split, sample.label, sample.code, sample.source]).encode()
                )
        return digest.hexdigest()

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "name": self.name,
            "language": self.language,
            "classes": self.classes,
            "report": self.report,
            "manifest": self.manifest,
        }
        write_text_atomic(directory / "dataset.json", json.dumps(meta, indent=1))
        for split in ("train", "valid", "test"):
            with open(directory / f"{split}.jsonl", "w") as handle:
                for sample in getattr(self, split):
                    handle.write(json.dumps(sample.to_dict()) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> LabDataset:
        directory = Path(directory)
        try:
            meta = json.loads((directory / "dataset.json").read_text())
            splits = {
                split: [Sample(**json.loads(line)) for line in open(directory / f"{split}.jsonl")]
                for split in ("train", "valid", "test")
            }
            return cls(
                meta["name"],
                meta["language"],
                meta["classes"],
                **splits,
                report=meta["report"],
                manifest=meta.get("manifest", {}),
            )
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise DataError(
                f"not a readable lab dataset in {directory} "
                f"({type(error).__name__}: {error}); rebuild it"
            ) from None


def _fingerprints(code: str, language: str) -> tuple[str, str] | None:
    parsed = parse(code, language)
    if parsed.has_error or not parsed.tokens:
        return None
    exact = hashlib.sha1(" ".join(t.text for t in parsed.tokens).encode()).hexdigest()
    abstract = " ".join(t.kind if t.kind in ABSTRACT_KINDS else t.text for t in parsed.tokens)
    return exact, hashlib.sha1(abstract.encode()).hexdigest()


def split(samples: list[Sample], seed: int) -> tuple[list[Sample], list[Sample], list[Sample]]:
    """Stratified 70/10/20 split, reproducible for a seed."""
    rng = random.Random(seed)
    by_label: dict[int, list[Sample]] = {}
    for sample in samples:
        by_label.setdefault(sample.label, []).append(sample)
    train, valid, test = [], [], []
    for label in sorted(by_label):
        group = by_label[label]
        rng.shuffle(group)
        n_train, n_valid = round(0.7 * len(group)), round(0.1 * len(group))
        train += group[:n_train]
        valid += group[n_train : n_train + n_valid]
        test += group[n_train + n_valid :]
    for part in (train, valid, test):
        rng.shuffle(part)
    return train, valid, test


def load_algorithms(
    data_dir: str | Path | None = None,
    per_class: int | None = None,
    seed: int = 0,
    language: str = "java",
) -> LabDataset:
    """The algorithm-classification programs in ``language`` (java, or cpp: the C++ set of the
    bilateral-network paper), parsed, deduplicated and split."""
    path = data_file(
        resolve_data_dir(data_dir), "algorithm-classification", f"bi-tbcnn-{language}.tar.gz"
    )
    files: dict[str, list[tuple[str, str]]] = {}
    with tarfile.open(path) as archive:
        for member in sorted(archive.getmembers(), key=lambda m: m.name):
            parts = member.name.split("/")
            if not member.isfile() or len(parts) < 4 or not member.name.endswith(f".{language}"):
                continue
            handle = archive.extractfile(member)
            if handle is None:
                continue
            raw = handle.read()
            files.setdefault(parts[1], []).append(
                (member.name, io.TextIOWrapper(io.BytesIO(raw), errors="replace").read())
            )
    classes = sorted(files)
    report: Counter = Counter()
    seen_exact, seen_near, samples = set(), set(), []
    for label, name in enumerate(classes):
        kept = 0
        for source, code in files[name]:
            if per_class is not None and kept >= per_class:
                break
            report["files"] += 1
            prints = _fingerprints(code, language)
            if prints is None:
                report["dropped: does not parse"] += 1
                continue
            exact, near = prints
            if exact in seen_exact:
                report["dropped: exact duplicate"] += 1
                continue
            if near in seen_near:
                report["dropped: near duplicate (same code up to names and literals)"] += 1
                continue
            seen_exact.add(exact)
            seen_near.add(near)
            samples.append(Sample(code, label, source))
            kept += 1
    report["kept"] = len(samples)
    train, valid, test = split(samples, seed)
    name = "algorithms" if language == "java" else f"algorithms-{language}"
    return LabDataset(name, language, classes, train, valid, test, dict(report))
