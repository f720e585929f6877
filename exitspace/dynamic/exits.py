"""Exit assignment for per-exit thresholds, vectorised over many threshold vectors.

Rule: a sample leaves at the first exit whose confidence is >= that exit's threshold; the final exit
always takes the rest. Thresholds are given for the early exits (``E-1`` values; a vector of ``E``
values is accepted and its last entry ignored). ``inf`` means "this exit never fires".

:class:`ExitScorer` holds confidences ``[N, E]`` and correctness ``[N, E]`` of one split for one exit
subset; :meth:`ExitScorer.score` scores ``[M, E-1]`` threshold vectors at once (ratios, accuracy,
per-exit accuracy) and :meth:`ExitScorer.outcome` gives one :class:`ExitOutcome`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from exitspace.dynamic.confidence import confidence
from exitspace.errors import ConfigError
from exitspace.train.exit_table import ExitTable


@dataclass
class ExitOutcome:
    """Exit ratios and accuracies of one threshold vector on one split."""

    exit_keys: list[str]
    thresholds: list[float]
    ratios: list[float]
    exit_accuracy: list[float | None]
    accuracy: float
    samples: int
    split: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (``inf`` thresholds written as None)."""
        return {
            "split": self.split,
            "exit_keys": list(self.exit_keys),
            "thresholds": [None if not np.isfinite(t) else float(t) for t in self.thresholds],
            "ratios": list(self.ratios),
            "exit_accuracy": list(self.exit_accuracy),
            "accuracy": self.accuracy,
            "samples": self.samples,
        }


@dataclass
class ScoreBatch:
    """Scores of ``M`` threshold vectors: ratios / per-exit correct counts ``[M, E]``, accuracy ``[M]``."""

    counts: np.ndarray
    correct: np.ndarray
    samples: int

    @property
    def ratios(self) -> np.ndarray:
        """[M, E] share of samples leaving at each exit."""
        return self.counts / self.samples

    @property
    def accuracy(self) -> np.ndarray:
        """[M] overall accuracy."""
        return self.correct.sum(axis=1) / self.samples

    @property
    def exit_accuracy(self) -> np.ndarray:
        """[M, E] accuracy of the samples leaving at each exit (nan where none leave)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.counts > 0, self.correct / np.maximum(self.counts, 1), np.nan)


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)


def _popcount_rows(packed: np.ndarray) -> np.ndarray:
    """Set bits per row of a uint8 array."""
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(packed).sum(axis=1, dtype=np.int64)
    return _POPCOUNT[packed].sum(axis=1)


class ExitScorer:
    """Confidences and correctness of one split for one exit subset (see module docstring)."""

    def __init__(
        self, confidences: np.ndarray, correct: np.ndarray, exit_keys: Sequence[str], split: str = ""
    ) -> None:
        confidences = np.asarray(confidences, dtype=np.float32)
        correct = np.asarray(correct, dtype=bool)
        if confidences.ndim != 2 or confidences.shape != correct.shape or confidences.shape[1] != len(exit_keys):
            raise ConfigError(
                f"exit scorer: confidences {confidences.shape} and correct {correct.shape} must both be "
                f"[N, {len(exit_keys)}] (one column per exit)"
            )
        if confidences.shape[0] == 0:
            raise ConfigError("exit scorer: no samples; the split is empty")
        self.conf = np.ascontiguousarray(confidences.T)  # [E, N]
        self.hit_ok = np.ascontiguousarray(correct.T)  # [E, N]
        self.exit_keys = list(exit_keys)
        self.split = split
        self.samples = confidences.shape[0]
        self._valid = np.packbits(np.ones((1, self.samples), dtype=bool), axis=1)  # padding bits stay 0
        self._ok_packed = np.packbits(self.hit_ok, axis=1)[:, None, :]  # [E, 1, bytes]

    @property
    def num_exits(self) -> int:
        """Number of exits, the final one included."""
        return len(self.exit_keys)

    @classmethod
    def from_exit_table(
        cls, table: ExitTable, split: str, exit_keys: Sequence[str], kind: str = "max_softmax"
    ) -> "ExitScorer":
        """Scorer of ``exit_keys`` (head keys, network order) on ``split`` of an exit table."""
        if split not in table.logits:
            raise ConfigError(f"exit table: no split {split!r}; available {sorted(table.logits)}")
        columns = [table.head_index(key) for key in exit_keys]
        logits = table.logits[split][:, columns, :]
        labels = table.labels[split]
        correct = logits.argmax(axis=-1) == labels[:, None]
        return cls(confidence(logits, kind), correct, exit_keys, split)

    def threshold_vectors(self, thresholds: np.ndarray) -> np.ndarray:
        """``[M, E-1]`` float32 threshold vectors from one vector or a batch (of E-1 or E values each)."""
        values = np.asarray(thresholds, dtype=np.float32)
        values = values.reshape(1, -1) if values.ndim == 1 else values
        early = self.num_exits - 1
        if values.ndim != 2 or values.shape[1] not in (early, early + 1):
            raise ConfigError(
                f"thresholds: {values.shape[-1]} per vector for {self.num_exits} exits; give {early} (one per "
                f"early exit) or {early + 1}"
            )
        if np.isnan(values).any():
            raise ConfigError("thresholds: contain NaN; give numbers (inf = never exit)")
        return values[:, :early]

    def score(self, thresholds: np.ndarray, chunk_elements: int = 1 << 22) -> ScoreBatch:
        """Score ``[M, E-1]`` (or ``[E-1]``) threshold vectors at once (bit-packed sample masks)."""
        early = self.threshold_vectors(thresholds)
        count = early.shape[0]
        exits = self.num_exits
        counts = np.zeros((count, exits), dtype=np.int64)
        correct = np.zeros((count, exits), dtype=np.int64)
        step = max(1, chunk_elements // self.samples)
        for lo in range(0, count, step):
            block = early[lo : lo + step]
            remaining = np.repeat(self._valid, block.shape[0], axis=0)  # samples not yet out, packed
            for e in range(exits - 1):
                hit = np.packbits(self.conf[e][None, :] >= block[:, e : e + 1], axis=1)
                hit &= remaining
                counts[lo : lo + step, e] = _popcount_rows(hit)
                remaining &= ~hit
                hit &= self._ok_packed[e]
                correct[lo : lo + step, e] = _popcount_rows(hit)
            counts[lo : lo + step, -1] = _popcount_rows(remaining)
            remaining &= self._ok_packed[-1]
            correct[lo : lo + step, -1] = _popcount_rows(remaining)
        return ScoreBatch(counts, correct, self.samples)

    def assign(self, thresholds: Sequence[float]) -> np.ndarray:
        """[N] exit index of every sample for one threshold vector."""
        early = self.threshold_vectors(np.asarray(thresholds))[0]
        exit_of = np.full(self.samples, self.num_exits - 1, dtype=np.int64)
        for e in range(self.num_exits - 2, -1, -1):
            exit_of[self.conf[e] >= early[e]] = e
        return exit_of

    def outcome(self, thresholds: Sequence[float] | np.ndarray) -> ExitOutcome:
        """Ratios and accuracies of one threshold vector."""
        early = self.threshold_vectors(np.asarray(thresholds))
        batch = self.score(early)
        exit_acc = batch.exit_accuracy[0]
        return ExitOutcome(
            exit_keys=list(self.exit_keys),
            thresholds=[float(t) for t in early[0]],
            ratios=[float(r) for r in batch.ratios[0]],
            exit_accuracy=[None if np.isnan(a) else float(a) for a in exit_acc],
            accuracy=float(batch.accuracy[0]),
            samples=self.samples,
            split=self.split,
        )

    @property
    def final_accuracy(self) -> float:
        """Accuracy when every sample runs to the final exit."""
        return float(self.hit_ok[-1].mean())


def parse_thresholds(values: Sequence[float], num_exits: int) -> np.ndarray:
    """One threshold for all early exits, or one per early exit -> ``[E-1]``; one-line error otherwise."""
    values = [float(v) for v in values]
    early = num_exits - 1
    if len(values) == 1:
        return np.full(early, values[0])
    if len(values) in (early, early + 1):
        return np.asarray(values[:early])
    raise ConfigError(f"thresholds: {len(values)} values for {early} early exits; give 1 or {early}")
