"""Oracle exit policies: the best an exit rule could do with a design's exits, as bounds beside the design.

Given each sample's prediction at every exit of a design (network order, final last) and its label:

- **(a) accuracy-matched oracle**: a sample leaves at the first exit whose prediction equals the final
  exit's, so its answer is the final exit's and the accuracy is the final exit's (the static network's),
  at the least cost any rule with that accuracy on those answers can have;
- **(b) any-exit-correct oracle**: a sample leaves at the first exit that is right; a sample no exit gets
  right leaves at the first exit (nothing is gained by running on). Its accuracy (right at some exit) bounds
  what any exit rule can reach with these exits.

"(a) at the design's accuracy" relaxes (a) to a lower accuracy target: of the samples (a) answers right, the
ones whose leaving saves the most (``E_cum * L_cum`` at their exit minus at the first exit) leave at the
first exit instead, until the accuracy is the target (each such move costs exactly one right answer:
the first exit disagrees with the final exit there). A design's ELP divided by this oracle's ELP is how
far its confidence thresholds are from the oracle at equal accuracy (1.0 = as good as the oracle; below 1
when the thresholds let samples leave early where an early exit is right and the final exit wrong, which
(a) never does).
Costs: the design's cumulative energy (pJ) and latency (cycles) per exit; ELP as ``elp_definition`` says
(``paper``: the mean of ``E_cum * L_cum``; ``product``: ``E_avg * L_avg``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from exitspace.dynamic.metrics import expected_costs
from exitspace.errors import ConfigError


@dataclass(frozen=True)
class OracleBound:
    """An oracle's exit ratios, accuracy and costs on one split."""

    rule: str
    ratios: list[float]
    accuracy: float
    elp: float
    e_avg: float
    l_avg: float

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return asdict(self)


def _check(predictions: np.ndarray, labels: np.ndarray, cum_energy: np.ndarray, cum_latency: np.ndarray) -> None:
    if predictions.ndim != 2 or predictions.shape[0] != labels.shape[0] or predictions.shape[0] == 0:
        raise ConfigError(f"oracle: predictions {predictions.shape} must be [N > 0, exits] with one label per sample "
                          f"({labels.shape[0]} labels)")
    if cum_energy.shape != (predictions.shape[1],) or cum_latency.shape != cum_energy.shape:
        raise ConfigError(f"oracle: {predictions.shape[1]} exits need as many cumulative energies and latencies "
                          f"(got {cum_energy.shape[0]} and {cum_latency.shape[0]})")


def agreeing_exits(predictions: np.ndarray) -> np.ndarray:
    """[N] oracle (a): the first exit whose prediction equals the final exit's."""
    return np.argmax(predictions == predictions[:, -1:], axis=1)


def correct_exits(predictions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """[N] oracle (b): the first exit that is right; 0 where none is."""
    right = predictions == labels[:, None]
    return np.where(right.any(axis=1), np.argmax(right, axis=1), 0)


def relaxed_to_accuracy(exits: np.ndarray, correct: np.ndarray, per_exit_cost: np.ndarray, target: float) -> np.ndarray:
    """``exits`` with the right-answered samples that save the most moved to the first exit, while the accuracy
    stays at or above ``target`` (the move loses each one's right answer)."""
    spare = int(np.floor(correct.sum() - target * len(exits) + 1e-9))
    movable = np.flatnonzero(correct & (exits > 0))
    if spare <= 0 or movable.size == 0:
        return exits
    savings = per_exit_cost[exits[movable]] - per_exit_cost[0]
    moved = movable[np.argsort(-savings, kind="stable")[:spare]]
    relaxed = exits.copy()
    relaxed[moved] = 0
    return relaxed


def _bound(rule: str, exits: np.ndarray, right: np.ndarray, cum_energy: np.ndarray, cum_latency: np.ndarray,
           elp_definition: str) -> OracleBound:
    ratios = np.bincount(exits, minlength=len(cum_energy)) / len(exits)
    e_avg, l_avg, avg_product = expected_costs(ratios, cum_energy, cum_latency)
    elp = avg_product if elp_definition == "paper" else e_avg * l_avg
    return OracleBound(rule, [float(r) for r in ratios], float(right.mean()), float(elp), e_avg, l_avg)


def oracle_bounds(predictions: np.ndarray, labels: np.ndarray, cum_energy: np.ndarray, cum_latency: np.ndarray,
                  design_accuracy: float, design_elp: float, elp_definition: str = "paper") -> dict[str, Any]:
    """Oracles (a), (b) and (a) at the design's accuracy for one design on one split, and the design's ELP as
    a multiple of (a) at its accuracy (module docstring). ``predictions``: [N, exits] class per exit."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    cum_energy, cum_latency = np.asarray(cum_energy, dtype=float), np.asarray(cum_latency, dtype=float)
    _check(predictions, labels, cum_energy, cum_latency)
    rows = np.arange(len(labels))
    right = predictions == labels[:, None]
    a_exits = agreeing_exits(predictions)
    b_exits = correct_exits(predictions, labels)
    a = _bound("a: first exit agreeing with the final exit", a_exits, right[rows, a_exits], cum_energy, cum_latency,
               elp_definition)
    b = _bound("b: first exit that is right", b_exits, right[rows, b_exits], cum_energy, cum_latency, elp_definition)
    relaxed_exits = relaxed_to_accuracy(a_exits, right[rows, a_exits], cum_energy * cum_latency, design_accuracy)
    at_design = _bound("a at the design's accuracy", relaxed_exits, right[rows, relaxed_exits], cum_energy,
                       cum_latency, elp_definition)
    return {"a": a.to_dict(), "b": b.to_dict(), "a_at_design_accuracy": at_design.to_dict(),
            "elp_vs_oracle_a": design_elp / at_design.elp if at_design.elp > 0 else None}
