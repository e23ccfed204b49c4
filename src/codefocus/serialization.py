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


# One restoring function per field type, built once: a study report restores a thousand
# attributions of a hundred nested records each, and looking the type up again for every value
# was most of its time. ``_restorer(kind)(value)`` is what the rules below say for ``kind``.
_RESTORERS: dict[Any, Any] = {}


def _restorer(kind: Any):
    try:
        return _RESTORERS[kind]
    except (KeyError, TypeError):  # TypeError: an unhashable annotation, built every time
        pass
    function = _build_restorer(kind)
    try:
        _RESTORERS[kind] = function
    except TypeError:
        pass
    return function


def _build_restorer(kind: Any):
    origin = get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in get_args(kind) if a is not type(None)]
        if len(options) != 1:
            return lambda value: value
        inner = _restorer(options[0])
        return lambda value: None if value is None else inner(value)
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        return lambda value: None if value is None else from_jsonable(kind, value)
    if origin in (list, tuple):
        args = get_args(kind)
        item = _restorer(args[0] if args else Any)
        if origin is tuple:
            return lambda value: None if value is None else tuple([item(v) for v in value])
        return lambda value: None if value is None else [item(v) for v in value]
    if origin is dict:
        _, value_kind = get_args(kind) or (str, Any)
        item = _restorer(value_kind)
        return lambda value: None if value is None else {k: item(v) for k, v in value.items()}
    if kind is float:
        return lambda value: float("nan") if value is None else float(value)
    if kind is int:
        return lambda value: int(value) if isinstance(value, int | float) else value
    return lambda value: value


def _restore(kind: Any, value: Any) -> Any:
    """``value`` (JSON) as ``kind``: None is NaN for a float, else None; a dataclass, list,
    tuple or dict is rebuilt item by item; a number takes the field's numeric type."""
    return _restorer(kind)(value)


# per dataclass: its field names, and (name, restorer) for each field the constructor takes
_FIELDS: dict[type, tuple[frozenset[str], tuple[tuple[str, Any], ...]]] = {}


def _fields(cls: type) -> tuple[frozenset[str], tuple[tuple[str, Any], ...]]:
    if cls not in _FIELDS:
        hints = _hints(cls)
        fields = dataclasses.fields(cls)
        _FIELDS[cls] = (
            frozenset(f.name for f in fields),
            tuple((f.name, _restorer(hints[f.name])) for f in fields if f.init),
        )
    return _FIELDS[cls]


def from_jsonable(cls: type[T], data: dict) -> T:
    """A ``cls`` instance from ``to_jsonable``'s output; missing fields take their defaults, an
    unknown field is a ``TypeError`` (as for the constructor)."""
    known, restorers = _fields(cls)
    if not known.issuperset(data):
        raise TypeError(f"{cls.__name__} has no field {sorted(set(data) - known)[0]!r}")
    return cls(**{name: restore(data[name]) for name, restore in restorers if name in data})


class JsonRecord:
    """Mixin for dataclasses: ``to_dict`` / ``from_dict`` by ``to_jsonable`` / ``from_jsonable``."""

    def to_dict(self) -> dict:
        return to_jsonable(self)

    @classmethod
    def from_dict(cls, data: dict):
        return from_jsonable(cls, data)
