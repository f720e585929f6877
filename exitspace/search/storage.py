"""Study storage. Default: a trial log in one SQLite file in the run directory; else any Optuna storage URL.

The search samples on an in-memory Optuna study (see :mod:`exitspace.search.engine`); finished trials are
written to :class:`TrialLog` once per generation, in one transaction, as compact JSON (parameters,
objective values, state, sampler attributes). On resume they are replayed into a fresh in-memory study
with their parameter distributions re-derived from the design space. This costs tens of microseconds per
trial, where Optuna's RDB storage costs 10-50 ms (one ORM row per parameter) and its journal storage a
few ms, against 1-3 ms for sampling plus evaluating a design. For workers on several machines give an
Optuna storage URL (``postgresql://...``): every worker then samples directly on the shared storage.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Sequence

from exitspace.errors import ConfigError, RunDirError
from exitspace.search.optuna_adapter import BaseDistribution, FrozenTrial, TrialState, create_trial

TRIAL_LOG_FILE = "study.sqlite3"
TRIAL_LOG_SCHEME = "exitspace-sqlite://"


class TrialLog:
    """Finished trials of named studies in an SQLite file (WAL; safe against a killed writer)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(str(self.path), timeout=60, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("CREATE TABLE IF NOT EXISTS studies (name TEXT PRIMARY KEY, directions TEXT NOT NULL)")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS trials (study TEXT NOT NULL, number INTEGER NOT NULL, payload TEXT NOT NULL, "
                "PRIMARY KEY (study, number))"
            )
        except sqlite3.DatabaseError as exc:
            raise ConfigError(
                f"study storage {self.path}: not a usable SQLite file ({exc}); delete it to start the search afresh"
            ) from None

    def open_study(self, name: str, directions: Sequence[str]) -> None:
        """Create the study or check that it has the same directions."""
        row = self._conn.execute("SELECT directions FROM studies WHERE name = ?", (name,)).fetchone()
        if row is None:
            self._conn.execute("INSERT INTO studies VALUES (?, ?)", (name, json.dumps(list(directions))))
        elif json.loads(row[0]) != list(directions):
            raise ConfigError(f"search.study_name: study {name!r} exists with other objectives; choose a new name")

    def load(self, name: str) -> list[dict[str, Any]]:
        """Stored trials in number order."""
        rows = self._conn.execute("SELECT payload FROM trials WHERE study = ? ORDER BY number", (name,)).fetchall()
        return [json.loads(payload) for (payload,) in rows]

    def append(self, name: str, trials: Sequence[FrozenTrial]) -> None:
        """Store finished trials in one transaction; a trial number already stored (by another process) is a
        one-line RunDirError, never overwritten."""
        rows = [(name, t.number, json.dumps(_payload(t), separators=(",", ":"))) for t in trials]
        if not rows:
            return
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.executemany("INSERT INTO trials VALUES (?, ?, ?)", rows)  # never over another process's trials
            self._conn.execute("COMMIT")
        except sqlite3.IntegrityError:
            self._conn.execute("ROLLBACK")
            raise RunDirError(f"{self.path}: trials of study {name!r} were stored by another process meanwhile; run one "
                              "search per run directory (this session's trials since its last write are dropped)") from None
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close the file."""
        self._conn.close()


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


def _payload(trial: FrozenTrial) -> dict[str, Any]:
    return {
        "number": trial.number,
        "state": trial.state.name,
        "params": trial.params,
        "values": trial.values,
        "system_attrs": {k: _jsonable(v) for k, v in trial.system_attrs.items()},
        "user_attrs": trial.user_attrs,
    }


def to_frozen(payload: dict[str, Any], distributions: dict[str, BaseDistribution]) -> FrozenTrial:
    """A stored trial as an Optuna trial (for ``study.add_trials``)."""
    return create_trial(
        state=TrialState[payload["state"]],
        params=payload["params"],
        distributions={k: distributions[k] for k in payload["params"]},
        values=payload["values"],
        system_attrs=payload["system_attrs"],
        user_attrs=payload.get("user_attrs", {}),
    )


def trial_log_url(run_dir: Path) -> str:
    """The default storage of a run directory, as a URL-like string."""
    return f"{TRIAL_LOG_SCHEME}{(Path(run_dir) / TRIAL_LOG_FILE).resolve()}"


def is_trial_log(url: str) -> bool:
    """True for the default storage."""
    return url.startswith(TRIAL_LOG_SCHEME)


def open_trial_log(url: str) -> TrialLog:
    """The trial log a default-storage URL names."""
    return TrialLog(Path(url[len(TRIAL_LOG_SCHEME):]))
