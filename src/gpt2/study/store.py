"""The study's database: raters (hashed tokens, arm), their assigned items, and their answers, in SQLite.

Durability: WAL journal with synchronous=FULL, and every write is one `BEGIN IMMEDIATE ... COMMIT`
transaction that returns only after the commit, so an answer the server acknowledged survives the server
being SIGKILLed (or the machine losing power) and an interrupted one leaves no trace. The primary key
(rater, item) makes a doubled answer impossible. A second submission for an item is refused (`conflict`)
unless it repeats the first exactly (`same`: a client retrying after a lost response), because a rater's
first judgement is what the study measures. Tokens are stored as sha256 hashes; a token is shown once.

Schema changes are numbered migrations (`MIGRATIONS`), applied in order on open; the version lives in
SQLite's `PRAGMA user_version`. A database is tied to the study file it was made for (its sha256).
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpt2.errors import GPT2Error
from gpt2.study.answers import Answer

MIGRATIONS: dict[int, str] = {
    1: """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE raters (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            token_hash TEXT NOT NULL UNIQUE,
            role TEXT NOT NULL CHECK (role IN ('rater', 'admin')),
            number INTEGER UNIQUE,   -- the rater's index for assignment (admins: NULL)
            arm TEXT,
            simulated INTEGER NOT NULL DEFAULT 0,
            created REAL NOT NULL);
        CREATE TABLE assignments (
            rater INTEGER NOT NULL REFERENCES raters (id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            item TEXT NOT NULL,
            PRIMARY KEY (rater, position), UNIQUE (rater, item));
        CREATE TABLE answers (
            rater INTEGER NOT NULL,
            item TEXT NOT NULL,
            credibility INTEGER NOT NULL,
            origin TEXT,
            confidence INTEGER,
            comment TEXT,
            answered REAL NOT NULL,
            PRIMARY KEY (rater, item),
            FOREIGN KEY (rater, item) REFERENCES assignments (rater, item) ON DELETE CASCADE);
    """,
    # seconds a rater spent on the item: skimming shows in it
    2: "ALTER TABLE answers ADD COLUMN seconds REAL;",
}
SCHEMA_VERSION = max(MIGRATIONS)
ANSWER_FIELDS = ("credibility", "origin", "confidence", "comment", "seconds")


class StoreError(GPT2Error):
    """The database is from another study, a newer gpt2, or is not a study database."""


@dataclass(frozen=True)
class Rater:
    id: int
    role: str
    number: int | None
    arm: str | None
    simulated: bool


def hash_token(token: str) -> str:
    # tokens are 128+ random bits, so a plain hash is enough: no one can try them all
    return hashlib.sha256(token.encode()).hexdigest()


class Store:
    def __init__(self, path: str | Path, study_sha256: str) -> None:
        self.path = Path(path)
        self._local = threading.local()  # one connection per thread (sqlite3's rule)
        self.migrate()
        self._bind(study_sha256)

    def _connection(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            # isolation_level=None: transactions are the explicit BEGIN IMMEDIATE / COMMIT below
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            db.row_factory = sqlite3.Row
            try:
                db.execute("PRAGMA journal_mode=WAL")
            except sqlite3.DatabaseError as e:
                raise StoreError(f"{self.path}: not a SQLite database ({e})") from None
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA secure_delete=ON")  # a withdrawn rater's answers are overwritten, not just unlinked
            self._local.db = db
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def version(self) -> int:
        return self._connection().execute("PRAGMA user_version").fetchone()[0]

    def migrate(self, to: int = SCHEMA_VERSION) -> None:
        """Apply the migrations after the database's version, up to `to`, each in its own transaction."""
        if self.version() > SCHEMA_VERSION:
            raise StoreError(f"{self.path}: schema version {self.version()} is newer than this gpt2 knows "
                             f"({SCHEMA_VERSION}); use the gpt2 that made it")
        for version in range(1, to + 1):
            with self.transaction() as db:
                if db.execute("PRAGMA user_version").fetchone()[0] >= version:
                    continue  # another process migrated first
                for statement in MIGRATIONS[version].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {version}")

    def _bind(self, study_sha256: str) -> None:
        with self.transaction() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'study_sha256'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('study_sha256', ?)", (study_sha256,))
            elif row[0] != study_sha256:
                raise StoreError(f"{self.path}: made for a study file with sha256 {row[0][:12]}..., not this "
                                 f"one ({study_sha256[:12]}...); was the study file edited after invitations?")

    # ---- raters ----

    def invite(self, plan: Callable[[int], tuple[str, list[str]]], simulated: bool = False
               ) -> tuple[Rater, str]:
        """A new rater and their token (shown once; only its hash is kept). `plan(number)` gives the
        rater's (arm, item ids); numbers count every rater ever invited."""
        token = secrets.token_urlsafe(24)
        with self.transaction() as db:
            # a counter, not a count of rows: a withdrawn rater's number is never given again
            row = db.execute("SELECT value FROM meta WHERE key = 'raters_invited'").fetchone()
            number = int(row[0]) if row else 0
            arm, items = plan(number)
            cursor = db.execute("INSERT INTO raters (token_hash, role, number, arm, simulated, created) "
                                "VALUES (?, 'rater', ?, ?, ?, ?)",
                                (hash_token(token), number, arm, int(simulated), time.time()))
            db.executemany("INSERT INTO assignments VALUES (?, ?, ?)",
                           [(cursor.lastrowid, p, item) for p, item in enumerate(items)])
            db.execute("INSERT OR REPLACE INTO meta VALUES ('raters_invited', ?)", (str(number + 1),))
        return Rater(cursor.lastrowid, "rater", number, arm, simulated), token

    def add_admin(self) -> str:
        token = secrets.token_urlsafe(24)
        with self.transaction() as db:
            db.execute("INSERT INTO raters (token_hash, role, created) VALUES (?, 'admin', ?)",
                       (hash_token(token), time.time()))
        return token

    def rater(self, token: str) -> Rater | None:
        row = self._connection().execute("SELECT id, role, number, arm, simulated FROM raters WHERE token_hash = ?",
                                          (hash_token(token),)).fetchone()
        return None if row is None else Rater(row[0], row[1], row[2], row[3], bool(row[4]))

    def raters(self) -> list[Rater]:
        rows = self._connection().execute(
            "SELECT id, role, number, arm, simulated FROM raters WHERE role = 'rater' ORDER BY number")
        return [Rater(r[0], r[1], r[2], r[3], bool(r[4])) for r in rows]

    def withdraw(self, number: int) -> int:
        """Delete rater `number`: token, assignment and every answer. Returns the answers deleted."""
        with self.transaction() as db:
            row = db.execute("SELECT id FROM raters WHERE number = ?", (number,)).fetchone()
            if row is None:
                raise StoreError(f"{self.path}: no rater number {number}")
            deleted = db.execute("DELETE FROM answers WHERE rater = ?", (row[0],)).rowcount
            db.execute("DELETE FROM raters WHERE id = ?", (row[0],))
        # secure_delete zeroed the freed pages; moving the WAL into the file and truncating it leaves no copy
        self._connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return deleted

    # ---- items and answers ----

    def assignment(self, rater: int) -> list[str]:
        rows = self._connection().execute("SELECT item FROM assignments WHERE rater = ? ORDER BY position",
                                          (rater,))
        return [r[0] for r in rows]

    def answered(self, rater: int) -> set[str]:
        return {r[0] for r in self._connection().execute("SELECT item FROM answers WHERE rater = ?", (rater,))}

    def submit(self, rater: int, answer: Answer) -> str:
        """'recorded' (committed now), 'same' (already recorded, identical), 'conflict' (already recorded,
        different: refused) or 'not-assigned'."""
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM assignments WHERE rater = ? AND item = ?",
                          (rater, answer.item)).fetchone() is None:
                return "not-assigned"
            old = db.execute(f"SELECT {', '.join(ANSWER_FIELDS)} FROM answers WHERE rater = ? AND item = ?",
                             (rater, answer.item)).fetchone()
            if old is not None:
                return "same" if answer.same_as(dict(old)) else "conflict"
            db.execute(f"INSERT INTO answers (rater, item, answered, {', '.join(ANSWER_FIELDS)}) "
                       f"VALUES (?, ?, ?, {', '.join('?' * len(ANSWER_FIELDS))})",
                       (rater, answer.item, time.time(), *(getattr(answer, f) for f in ANSWER_FIELDS)))
        return "recorded"

    def answers(self) -> list[dict[str, Any]]:
        """Every answer with its rater's number, arm and simulated flag, in answering order."""
        rows = self._connection().execute(
            f"SELECT r.number AS rater, r.arm, r.simulated, a.item, a.answered, "
            f"{', '.join('a.' + f for f in ANSWER_FIELDS)} FROM answers a JOIN raters r ON r.id = a.rater "
            "ORDER BY a.answered, r.number")
        return [{**dict(row), "simulated": bool(row["simulated"])} for row in rows]

    def progress(self) -> list[dict[str, Any]]:
        """Per rater: number, arm, simulated, items answered of assigned, last answer time."""
        rows = self._connection().execute(
            "SELECT r.number, r.arm, r.simulated, (SELECT COUNT(*) FROM assignments s WHERE s.rater = r.id), "
            "(SELECT COUNT(*) FROM answers a WHERE a.rater = r.id), (SELECT MAX(answered) FROM answers a "
            "WHERE a.rater = r.id) FROM raters r WHERE r.role = 'rater' ORDER BY r.number")
        return [{"rater": r[0], "arm": r[1], "simulated": bool(r[2]), "assigned": r[3], "answered": r[4],
                 "last_answer": r[5]} for r in rows]

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
