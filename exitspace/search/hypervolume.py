"""Hypervolume of the feasible front after each generation, with a stated reference point.

Objectives are first mapped to normalised losses (all minimised): accuracy -> 1 - accuracy; exit overhead
as is (a share); energy / latency / ELP objectives divided by the static 8/8 network's value. The
reference point is given in the same terms (``search.hv_reference``; accuracy as an accuracy: 0.0 means
loss 1.0).
"""

from __future__ import annotations

from typing import Mapping

import moocore
import numpy as np

from exitspace.search.engine import TrialResult

SHARES = {"exit_overhead"}


def normalise(values: list[float], objectives: list[str], scale: Mapping[str, float]) -> list[float]:
    """Objective values -> minimised, normalised losses."""
    out = []
    for value, name in zip(values, objectives):
        if name == "accuracy":
            out.append(1.0 - value)
        elif name in SHARES:
            out.append(value)
        else:
            out.append(value / scale[name])
    return out


def reference_point(objectives: list[str], reference: Mapping[str, float]) -> np.ndarray:
    """The reference point as normalised losses."""
    return np.array([1.0 - reference["accuracy"] if n == "accuracy" else reference[n] for n in objectives], float)


def hypervolume(points: np.ndarray, ref: np.ndarray) -> float:
    """Exact hypervolume of the points (minimisation) that dominate ``ref``; 0 when none does (moocore's
    implementation; Optuna offers none in its public API)."""
    if points.size == 0:
        return 0.0
    inside = points[np.all(points < ref, axis=1)]
    if inside.size == 0:
        return 0.0
    return float(moocore.hypervolume(inside, ref=ref))


def hypervolume_curve(
    results: list[TrialResult], objectives: list[str], scale: Mapping[str, float], reference: Mapping[str, float]
) -> list[dict[str, float]]:
    """Hypervolume of the feasible trials seen up to the end of each generation."""
    if not results:
        return []
    ref = reference_point(objectives, reference)
    generations = sorted({r.generation for r in results})
    curve = []
    seen: list[list[float]] = []
    by_gen: dict[int, list[TrialResult]] = {}
    for r in results:
        by_gen.setdefault(r.generation, []).append(r)
    for gen in generations:
        seen.extend(normalise(r.values, objectives, scale) for r in by_gen[gen] if r.feasible)
        hv = hypervolume(np.array(seen, float), ref) if seen else 0.0
        curve.append({"generation": gen, "trials": sum(len(by_gen[g]) for g in generations if g <= gen), "hypervolume": hv})
    return curve
