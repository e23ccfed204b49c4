"""Download the public data files into a directory laid out like the shared one.

The study's stored attention scores are pickles in its repository; unpickling untrusted files can
run code, so codefocus does not fetch them: convert them once in a trusted environment to the
``{prompt: [[unit, score], ...]}`` JSON layout described in the README if you need them.
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from codefocus.errors import DataError

_KOU_COMMIT = "839bb35bd7ed811bee48b084410b355a0e05636e"


@dataclass(frozen=True)
class Source:
    path: str
    url: str
    sha256: str
    license: str


SOURCES = (
    Source(
        "humaneval/HumanEval.jsonl.gz",
        "https://github.com/openai/human-eval/raw/master/data/HumanEval.jsonl.gz",
        "b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef",
        "MIT",
    ),
    Source(
        "mbpp/mbpp.jsonl",
        "https://raw.githubusercontent.com/google-research/google-research/master/mbpp/mbpp.jsonl",
        "143559fa164408d45cab058238471288b0e447507ce55db3057c56113d9dccb4",
        "CC-BY-4.0",
    ),
    Source(
        "mbpp/sanitized-mbpp.json",
        "https://raw.githubusercontent.com/google-research/google-research/master/mbpp/sanitized-mbpp.json",
        "e413fa0df748e298cdc8ce48d46f2c88aac737f8540b391178a96ff6b3cc9fa7",
        "CC-BY-4.0",
    ),
    Source(
        "programmer-attention/humaneval.csv",
        "https://raw.githubusercontent.com/BonanKou/Attention-Alignment-Empirical-Study/"
        f"{_KOU_COMMIT}/dataset/humaneval.csv",
        "bf381d17f532ef5e481b63a4fa18afbf11dd118ed24dbb07b8f2db8b3c5abab1",
        "no license: research use only, do not redistribute",
    ),
    Source(
        "programmer-attention/mbpp.csv",
        "https://raw.githubusercontent.com/BonanKou/Attention-Alignment-Empirical-Study/"
        f"{_KOU_COMMIT}/dataset/mbpp.csv",
        "a124d5014df057ca37feafdc7ecec73f4db93918413c67549e3d15f690463cf1",
        "no license: research use only, do not redistribute",
    ),
)


@dataclass(frozen=True)
class FetchResult:
    path: Path
    status: str  # "downloaded", "present", "hash differs"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(out_dir: str | Path, timeout: float = 60.0) -> list[FetchResult]:
    """Download every missing file; files already present with the right hash are kept."""
    root = Path(out_dir)
    results = []
    for source in SOURCES:
        target = root / source.path
        if target.is_file() and sha256_of(target) == source.sha256:
            results.append(FetchResult(target, "present"))
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(target.suffix + ".part")
        try:
            with urllib.request.urlopen(source.url, timeout=timeout) as response:  # noqa: S310
                partial.write_bytes(response.read())
        except (urllib.error.URLError, OSError, TimeoutError) as error:
            partial.unlink(missing_ok=True)
            reason = getattr(error, "reason", error)
            raise DataError(f"could not download {source.url}: {reason}") from None
        partial.replace(target)
        status = "downloaded" if sha256_of(target) == source.sha256 else "hash differs"
        results.append(FetchResult(target, status))
    return results
