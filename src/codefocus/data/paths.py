"""Where the data lives: an explicit directory, or the CODEFOCUS_DATA environment variable.

The project never bundles the data (the programmer labels carry no license); users point at a
directory laid out like the shared one, or fill one with `codefocus data fetch`.
"""

from __future__ import annotations

import os
from pathlib import Path

from codefocus.errors import DataError

DATA_ENV = "CODEFOCUS_DATA"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the data directory, checking that it exists."""
    chosen = data_dir if data_dir is not None else os.environ.get(DATA_ENV)
    if not chosen:
        raise DataError(
            f"no data directory: pass --data DIR or set {DATA_ENV} "
            "(run `codefocus data fetch --out DIR` to download the public files)"
        )
    path = Path(chosen).expanduser()
    if not path.is_dir():
        raise DataError(f"data directory not found: {path}")
    return path


def data_file(data_dir: Path, *parts: str) -> Path:
    """Return a file under the data directory or raise a one-line DataError."""
    path = data_dir.joinpath(*parts)
    if not path.is_file():
        raise DataError(f"missing data file: {path}")
    return path
