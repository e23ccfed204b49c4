"""codefocus: explain what a code model pays attention to.

The entry points are importable from the top level and load lazily (importing ``codefocus``
does not import torch)::

    from codefocus import attribute, get_task, load_model
    result = attribute(load_model("default"), get_task("humaneval/0"), "all-whitebox")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from codefocus.errors import (
    CodefocusError,
    ContextTooLongError,
    DataError,
    EndpointError,
    InvalidArgumentError,
    ModelLoadError,
    SchemaError,
    UnknownNameError,
)

__version__ = "0.1.0"  # the one version source: pyproject.toml reads it (dynamic version)

# name -> module that defines it
_LAZY = {
    "attribute": "codefocus.api",
    "AttributionOptions": "codefocus.options",
    "Attribution": "codefocus.attribution",
    "load_model": "codefocus.models.loading",
    "GenerationSettings": "codefocus.generation.records",
    "TextGenerator": "codefocus.models.base",
    "WhiteBoxModel": "codefocus.models.base",
    "get_task": "codefocus.data.tasks",
    "load_tasks": "codefocus.data.tasks",
    "Task": "codefocus.data.tasks",
    "resolve_methods": "codefocus.methods",
    "available_methods": "codefocus.methods",
    "run_study": "codefocus.studies.runner",
    "StudyConfig": "codefocus.studies.runner",
    "write_report": "codefocus.reports.study_report",
    "Protocol": "codefocus.protocols",
    "get_protocol": "codefocus.protocols",
}

if TYPE_CHECKING:
    from codefocus.api import attribute
    from codefocus.attribution import Attribution
    from codefocus.data.tasks import Task, get_task, load_tasks
    from codefocus.generation.records import GenerationSettings
    from codefocus.methods import available_methods, resolve_methods
    from codefocus.models.base import TextGenerator, WhiteBoxModel
    from codefocus.models.loading import load_model
    from codefocus.options import AttributionOptions
    from codefocus.protocols import Protocol, get_protocol
    from codefocus.reports.study_report import write_report
    from codefocus.studies.runner import StudyConfig, run_study


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'codefocus' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "Attribution",
    "AttributionOptions",
    "CodefocusError",
    "ContextTooLongError",
    "DataError",
    "EndpointError",
    "GenerationSettings",
    "InvalidArgumentError",
    "ModelLoadError",
    "Protocol",
    "SchemaError",
    "StudyConfig",
    "Task",
    "TextGenerator",
    "UnknownNameError",
    "WhiteBoxModel",
    "__version__",
    "attribute",
    "available_methods",
    "get_protocol",
    "get_task",
    "load_model",
    "load_tasks",
    "resolve_methods",
    "run_study",
    "write_report",
]
