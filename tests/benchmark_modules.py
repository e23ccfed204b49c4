"""The scripts under ``benchmarks/`` loaded as modules, for the tests that drive them (they are
scripts, not a package: each is loaded from its file)."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str, register: bool = False) -> ModuleType:
    """``benchmarks/<name>.py`` as a fresh module. ``register`` puts it in ``sys.modules`` while
    it loads (a module whose dataclasses look their module up there needs it); the caller then
    removes it."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    if register:
        sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
