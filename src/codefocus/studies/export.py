"""A study in Kou et al.'s stored format, so the scorer that reproduces their Table 2 scores it.

The study stored, per method and model, ``{method}_{model}.json.gz``: ``{prompt text: [[unit,
score], ...]}``, the prompt keyed as the label files key it and the units its model's cleaned
tokens (white-box methods) or words (BERT masking, SHAP). ``stored_results`` turns the method
units of a codefocus study run under a stored-labels protocol (``kou2024``) into exactly that;
``write_stored`` writes the files (atomically, never over an existing one).
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from pathlib import Path

from codefocus.attribution import Attribution
from codefocus.errors import InvalidArgumentError
from codefocus.protocols import STUDY_METHOD_NAMES
from codefocus.storage import file_mode
from codefocus.studies.runner import STORE_NAME
from codefocus.studies.store import StudyStore


def stored_results(study_dir: str | Path) -> dict[tuple[str, str], dict[str, list[list]]]:
    """(model, the study's method name) -> ``{prompt: [[unit, score], ...]}`` for every method
    unit done in the study.

    Raises:
        InvalidArgumentError: no study in ``study_dir``, or one whose results were not computed
            under a protocol with the study's stored labels (its prompts and spans would not be
            the ones the scorer compares with).
    """
    path = Path(study_dir) / STORE_NAME
    if not path.is_file():
        raise InvalidArgumentError(f"{study_dir} holds no study ({STORE_NAME} missing)")
    store = StudyStore(path)
    try:
        rows = store.rows("method:")
    finally:
        store.close()
    results: dict[tuple[str, str], dict[str, list[list]]] = {}
    for row in rows:
        if row["status"] != "done" or row["payload"] is None:
            continue
        attribution = Attribution.from_dict(row["payload"])
        if not attribution.stored_labels:
            protocol = attribution.settings.get("protocol", {}).get("name", "codefocus")
            raise InvalidArgumentError(
                f"{study_dir} was run under protocol {protocol}, whose prompts and labels "
                "are not the study's; run it with --protocol kou2024"
            )
        for method in attribution.methods:
            name = STUDY_METHOD_NAMES.get(method, method)
            bucket = results.setdefault((row["model"], name), {})
            bucket[attribution.prompt] = attribution.stored_pairs(method)
    return results


def write_stored(study_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Write ``{method}_{model}.json.gz`` files of a study into ``out_dir``; an existing file is
    an error, never overwritten."""
    results = stored_results(study_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for (model, method), stored in sorted(results.items()):
        target = out / f"{method}_{model}.json.gz"
        if target.exists():
            raise InvalidArgumentError(f"{target} exists; it is not overwritten")
        handle, temporary = tempfile.mkstemp(dir=out, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb") as zipped:
                zipped.write(json.dumps(stored).encode("utf-8"))
            os.chmod(temporary, file_mode(target))  # as open() would: 0666 less the umask
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        written.append(target)
    return written
