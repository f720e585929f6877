"""Evaluations worth keeping between runs: designs mapped by a slow allocation strategy (the GA, which the
search uses to refine its front and to give the baselines their best mapping), in an SQLite file of the run
directory, so that a re-run of a finished study does not pay for them again.

Key: the evaluator's identity (exit tables, hardware, cost backend, seed, metric settings, package version;
built by the caller) and the design; value: the full :class:`ScoredDesign` as JSON. Evaluations are
deterministic, so a stored one equals a fresh one. Delete the file to drop them.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from exitspace.errors import DataError
from exitspace.search.scored import Evaluator, ScoredDesign
from exitspace.search.space import Design

STORED_FILE = "evaluations.sqlite3"
SLOW_STRATEGIES = ("ga",)


class StoredEvaluations:
    """An evaluator that keeps the evaluations of designs with a slow allocation strategy in a file; every other
    attribute is the wrapped evaluator's."""

    def __init__(self, inner: Evaluator, path: Path, identity: str, strategies: tuple[str, ...] = SLOW_STRATEGIES):
        self.inner = inner
        self.identity = identity
        self.strategies = strategies
        self.hits = 0
        try:
            self._db = sqlite3.connect(str(path), isolation_level=None)
            self._db.execute("CREATE TABLE IF NOT EXISTS scored (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        except sqlite3.DatabaseError as exc:
            raise DataError(f"{path}: not a usable SQLite file ({exc}); delete it (it only saves time)") from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def evaluate(self, design: Design) -> ScoredDesign:
        """The stored evaluation of a slow-strategy design, else a fresh one (stored when slow)."""
        if design.allocation not in self.strategies:
            return self.inner.evaluate(design)
        key = json.dumps([self.identity, design.to_dict()], sort_keys=True, separators=(",", ":"))
        row = self._db.execute("SELECT value FROM scored WHERE key = ?", (key,)).fetchone()
        if row is not None:
            self.hits += 1
            return ScoredDesign.from_dict(json.loads(row[0]))
        scored = self.inner.evaluate(design)
        self._db.execute("INSERT OR REPLACE INTO scored VALUES (?, ?)", (key, json.dumps(scored.to_dict())))
        return scored

    def close(self) -> None:
        """Close the file."""
        self._db.close()
