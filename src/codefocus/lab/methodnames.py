"""A method-name prediction dataset built from the Python source installed on this machine.

Like the memorization study's Java-Top10: the most frequent method names (methods defined in a
class body; dunder and test names excluded), up to ``per_name`` bodies each, with the method's
name replaced by ``_`` wherever it occurs in its own source. Exact duplicate bodies are kept once.
Files are read in sorted order and sampled with a fixed seed, so the same Python gives the same
dataset.
"""

from __future__ import annotations

import ast
import io
import random
import re
import sysconfig
from collections import Counter
from pathlib import Path

from codefocus.lab.datasets import LabDataset, Sample, split


def default_roots() -> list[Path]:
    paths = sysconfig.get_paths()
    return [Path(p) for p in dict.fromkeys([paths["stdlib"], paths["purelib"]]) if Path(p).is_dir()]


def _wanted(name: str) -> bool:
    return not (name.startswith("__") and name.endswith("__")) and not name.lower().startswith(
        ("test", "_test")
    )


def _segment(lines: list[str], node: ast.stmt) -> str | None:
    """The node's source, like ``ast.get_source_segment`` but without re-splitting the whole
    file for every node (that made large site-packages quadratic)."""
    if node.end_lineno is None or node.end_col_offset is None:
        return None
    first, last = node.lineno - 1, node.end_lineno - 1
    chunk = [line.encode("utf-8") for line in lines[first : last + 1]]
    if not chunk:
        return None
    if first == last:
        return chunk[0][node.col_offset : node.end_col_offset].decode("utf-8")
    chunk[0] = chunk[0][node.col_offset :]
    chunk[-1] = chunk[-1][: node.end_col_offset]
    return b"".join(chunk).decode("utf-8")


def collect_methods(roots: list[Path], report: Counter) -> list[tuple[str, str, str]]:
    """(name, source with the name removed, file) for every method under ``roots``."""
    found = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            if any(part in ("test", "tests") for part in path.relative_to(root).parts[:-1]):
                continue
            try:
                text = path.read_text(encoding="utf-8")
                tree = ast.parse(text)
            except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
                report["files skipped (unreadable or not parsable)"] += 1
                continue
            report["files read"] += 1
            lines = io.StringIO(text, newline="").readlines()  # as ast counts lines
            for node in ast.walk(tree):
                if not isinstance(node, ast.ClassDef):
                    continue
                for item in node.body:
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and _wanted(
                        item.name
                    ):
                        source = _segment(lines, item)
                        if source:
                            hidden = re.sub(rf"\b{re.escape(item.name)}\b", "_", source)
                            found.append((item.name, hidden, str(path)))
    return found


def build_methodnames(
    roots: list[Path] | None = None, top: int = 10, per_name: int = 1000, seed: int = 0
) -> LabDataset:
    report: Counter = Counter()
    methods = collect_methods(roots or default_roots(), report)
    counts = Counter(name for name, _, _ in methods)
    names = [name for name, _ in sorted(counts.items(), key=lambda x: (-x[1], x[0]))[:top]]
    rng = random.Random(seed)
    samples: list[Sample] = []
    for label, name in enumerate(names):
        seen, bodies = set(), []
        for method_name, body, source in methods:
            if method_name == name and body not in seen:
                seen.add(body)
                bodies.append(Sample(body, label, source))
        report[f"duplicates dropped: {name}"] = counts[name] - len(bodies)
        rng.shuffle(bodies)
        samples += bodies[:per_name]
    report["methods"] = len(methods)
    report["kept"] = len(samples)
    train, valid, test = split(samples, seed)
    return LabDataset("methodnames", "python", names, train, valid, test, dict(report))
