"""The default study storage: Optuna's journal storage kept in one SQLite file in the run directory.

Optuna's RDB storage writes one ORM row per parameter and attribute (10-50 ms per trial on these
machines), which would dominate a search whose evaluations take about a millisecond. Optuna's journal
storage keeps the study as an append-only log replayed in memory; this backend stores that log as rows of
an SQLite table (one transaction per append, WAL mode), which is process-safe and costs well under a
millisecond per trial. Any other Optuna storage URL (``sqlite:///...``, ``postgresql://...``) is used as
given.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterable

import optuna
from optuna.storages.journal import BaseJournalBackend, JournalStorage

from exitspace.errors import ConfigError

JOURNAL_FILE = "study.sqlite3"
JOURNAL_SCHEME = "exitspace-journal://"


class SQLiteJournalBackend(BaseJournalBackend):
    """Journal log lines as rows of an SQLite table; safe for several processes on one machine."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(str(self.path), timeout=60, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("CREATE TABLE IF NOT EXISTS journal (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT)")
        except sqlite3.DatabaseError as exc:
            raise ConfigError(
                f"study storage {self.path}: not a usable SQLite file ({exc}); delete it to start the search afresh"
            ) from None

    def read_logs(self, log_number_from: int) -> Iterable[dict[str, Any]]:
        """Logs with number >= ``log_number_from`` (0-based, in append order)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT body FROM journal WHERE id > ? ORDER BY id", (log_number_from,)
            ).fetchall()
        return [json.loads(body) for (body,) in rows]

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        """Append in one transaction."""
        bodies = [(json.dumps(log, separators=(",", ":")),) for log in logs]
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany("INSERT INTO journal (body) VALUES (?)", bodies)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise


def journal_url(run_dir: Path) -> str:
    """The default storage of a run directory, as a URL-like string."""
    return f"{JOURNAL_SCHEME}{(Path(run_dir) / JOURNAL_FILE).resolve()}"


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """An Optuna storage from our journal URL or any Optuna storage URL; one-line error if unusable."""
    if url.startswith(JOURNAL_SCHEME):
        return JournalStorage(SQLiteJournalBackend(Path(url[len(JOURNAL_SCHEME):])))
    try:
        return optuna.storages.get_storage(url)
    except Exception as exc:  # noqa: BLE001 - Optuna/SQLAlchemy raise many types for a bad URL
        first = str(exc).splitlines()[0][:120] if str(exc) else ""
        raise ConfigError(
            f"search.storage: cannot open {url!r} ({type(exc).__name__}: {first}); give an Optuna storage URL "
            "such as sqlite:///study.db or postgresql://user:password@host/db"
        ) from None
