"""Typed units and the one resumable runner that studies and probes both use.

A unit is one stored result of one model on one task: its generation, its verdict, a method's
attribution, a probe ranking, or the task's probes. ``UnitRunner`` writes each to the run's SQLite
store (``studies.store.StudyStore``: one committed row per unit, in WAL mode) as soon as it
finishes, so a killed run loses at most the units in flight. Re-running resumes: a stored unit,
done or failed, is read back and never computed or stored twice. A run refuses a store whose
result settings differ from its own (``ResultSettings``), since its stored units would not be
comparable.

The store keeps a unit's kind as one string (``generation``, ``method:<name>``,
``ranking:<ranking>``): ``Unit.key`` writes it and ``Unit.from_key`` reads it, so stores written
before these types existed resume unchanged.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codefocus.errors import RECOVERABLE, InvalidArgumentError
from codefocus.studies.store import StudyStore

# kinds of unit; the named ones carry a method's or a ranking's name
KINDS = ("generation", "verdict", "method", "ranking", "probes")
NAMED_KINDS = ("method", "ranking")
_ABSENT = object()  # a setting a stored configuration does not have


@dataclass(frozen=True)
class Unit:
    """One unit of work: ``kind`` of ``model`` on ``task_id`` (``name``: which method or
    ranking, for those kinds)."""

    model: str
    task_id: str
    kind: str
    name: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidArgumentError(
                f"unknown unit kind {self.kind!r}: use one of {', '.join(KINDS)}"
            )
        if (self.kind in NAMED_KINDS) != bool(self.name):
            need = "needs a name" if self.kind in NAMED_KINDS else "takes no name"
            raise InvalidArgumentError(f"a {self.kind} unit {need}, got {self.name!r}")

    @property
    def key(self) -> str:
        """The kind as the store keeps it: ``generation``, ``method:<name>``, ..."""
        return f"{self.kind}:{self.name}" if self.name else self.kind

    @classmethod
    def from_key(cls, model: str, task_id: str, key: str) -> Unit:
        """The unit a store row names (``Unit.key`` read back)."""
        kind, _, name = key.partition(":")
        return cls(model, task_id, kind, name)

    def __str__(self) -> str:
        return f"{self.model} {self.task_id} {self.key}"


@dataclass(frozen=True)
class UnitResult:
    """A finished unit: its payload (JSON-able), or why it failed; and the seconds it took."""

    unit: Unit
    payload: Any = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return bool(self.error)


@dataclass(frozen=True)
class StoredUnit:
    """A unit as the store holds it."""

    status: str  # done | failed
    payload: Any
    error: str | None
    seconds: float | None

    @property
    def done(self) -> bool:
        return self.status == "done"


@dataclass(frozen=True)
class ResultSettings:
    """The settings that change a stored unit's result: a store may not mix two values of any.

    ``keys``: those settings (``None``: every one but ``ignored``); ``legacy``: the value a
    setting had in stores written before it existed (they were computed that way)."""

    keys: tuple[str, ...] | None = None
    ignored: tuple[str, ...] = ()
    legacy: Mapping[str, Any] = field(default_factory=dict)

    def changed(self, previous: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
        """The settings whose stored value differs from the current one, in order. Named
        settings missing on one side read as their legacy value, or ``None``; with every
        setting compared, a setting one side lacks differs from any value the other has."""
        every = self.keys is None
        keys = tuple(dict.fromkeys([*previous, *current])) if every else self.keys or ()
        missing = _ABSENT if every else None
        return [
            key
            for key in keys
            if key not in self.ignored
            and previous.get(key, self.legacy.get(key, missing)) != current.get(key, missing)
        ]


def failure(error: BaseException) -> str:
    """How a unit's failure is stored: the error's type and message."""
    return f"{type(error).__name__}: {error}"


class UnitRunner:
    """A run's store of units: what is stored (resume), what is finished (incremental, atomic
    writes), and the settings the run may use.

    Args:
        path: the SQLite store (created with its directory when missing).
        on_record: called with each unit this run records, after it is stored (progress,
            counts).
    """

    def __init__(
        self, path: str | Path, on_record: Callable[[UnitResult], None] | None = None
    ) -> None:
        self.store = StudyStore(path)
        self.on_record = on_record

    def __enter__(self) -> UnitRunner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.store.close()

    def claim(
        self,
        config: Mapping[str, Any],
        settings: ResultSettings,
        refusal: Callable[[str, Any, Any], str],
    ) -> dict | None:
        """Record ``config`` as the run's configuration; returns the one stored before (``None``
        for a new store).

        Raises:
            InvalidArgumentError: the store holds units run with another value of a result
                setting; the message is ``refusal(setting, stored value, this run's value)``.
        """
        previous = self.store.meta("config")
        current = json.loads(json.dumps(config))  # as stored and read back
        if previous:
            changed = settings.changed(previous, current)
            if changed:
                first = changed[0]
                raise InvalidArgumentError(refusal(first, previous.get(first), current.get(first)))
        self.store.set_meta("config", current)
        return previous

    def stored(self, unit: Unit) -> StoredUnit | None:
        """The unit as stored, done or failed; ``None`` when it is still to do."""
        row = self.store.get(unit.model, unit.task_id, unit.key)
        if row is None:
            return None
        return StoredUnit(row["status"], row["payload"], row["error"], row["seconds"])

    def has(self, unit: Unit) -> bool:
        return self.store.has(unit.model, unit.task_id, unit.key)

    def record(self, result: UnitResult) -> None:
        """Store one finished unit (a repeat overwrites, never duplicates)."""
        unit = result.unit
        self.store.put(
            unit.model, unit.task_id, unit.key, result.payload, result.error, result.seconds
        )
        if self.on_record is not None:
            self.on_record(result)

    def run(self, unit: Unit, compute: Callable[[], Any]) -> Any:
        """A unit's payload: the stored one (``None`` when it failed), or ``compute()``'s,
        stored first. A recoverable error (``errors.RECOVERABLE``) is stored as the unit's
        failure and gives ``None``."""
        stored = self.stored(unit)
        if stored is not None:
            return stored.payload if stored.done else None
        started = time.perf_counter()
        try:
            payload = compute()
        except RECOVERABLE as error:
            self.record(UnitResult(unit, None, failure(error)))
            return None
        self.record(UnitResult(unit, payload, None, time.perf_counter() - started))
        return payload
