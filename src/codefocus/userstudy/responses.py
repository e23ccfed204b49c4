"""Participants and their answers, in ``US_DIR/responses.sqlite`` (WAL): every answer is
committed the moment it arrives, so a participant who leaves (or a server that stops) loses
nothing, and several participants can answer at once."""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from codefocus.errors import DataError, InvalidArgumentError
from codefocus.serialization import JsonRecord

RESPONSES_NAME = "responses.sqlite"
EXPORT_FORMAT = "codefocus-userstudy-responses/1"

SCHEMA = """
CREATE TABLE IF NOT EXISTS participants (
    token TEXT PRIMARY KEY,
    number INTEGER NOT NULL UNIQUE,   -- draws the participant's order from the design's seed
    started REAL NOT NULL,
    finished REAL
);
CREATE TABLE IF NOT EXISTS ratings (
    token TEXT NOT NULL REFERENCES participants(token),
    task TEXT NOT NULL,
    method TEXT NOT NULL,             -- resolved on the server; participants never see it
    position INTEGER NOT NULL,        -- where the participant saw it (1, 2, ...)
    question TEXT NOT NULL,
    value INTEGER NOT NULL CHECK (value BETWEEN 1 AND 7),
    answered REAL NOT NULL,
    PRIMARY KEY (token, task, method, question)
);
CREATE TABLE IF NOT EXISTS answers (
    token TEXT NOT NULL REFERENCES participants(token),
    question TEXT NOT NULL,
    text TEXT NOT NULL,
    answered REAL NOT NULL,
    PRIMARY KEY (token, question)
);
"""


@dataclass(frozen=True)
class Rating(JsonRecord):
    participant: str
    task: str
    method: str
    position: int
    question: str
    value: int


@dataclass(frozen=True)
class OpenAnswer(JsonRecord):
    participant: str
    question: str
    text: str


class ResponseStore:
    """One connection per use (the web server answers from several threads)."""

    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory) / RESPONSES_NAME
        try:
            with closing(self._connect()) as db:
                db.executescript(SCHEMA)
                db.commit()
        except sqlite3.DatabaseError as error:
            raise DataError(f"{self.path} is not a readable response store ({error})") from None

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        return db

    # ---- participants ---------------------------------------------------------------------
    def new_participant(self) -> tuple[str, int]:
        """A fresh unguessable token and the next participant number."""
        token = secrets.token_urlsafe(16)
        with closing(self._connect()) as db, db:
            db.execute("BEGIN IMMEDIATE")  # two participants starting at once get two numbers
            (number,) = db.execute(
                "SELECT COALESCE(MAX(number) + 1, 0) FROM participants"
            ).fetchone()
            db.execute(
                "INSERT INTO participants (token, number, started) VALUES (?, ?, ?)",
                (token, number, time.time()),
            )
        return token, number

    def participant(self, token: str) -> tuple[int, bool] | None:
        """(number, finished) of a token, or None for an unknown one."""
        with closing(self._connect()) as db:
            row = db.execute(
                "SELECT number, finished FROM participants WHERE token = ?", (token,)
            ).fetchone()
        return None if row is None else (int(row[0]), row[1] is not None)

    def finish(self, token: str) -> None:
        with closing(self._connect()) as db, db:
            db.execute("UPDATE participants SET finished = ? WHERE token = ?", (time.time(), token))

    # ---- answers --------------------------------------------------------------------------
    def rate(
        self, token: str, task: str, method: str, position: int, question: str, value: int
    ) -> None:
        if not 1 <= value <= 7:
            raise InvalidArgumentError(f"a rating is 1 to 7, got {value}")
        with closing(self._connect()) as db, db:
            db.execute(
                "INSERT OR REPLACE INTO ratings VALUES (?, ?, ?, ?, ?, ?, ?)",
                (token, task, method, position, question, value, time.time()),
            )

    def answer(self, token: str, question: str, text: str) -> None:
        with closing(self._connect()) as db, db:
            if text.strip():
                db.execute(
                    "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?)",
                    (token, question, text, time.time()),
                )
            else:
                db.execute(
                    "DELETE FROM answers WHERE token = ? AND question = ?", (token, question)
                )

    def ratings_of(self, token: str) -> dict[tuple[str, str, str], int]:
        """(task, method, question) -> value, for one participant."""
        with closing(self._connect()) as db:
            rows = db.execute(
                "SELECT task, method, question, value FROM ratings WHERE token = ?", (token,)
            ).fetchall()
        return {(t, m, q): int(v) for t, m, q, v in rows}

    def answers_of(self, token: str) -> dict[str, str]:
        with closing(self._connect()) as db:
            rows = db.execute(
                "SELECT question, text FROM answers WHERE token = ?", (token,)
            ).fetchall()
        return dict(rows)

    # ---- everything, for the analysis and for export ---------------------------------------
    def ratings(self) -> list[Rating]:
        with closing(self._connect()) as db:
            rows = db.execute(
                "SELECT token, task, method, position, question, value FROM ratings "
                "ORDER BY token, task, method, question"
            ).fetchall()
        return [Rating(*row) for row in rows]

    def answers(self) -> list[OpenAnswer]:
        with closing(self._connect()) as db:
            rows = db.execute(
                "SELECT token, question, text FROM answers ORDER BY question, token"
            ).fetchall()
        return [OpenAnswer(*row) for row in rows]

    def export(self) -> dict:
        """Every participant, rating and open answer as one JSON object."""
        with closing(self._connect()) as db:
            participants = [
                {"participant": t, "number": n, "started": s, "finished": f}
                for t, n, s, f in db.execute(
                    "SELECT token, number, started, finished FROM participants ORDER BY number"
                )
            ]
        return {
            "format": EXPORT_FORMAT,
            "participants": participants,
            "ratings": [r.to_dict() for r in self.ratings()],
            "answers": [a.to_dict() for a in self.answers()],
        }

    def import_(self, data: dict, methods: tuple[str, ...]) -> int:
        """Add the responses of a study run elsewhere (same design); returns how many
        participants were added. A participant already here is refused, not merged."""
        if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
            raise DataError(f"not a codefocus user-study export (format {EXPORT_FORMAT} expected)")
        try:
            participants = [str(p["participant"]) for p in data["participants"]]
            ratings = [Rating.from_dict(r) for r in data["ratings"]]
            answers = [OpenAnswer.from_dict(a) for a in data["answers"]]
        except (KeyError, TypeError, ValueError) as error:
            raise DataError(f"malformed user-study export ({error})") from None
        for rating in ratings:
            if rating.method not in methods or not 1 <= rating.value <= 7:
                raise DataError(f"export rating does not fit this design: {rating}")
            if rating.participant not in participants:
                raise DataError(f"export rating of an unlisted participant: {rating.participant}")
        with closing(self._connect()) as db, db:
            db.execute("BEGIN IMMEDIATE")
            known = {t for (t,) in db.execute("SELECT token FROM participants")}
            clash = sorted(known & set(participants))
            if clash:
                raise DataError(f"participant {clash[0]} is already in this study: not imported")
            (number,) = db.execute(
                "SELECT COALESCE(MAX(number) + 1, 0) FROM participants"
            ).fetchone()
            for offset, record in enumerate(data["participants"]):
                db.execute(
                    "INSERT INTO participants VALUES (?, ?, ?, ?)",
                    (
                        str(record["participant"]),
                        number + offset,
                        float(record.get("started") or 0),
                        record.get("finished"),
                    ),
                )
            for r in ratings:
                db.execute(
                    "INSERT INTO ratings VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (r.participant, r.task, r.method, r.position, r.question, r.value, time.time()),
                )
            for a in answers:
                db.execute(
                    "INSERT INTO answers VALUES (?, ?, ?, ?)",
                    (a.participant, a.question, a.text, time.time()),
                )
        return len(participants)


def read_export(path: str | Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"cannot read responses {path}: {error}") from None
