"""Compare Pareto fronts of several runs at equal absolute test accuracy (e.g. two training recipes).

A run's headline is relative to its own static network, whose accuracy differs between recipes; this
puts every front on one scale: the lowest test ELP, as a multiple of one shared static reference, among
the Pareto designs at or above each test accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from exitspace.errors import DataError
from exitspace.precision import pair_label
from exitspace.search.results import ResultsDocument, ScoredRecord


def static_reference(results: ResultsDocument, label: str) -> ScoredRecord:
    """The run's static reference network (``static_reference``, e.g. 8/8) as results.json stores it."""
    static = results.static.get(results.static_reference)
    if static is None:
        raise DataError(f"{label}: no static reference network in results.json; re-run `exitspace run` with baselines.static on")
    return static


def _static_network(results: ResultsDocument, name: str) -> ScoredRecord | None:
    """The static network called ``name`` among the run's static variants (any precision pair)."""
    for entries in results.static_variants.values():
        for entry in entries:
            if entry.name == name:
                return entry
    return None


def lowest_elp_at(results: ResultsDocument, accuracy: float, reference: float, precision: str | None = None) -> float:
    """Lowest test ELP / ``reference`` of the Pareto designs with test accuracy >= ``accuracy`` (nan if none)."""
    ratios = [
        entry.test["elp"] / reference
        for entry in results.pareto
        if entry.test["accuracy"] >= accuracy and (precision is None or pair_label(entry.design.precision) == precision)
    ]
    return min(ratios, default=math.nan)


def compare_fronts(
    runs: Sequence[tuple[str, ResultsDocument]], accuracies: Sequence[float], precision: str | None = None
) -> dict[str, Any]:
    """One row per run: its static accuracy and the lowest ELP ratio at each accuracy level.

    The unit is the first run's static reference network. Every run must cost that same network (by name,
    among its static variants) the same ELP, i.e. share workload, hardware and cost model; a run's own static
    reference may use another head type when that one is more accurate there.
    """
    if not runs:
        raise DataError("compare: give at least one results.json")
    statics = {label: static_reference(results, label) for label, results in runs}
    first_label, unit = next(iter(statics.items()))
    reference = float(unit.test["elp"])
    for label, results in runs:
        same = _static_network(results, unit.name) or statics[label]
        if not math.isclose(same.test["elp"], reference, rel_tol=1e-9):
            raise DataError(
                f"{label}: static network {same.name} has ELP {same.test['elp']:.4g} against "
                f"{reference:.4g} for {unit.name} in {first_label}; compare runs of the same workload, "
                "hardware and cost model"
            )
    rows = [
        {
            "run": label,
            "static": results.static_reference,
            "static_accuracy": float(statics[label].test["accuracy"]),
            "lowest_elp": [lowest_elp_at(results, a, reference, precision) for a in accuracies],
        }
        for label, results in runs
    ]
    return {"accuracies": list(accuracies), "precision": precision, "rows": rows}
