"""Per-exit threshold calibration on the validation split, reported on the test split.

Two targets:

- ``target_drop`` (percentage points): the cheapest thresholds whose val accuracy is at least the
  final-exit-only val accuracy minus the drop;
- ``max_cost``: the most accurate thresholds whose expected cost is at most the budget.

Expected cost of a threshold vector = ``ratios . cost_per_exit``, with ``cost_per_exit[i]`` what a sample
leaving at exit i costs (e.g. ``E_cum,i * L_cum,i`` from a schedule, which makes the expected cost the
paper's average product; any per-exit cost works). Search: a sweep of one shared threshold (the paper's
rule, on a fine grid), then coordinate descent over the exits, each step scoring every grid value of
one exit at once (grid = quantiles of that exit's val confidences, plus "never"), until no step helps.
"""

from __future__ import annotations

import math

from dataclasses import dataclass
from typing import Any, Sequence, cast

import numpy as np

from exitspace.dynamic.exits import ExitOutcome, ExitScorer, ScoreBatch
from exitspace.errors import ConfigError


@dataclass
class Calibration:
    """Chosen thresholds with their val (and test) outcome and cost."""

    target: str
    target_value: float
    thresholds: list[float]
    feasible: bool
    val: ExitOutcome
    val_cost: float
    reference_accuracy: float
    vectors_scored: int
    test: ExitOutcome | None = None
    test_cost: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "target": self.target,
            "target_value": self.target_value,
            "thresholds": [None if not np.isfinite(t) else float(t) for t in self.thresholds],
            "feasible": self.feasible,
            "reference_accuracy": self.reference_accuracy,
            "vectors_scored": self.vectors_scored,
            "val": self.val.to_dict(),
            "val_cost": self.val_cost,
            "test": None if self.test is None else self.test.to_dict(),
            "test_cost": self.test_cost,
        }


def threshold_grid(scorer: ExitScorer, exit_index: int, size: int) -> np.ndarray:
    """Candidate thresholds of one exit: ``size`` quantiles of its confidences, deduplicated, plus inf."""
    values = np.quantile(scorer.conf[exit_index], np.linspace(0.0, 1.0, size))
    return np.concatenate([np.unique(values.astype(np.float32)), [np.inf]])


class _Chooser:
    def __init__(self, cost: np.ndarray, min_accuracy: float | None, max_cost: float | None) -> None:
        self.cost, self.min_accuracy, self.max_cost = cost, min_accuracy, max_cost

    def keys(self, batch: ScoreBatch) -> np.ndarray:
        """[M, 3] lexicographic keys (smaller is better): infeasible flag, primary, secondary."""
        cost = batch.ratios @ self.cost
        acc = batch.accuracy
        if self.min_accuracy is not None:
            infeasible = acc < self.min_accuracy - 1e-12
            return np.stack([infeasible, np.where(infeasible, -acc, cost), -acc], axis=1)
        infeasible = cost > cast(float, self.max_cost) * (1 + 1e-12)  # cast: max_cost is set when min_accuracy is not
        return np.stack([infeasible, np.where(infeasible, cost, -acc), cost], axis=1)

    def best(self, batch: ScoreBatch) -> tuple[int, np.ndarray]:
        keys = self.keys(batch)
        order = np.lexsort(keys.T[::-1])
        return int(order[0]), keys[order[0]]


def _checked_cost(val: ExitScorer, cost_per_exit: Sequence[float] | np.ndarray, target_drop: float | None,
                  max_cost: float | None) -> np.ndarray:
    """The per-exit costs as an array, after one-line checks of the target and the costs."""
    if (target_drop is None) == (max_cost is None):
        raise ConfigError("calibration: give exactly one of target_drop (accuracy points) or max_cost")
    cost = np.asarray(cost_per_exit, dtype=float)
    if cost.shape != (val.num_exits,) or not np.all(np.isfinite(cost)):
        raise ConfigError(f"calibration: cost_per_exit needs {val.num_exits} finite values (got {cost.tolist()})")
    if target_drop is not None and not 0 <= target_drop < 100:
        raise ConfigError(f"target_drop: {target_drop} is outside [0, 100); give the accepted accuracy loss in points")
    if max_cost is not None and not (math.isfinite(max_cost) and max_cost > 0):
        raise ConfigError(f"max_cost: {max_cost} is not a positive budget; give the expected cost per sample to stay under")
    return cost


def _starting_vectors(val: ExitScorer, start: Sequence[float] | None) -> np.ndarray:
    """The shared-threshold sweep (201 values and "never") over the early exits, plus ``start`` if given."""
    early = val.num_exits - 1
    if early == 0:
        return np.zeros((1, 0), dtype=np.float32)
    shared = np.concatenate([np.linspace(0.0, 1.0, 201, dtype=np.float32), [np.inf]])
    vectors = np.repeat(shared[:, None], early, axis=1)
    if start is not None:
        vectors = np.concatenate([vectors, val.threshold_vectors(np.asarray(start, dtype=np.float32))])
    return vectors


def _descend(val: ExitScorer, chooser: _Chooser, current: np.ndarray, best_key: np.ndarray, grid_size: int,
             max_passes: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Coordinate descent from ``current``: per pass, each exit tries every value of its grid at once and
    keeps the best if it beats ``best_key``. Returns (thresholds, their key, vectors scored)."""
    early = val.num_exits - 1
    grids = [threshold_grid(val, e, grid_size) for e in range(early)]
    scored = 0
    for _ in range(max_passes):
        improved = False
        for e in range(early):
            trial = np.repeat(current[None, :], grids[e].size, axis=0)
            trial[:, e] = grids[e]
            pick, key = chooser.best(val.score(trial))
            scored += len(trial)
            if tuple(key) < tuple(best_key) and trial[pick, e] != current[e]:
                current, best_key, improved = trial[pick].copy(), key, True
        if not improved:
            break
    return current, best_key, scored


def calibrate(
    val: ExitScorer,
    cost_per_exit: Sequence[float] | np.ndarray,
    target_drop: float | None = None,
    max_cost: float | None = None,
    test: ExitScorer | None = None,
    grid_size: int = 64,
    max_passes: int = 8,
    start: Sequence[float] | None = None,
) -> Calibration:
    """Pick per-exit thresholds on ``val`` for one target (see module docstring); report on ``test``.

    ``start`` (one threshold per early exit) joins the shared-threshold sweep as a starting point, so
    the result is never worse on ``val`` than it."""
    cost = _checked_cost(val, cost_per_exit, target_drop, max_cost)
    reference = val.final_accuracy
    chooser = _Chooser(cost, None if target_drop is None else reference - target_drop / 100.0, max_cost)
    vectors = _starting_vectors(val, start)
    pick, best_key = chooser.best(val.score(vectors))
    current, best_key, scored = _descend(val, chooser, vectors[pick].copy(), best_key, grid_size, max_passes)
    val_outcome = val.outcome(current)
    result = Calibration(
        target="accuracy_drop" if target_drop is not None else "cost",
        target_value=float(target_drop if target_drop is not None else cast(float, max_cost)),  # cast: one of the two is given
        thresholds=[float(t) for t in current],
        feasible=not bool(best_key[0]),
        val=val_outcome,
        val_cost=float(np.dot(val_outcome.ratios, cost)),
        reference_accuracy=reference,
        vectors_scored=len(vectors) + scored,
    )
    if test is not None:
        result.test = test.outcome(current)
        result.test_cost = float(np.dot(result.test.ratios, cost))
    return result
