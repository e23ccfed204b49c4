"""One dataclass <-> JSON mapping for every typed record codefocus writes (never pickle).

``to_jsonable`` turns a dataclass (and what it holds: dataclasses, lists, tuples, dicts, numpy
values) into plain JSON values; ``from_jsonable`` rebuilds a dataclass from them by its field
types, so nested records, tuples and optionals come back as they were. ``JsonRecord`` gives a
dataclass ``to_dict`` / ``from_dict`` through them.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, TypeVar, get_args, get_origin

T = TypeVar("T")


def to_jsonable(value: Any) -> Any:
    """Plain JSON values for a dataclass, container or number (NaN becomes ``null``)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_jsonable(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if not f.name.startswith("_")
        }
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return to_jsonable(value.tolist())
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _restore(kind: Any, value: Any) -> Any:
    if value is None:
        return float("nan") if kind is float else None
    origin = get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in get_args(kind) if a is not type(None)]
        return _restore(options[0], value) if len(options) == 1 else value
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        return from_jsonable(kind, value)
    if origin in (list, tuple):
        args = get_args(kind)
        item = args[0] if args else Any
        items = [_restore(item, v) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        _, item = get_args(kind) or (str, Any)
        return {k: _restore(item, v) for k, v in value.items()}
    if kind is float:
        return float(value)
    if kind is int and isinstance(value, int | float):
        return int(value)
    return value


def from_jsonable(cls: type[T], data: dict) -> T:
    """A ``cls`` instance from ``to_jsonable``'s output; missing fields take their defaults, an
    unknown field is a ``TypeError`` (as for the constructor)."""
    hints = _hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise TypeError(f"{cls.__name__} has no field {unknown[0]!r}")
    kwargs = {
        f.name: _restore(hints[f.name], data[f.name])
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.init and f.name in data
    }
    return cls(**kwargs)


class JsonRecord:
    """Mixin for dataclasses: ``to_dict`` / ``from_dict`` by ``to_jsonable`` / ``from_jsonable``."""

    def to_dict(self) -> dict:
        return to_jsonable(self)

    @classmethod
    def from_dict(cls, data: dict):
        return from_jsonable(cls, data)
