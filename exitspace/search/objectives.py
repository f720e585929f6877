"""Objectives and constraints of the search, computed from a :class:`ScoredDesign`'s validation metrics.

Optuna's convention for constraints: a value <= 0 is satisfied. Every constraint is kept with its name so
an infeasible set can be explained ("no design meets accuracy >= 99% ...").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Mapping

from exitspace.config import ConstraintsConfig
from exitspace.precision import PrecisionPair
from exitspace.search.scored import ScoredDesign
from exitspace.search.space import DesignSpace

MAXIMISED = {"accuracy"}


def metric_key(objective: str, elp_definition: str) -> str:
    """The split-metric key of an objective (``elp`` follows the configured definition)."""
    if objective == "elp":
        return "elp" if elp_definition == "paper" else "elp_product"
    return objective


def objective_values(evaluation: ScoredDesign, objectives: list[str], elp_definition: str, split: str = "val") -> list[float]:
    """Objective values in the study's directions (accuracy as is, maximised; the rest minimised)."""
    metrics = evaluation.split(split)
    return [float(metrics[metric_key(name, elp_definition)]) for name in objectives]


def directions(objectives: list[str]) -> list[Literal["minimize", "maximize"]]:
    """Optuna directions."""
    return ["maximize" if name in MAXIMISED else "minimize" for name in objectives]


@dataclass(frozen=True)
class Constraint:
    """One named constraint: ``violation(evaluation) <= 0`` when met."""

    name: str
    field: str
    text: str
    violation: Callable[[ScoredDesign], float]
    value: Callable[[ScoredDesign], float]
    fmt: Callable[[float], str]
    needs_mapping: bool = False
    """True when the value depends on the design's cost metrics (a hardware-blind search cannot check it)."""


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def build_constraints(
    config: ConstraintsConfig, space: DesignSpace, static_accuracy: Mapping[PrecisionPair, float]
) -> list[Constraint]:
    """The active constraints. ``static_accuracy``: validation accuracy of the static network per pair."""
    out: list[Constraint] = []
    prefix = "search.constraints."

    def acc(e: ScoredDesign) -> float:
        return float(e.val["accuracy"])

    if config.min_accuracy is not None:
        lo = config.min_accuracy
        out.append(Constraint("min_accuracy", prefix + "min_accuracy", f"accuracy >= {_pct(lo)}",
                              lambda e: lo - acc(e), acc, _pct))
    if config.max_accuracy_drop is not None:
        drop = config.max_accuracy_drop

        def loss(e: ScoredDesign) -> float:
            return static_accuracy[e.design.precision] - acc(e)

        out.append(Constraint("max_accuracy_drop", prefix + "max_accuracy_drop",
                              f"accuracy loss vs the static network <= {100 * drop:.1f} points",
                              lambda e: loss(e) - drop, loss, lambda x: f"{100 * x:.1f} points"))
    if config.max_exit_overhead is not None:
        hi = config.max_exit_overhead
        out.append(Constraint("max_exit_overhead", prefix + "max_exit_overhead", f"exit overhead <= {_pct(hi)}",
                              lambda e: float(e.val["exit_overhead"]) - hi, lambda e: float(e.val["exit_overhead"]),
                              _pct, needs_mapping=True))
    if config.memory_fit:
        out.append(Constraint("memory_fit", prefix + "memory_fit", "the design fits the on-chip memories",
                              lambda e: 0.0 if e.memory_fit else 1.0, lambda e: float(e.memory_fit),
                              lambda x: "fits" if x else "does not fit"))
    if config.max_latency is not None:
        budget = config.max_latency
        out.append(Constraint("max_latency", prefix + "max_latency", f"average latency <= {budget:.4g} cycles",
                              lambda e: float(e.val["l_avg"]) / budget - 1.0, lambda e: float(e.val["l_avg"]),
                              lambda x: f"{x:.4g} cycles", needs_mapping=True))
    if config.max_p99_latency is not None:
        budget99 = config.max_p99_latency
        out.append(Constraint("max_p99_latency", prefix + "max_p99_latency", f"p99 latency <= {budget99:.4g} cycles",
                              lambda e: float(e.val["p99_latency"]) / budget99 - 1.0,
                              lambda e: float(e.val["p99_latency"]), lambda x: f"{x:.4g} cycles",
                              needs_mapping=True))
    if config.min_early_exit_share is not None:
        share = config.min_early_exit_share
        out.append(Constraint("min_early_exit_share", prefix + "min_early_exit_share",
                              f"early-exit share >= {_pct(share)}",
                              lambda e: share - float(e.val["early_exit_share"]),
                              lambda e: float(e.val["early_exit_share"]), _pct))
    if space.min_exits > 0 or space.max_exits is not None:
        bounds = f"{space.min_exits}..{'any' if space.max_exits is None else space.max_exits}"
        out.append(Constraint("exit_count", "search.space.min_exits/max_exits", f"number of early exits in {bounds}",
                              lambda e: space.exit_count_violation(e.design), lambda e: float(len(e.design.exits)),
                              lambda x: f"{int(x)} exits"))
    return out


def violations(evaluation: ScoredDesign, constraints: list[Constraint]) -> list[float]:
    """Constraint values for Optuna (<= 0: met)."""
    return [float(c.violation(evaluation)) for c in constraints]


def explain_infeasible(evaluations: list[ScoredDesign], constraints: list[Constraint]) -> str:
    """A one-line message for an empty feasible set: which constraint no design meets, and the best value."""
    if not evaluations:
        return "the search evaluated no design; raise search.trials"
    never = [c for c in constraints if all(c.violation(e) > 0 for e in evaluations)]
    parts = []
    for c in never:
        best = min(evaluations, key=c.violation)
        parts.append(
            f"no design meets {c.text} (best ignoring the other constraints: {c.fmt(c.value(best))}); "
            f"relax {c.field}"
        )
    if parts:
        return "; ".join(parts)
    names = ", ".join(c.field for c in constraints)
    return (
        f"each constraint is met by some design but no design meets all at once ({len(evaluations)} evaluated); "
        f"relax one of {names} or raise search.trials"
    )
