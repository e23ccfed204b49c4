"""One SQLite database per study. Every finished unit is committed at once (WAL), so a killed
study loses at most the units in flight, and a re-run skips every unit already stored."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

from codefocus.errors import DataError

SCHEMA = """
CREATE TABLE IF NOT EXISTS units (
    model TEXT NOT NULL,
    task_id TEXT NOT NULL,
    kind TEXT NOT NULL,          -- generation | verdict | attribution:<method>
    status TEXT NOT NULL,        -- done | failed
    payload TEXT,                -- JSON
    error TEXT,
    seconds REAL,
    finished REAL,
    PRIMARY KEY (model, task_id, kind)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""


class StudyStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=60)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
            self._db.commit()
            self._db.execute("SELECT count(*) FROM units").fetchone()
        except sqlite3.DatabaseError as error:  # not a database, or a damaged one
            raise DataError(f"{self.path} is not a readable study store ({error})") from None

    def set_meta(self, key: str, value) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))
            self._db.commit()

    def meta(self, key: str, default=None):
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def has(self, model: str, task_id: str, kind: str) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM units WHERE model = ? AND task_id = ? AND kind = ?",
                (model, task_id, kind),
            ).fetchone()
        return row is not None

    def get(self, model: str, task_id: str, kind: str) -> dict | None:
        with self._lock:
            row = self._db.execute(
                "SELECT status, payload, error, seconds FROM units "
                "WHERE model = ? AND task_id = ? AND kind = ?",
                (model, task_id, kind),
            ).fetchone()
        if row is None:
            return None
        return {
            "status": row[0],
            "payload": json.loads(row[1]) if row[1] else None,
            "error": row[2],
            "seconds": row[3],
        }

    def put(
        self,
        model: str,
        task_id: str,
        kind: str,
        payload=None,
        error: str | None = None,
        seconds: float = 0.0,
    ) -> None:
        """Record one finished unit (atomically; a repeat overwrites, never duplicates)."""
        status = "failed" if error else "done"
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO units VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    model,
                    task_id,
                    kind,
                    status,
                    None if payload is None else json.dumps(payload),
                    error,
                    seconds,
                    time.time(),
                ),
            )
            self._db.commit()

    def rows(self, kind_prefix: str = "") -> list[dict]:
        with self._lock:
            cursor = self._db.execute(
                "SELECT model, task_id, kind, status, payload, error, seconds FROM units "
                "WHERE kind LIKE ? ORDER BY model, task_id, kind",
                (kind_prefix + "%",),
            )
            rows = cursor.fetchall()
        return [
            {
                "model": r[0],
                "task_id": r[1],
                "kind": r[2],
                "status": r[3],
                "payload": json.loads(r[4]) if r[4] else None,
                "error": r[5],
                "seconds": r[6],
            }
            for r in rows
        ]

    def close(self) -> None:
        with self._lock:
            self._db.close()
