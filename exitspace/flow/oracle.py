"""Oracle bounds beside the searched designs: for every Pareto entry of a results document and each split,
``exitspace.dynamic.oracle.oracle_bounds`` on the design's exits (predictions from the exit table of its
precision pair, costs from the entry's per-stage cumulative energy and latency)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from exitspace.dynamic.oracle import oracle_bounds
from exitspace.flow.finetune import design_head_keys
from exitspace.precision import PrecisionPair
from exitspace.train.exit_table import ExitTable

SPLITS = ("val", "test")


def entry_oracle(entry: dict[str, Any], table: ExitTable, elp_definition: str) -> dict[str, Any]:
    """Oracle bounds of one Pareto entry per split (``oracle_bounds``'s dict per split)."""
    columns = [table.head_index(key) for key in design_head_keys(entry["design"])]
    energy = np.asarray([stage["cum_energy_pj"] for stage in entry["stages"]], dtype=float)
    latency = np.asarray([stage["cum_latency_cycles"] for stage in entry["stages"]], dtype=float)
    bounds = {}
    for split in SPLITS:
        if split not in table.logits or split not in entry:
            continue
        predictions = table.logits[split][:, columns, :].argmax(axis=-1)
        bounds[split] = oracle_bounds(predictions, table.labels[split], energy, latency,
                                      float(entry[split]["accuracy"]), float(entry[split]["elp"]), elp_definition)
    return bounds


def attach_oracle_bounds(results: dict[str, Any], tables: Mapping[PrecisionPair, ExitTable]) -> None:
    """Add ``oracle`` (per split: oracles (a), (b), (a) at the design's accuracy, ELP multiple) to every Pareto
    entry of ``results`` whose pair has an exit table, and the headline design's multiple to ``headline``."""
    definition = str(results.get("elp_definition", "paper"))
    for entry in results.get("pareto") or []:
        pair = (int(entry["design"]["precision"][0]), int(entry["design"]["precision"][1]))
        if pair in tables and entry.get("stages"):
            entry["oracle"] = entry_oracle(entry, tables[pair], definition)
    headline = results.get("headline") or {}
    chosen = next((e for e in results.get("pareto") or [] if e["name"] == headline.get("design")), None)
    if chosen is not None and "test" in (chosen.get("oracle") or {}):
        headline["test_elp_vs_oracle_a"] = chosen["oracle"]["test"]["elp_vs_oracle_a"]
