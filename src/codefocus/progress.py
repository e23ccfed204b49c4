"""Progress that shows wherever the output goes: rich bars on a terminal, plain periodic lines
in a log (``study ... > log 2>&1`` says how far it is), nothing with ``--quiet``.

``make_progress`` returns an object with the part of ``rich.progress.Progress``'s interface that
codefocus uses: a context manager with ``add_task``, ``advance``, ``update`` and ``console``.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

from rich.console import Console

QUIET = False  # set by ``codefocus --quiet``: no progress at all
INTERVAL_ENV = "CODEFOCUS_PROGRESS_SECONDS"  # seconds between plain lines (default 10)


@dataclass
class _Task:
    description: str
    total: float | None
    completed: float = 0.0
    printed_at: float | None = None  # the first move of a task always gets a line
    log: bool = True  # False: a detail bar, shown on a terminal but given no lines in a log


class LogProgress:
    """Plain progress lines (``[codefocus] training: 12/30 (40%), 1m05s``) on stderr, at most one
    per task every few seconds, and one when a task completes. A task added with ``log=False``
    (rich keeps it as a field) is a detail of another one — a study's per-method bars, which all
    move at once as each of its tasks ends — and gets no lines of its own."""

    def __init__(self, console: Console | None = None, interval: float | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.interval = (
            interval if interval is not None else float(os.environ.get(INTERVAL_ENV, "10"))
        )
        self.tasks: dict[int, _Task] = {}
        self.started = time.monotonic()

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def add_task(self, description: str, total: float | None = None, log: bool = True, **_) -> int:
        index = len(self.tasks)
        self.tasks[index] = _Task(description.strip(), total, log=log)
        return index

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def update(
        self,
        task_id: int,
        *,
        advance: float | None = None,
        completed: float | None = None,
        description: str | None = None,
        **_,
    ) -> None:
        task = self.tasks[task_id]
        if description is not None:
            task.description = description.strip()
        if completed is not None:
            task.completed = completed
        if advance is not None:
            task.completed += advance
        now = time.monotonic()
        finished = task.total is not None and task.completed >= task.total
        if task.log and (
            finished or task.printed_at is None or now - task.printed_at >= self.interval
        ):
            task.printed_at = now
            self._line(task, now)

    def _line(self, task: _Task, now: float) -> None:
        elapsed = int(now - self.started)
        done = f"{task.completed:g}"
        if task.total:
            done += f"/{task.total:g} ({100 * task.completed / task.total:.0f}%)"
        print(
            f"[codefocus] {task.description}: {done}, {elapsed // 60}m{elapsed % 60:02d}s",
            file=sys.stderr,
            flush=True,
        )


class NoProgress(LogProgress):
    """``--quiet``: the same interface, no output."""

    def _line(self, task: _Task, now: float) -> None:
        return None


def make_progress(console: Console | None = None, *columns):
    """A rich progress display on a terminal, plain lines otherwise, nothing when quiet."""
    console = console or Console(stderr=True)
    if QUIET:
        return NoProgress(console)
    if not console.is_terminal:
        return LogProgress(console)
    from rich.progress import Progress

    return Progress(*columns, console=console, transient=False)
