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


def reference_elp(results: dict[str, Any], label: str) -> float:
    """Test ELP of the run's static reference network (``static_reference``, e.g. 8/8)."""
    ref = results.get("static_reference")
    static = (results.get("static") or {}).get(ref)
    if static is None:
        raise DataError(f"{label}: no static reference network in results.json; re-run `exitspace run` with baselines.static on")
    return float(static["test"]["elp"])


def _pair(entry: dict[str, Any]) -> str:
    backbone, exits = entry["design"]["precision"]
    return f"{backbone}/{exits}"


def lowest_elp_at(results: dict[str, Any], accuracy: float, reference: float, precision: str | None = None) -> float:
    """Lowest test ELP / ``reference`` of the Pareto designs with test accuracy >= ``accuracy`` (nan if none)."""
    ratios = [
        entry["test"]["elp"] / reference
        for entry in results.get("pareto", [])
        if entry["test"]["accuracy"] >= accuracy and (precision is None or _pair(entry) == precision)
    ]
    return min(ratios, default=math.nan)


def compare_fronts(
    runs: Sequence[tuple[str, dict[str, Any]]], accuracies: Sequence[float], precision: str | None = None
) -> dict[str, Any]:
    """One row per run: its static accuracy and the lowest ELP ratio at each accuracy level.

    All runs must share the static reference ELP (same workload, hardware and cost model), else the
    ratios would not be comparable.
    """
    if not runs:
        raise DataError("compare: give at least one results.json")
    references = {label: reference_elp(results, label) for label, results in runs}
    first_label, first = next(iter(references.items()))
    for label, value in references.items():
        if not math.isclose(value, first, rel_tol=1e-9):
            raise DataError(
                f"{label}: static reference ELP {value:.4g} differs from {first_label}'s {first:.4g}; "
                "compare runs of the same workload, hardware and cost model"
            )
    rows = []
    for label, results in runs:
        ref_name = results["static_reference"]
        rows.append({
            "run": label,
            "static": ref_name,
            "static_accuracy": float(results["static"][ref_name]["test"]["accuracy"]),
            "lowest_elp": [lowest_elp_at(results, a, first, precision) for a in accuracies],
        })
    return {"accuracies": list(accuracies), "precision": precision, "rows": rows}
