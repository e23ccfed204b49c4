"""The dataclass <-> JSON mapping: the restorers built once per type give what the rules give
when applied value by value (the reference below, the mapping as it was before it was built
once per type)."""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, get_args, get_origin

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codefocus.serialization import from_jsonable, to_jsonable


def _naive_restore(kind: Any, value: Any) -> Any:
    if value is None:
        return float("nan") if kind is float else None
    origin = get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in get_args(kind) if a is not type(None)]
        return _naive_restore(options[0], value) if len(options) == 1 else value
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        return _naive_from(kind, value)
    if origin in (list, tuple):
        args = get_args(kind)
        items = [_naive_restore(args[0] if args else Any, v) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        _, item = get_args(kind) or (str, Any)
        return {k: _naive_restore(item, v) for k, v in value.items()}
    if kind is float:
        return float(value)
    if kind is int and isinstance(value, int | float):
        return int(value)
    return value


def _naive_from(cls, data):
    hints = typing.get_type_hints(cls)
    return cls(
        **{
            f.name: _naive_restore(hints[f.name], data[f.name])
            for f in dataclasses.fields(cls)
            if f.init and f.name in data
        }
    )


@dataclass(frozen=True)
class Leaf:
    score: float
    count: int
    label: str | None = None


@dataclass(frozen=True)
class Tree:
    leaves: list[Leaf]
    pairs: tuple[int, ...]
    named: dict[str, float]
    maybe: Leaf | None = None
    either: int | str | None = None
    anything: Any = None
    nested: list[list[float]] = field(default_factory=list)


floats = st.floats(allow_nan=True, allow_infinity=False, width=64)
leaves = st.builds(Leaf, floats, st.integers(-5, 5), st.none() | st.text(max_size=3))
trees = st.builds(
    Tree,
    st.lists(leaves, max_size=4),
    st.lists(st.integers(-3, 3), max_size=4).map(tuple),
    st.dictionaries(st.text(max_size=2), floats, max_size=3),
    st.none() | leaves,
    st.none() | st.integers() | st.text(max_size=2),
    st.none() | st.integers() | st.lists(st.integers(), max_size=2),
    st.lists(st.lists(floats, max_size=3), max_size=3),
)


def _same(a, b) -> bool:
    return json.dumps(to_jsonable(a), sort_keys=True) == json.dumps(
        to_jsonable(b), sort_keys=True
    ) and repr(a).replace("nan", "NaN") == repr(b).replace("nan", "NaN")


@given(trees)
def test_restoring_matches_the_rules_value_by_value(tree):
    data = json.loads(json.dumps(to_jsonable(tree)))
    assert _same(from_jsonable(Tree, data), _naive_from(Tree, data))


def test_none_is_nan_for_a_float_and_none_elsewhere():
    restored = from_jsonable(Leaf, {"score": None, "count": 2.0, "label": None})
    assert math.isnan(restored.score) and restored.count == 2 and isinstance(restored.count, int)
    assert restored.label is None


def test_an_unknown_field_is_refused():
    with pytest.raises(TypeError, match="Leaf has no field 'colour'"):
        from_jsonable(Leaf, {"score": 1.0, "count": 1, "colour": "red"})
