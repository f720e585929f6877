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
from exitspace.search.results import ParetoRecord, ResultsDocument
from exitspace.train.exit_table import ExitTable

SPLITS = ("val", "test")


def entry_oracle(entry: ParetoRecord, table: ExitTable, elp_definition: str) -> dict[str, Any]:
    """Oracle bounds of one Pareto entry per split (``oracle_bounds``'s dict per split)."""
    columns = [table.head_index(key) for key in design_head_keys(entry.design)]
    energy = np.asarray([stage["cum_energy_pj"] for stage in entry.stages], dtype=float)
    latency = np.asarray([stage["cum_latency_cycles"] for stage in entry.stages], dtype=float)
    bounds = {}
    for split in SPLITS:
        if split not in table.logits:
            continue
        metrics = entry.split(split)
        predictions = table.logits[split][:, columns, :].argmax(axis=-1)
        bounds[split] = oracle_bounds(predictions, table.labels[split], energy, latency,
                                      float(metrics["accuracy"]), float(metrics["elp"]), elp_definition)
    return bounds


def attach_oracle_bounds(results: ResultsDocument, tables: Mapping[PrecisionPair, ExitTable]) -> None:
    """Add ``oracle`` (per split: oracles (a), (b), (a) at the design's accuracy, ELP multiple) to every Pareto
    entry of ``results`` whose pair has an exit table, and the headline design's multiple to ``headline``."""
    for entry in results.pareto:
        pair = (int(entry.design.precision[0]), int(entry.design.precision[1]))
        if pair in tables and entry.stages:
            entry.oracle = entry_oracle(entry, tables[pair], results.elp_definition)
    chosen = next((e for e in results.pareto if e.name == results.headline.design), None)
    if chosen is not None and "test" in (chosen.oracle or {}):
        results.headline.test_elp_vs_oracle_a = (chosen.oracle or {})["test"]["elp_vs_oracle_a"]
