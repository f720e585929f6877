"""The whole flow of ``exitspace run``: exit tables (reused or trained) -> workload -> hardware -> cost ->
search with baselines -> alignment sweep -> report. Every phase resumes from the run directory.

Run directory::

    config.yaml               the run config as used
    train/                    training run (only when exit tables had to be trained)
    workload.json             the supernet's layers (built once from the exit tables' model spec)
    cost_cache.sqlite3        persistent per-layer cost cache
    study.sqlite3             the search's trial log (SQLite; resumes)
    report/                   results.json, report.md, report.html, figures/
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, cast

import numpy as np
import yaml

from exitspace.config import RunConfig
from exitspace.cost.base import CostBackend
from exitspace.cost.cache import PersistentBackend
from exitspace.cost.sweep import alignment_sweep
from exitspace.files import atomic_write_text, writable_folder
from exitspace.flow.oracle import attach_oracle_bounds
from exitspace.flow.phases import Phases
from exitspace.flow.tables import obtain_tables, obtain_workload
from exitspace.hardware.model import CoreKind, System
from exitspace.mapping.costs import onchip_core
from exitspace.mapping.optimise import STRATEGIES
from exitspace import __version__
from exitspace.precision import PrecisionPair, pair_key
from exitspace.search.codesign import CodesignInputs, run_codesign
from exitspace.search.evaluator import CodesignEvaluator
from exitspace.search.results import AlignmentSweepRecord, ResultsDocument
from exitspace.search.space import DesignSpace
from exitspace.search.stored import STORED_FILE, StoredEvaluations
from exitspace.train.exit_table import ExitTable
from exitspace.train.stopping import SEARCH_LOCK, run_dir_lock
from exitspace.workload.layer import Workload


@dataclass
class FlowResult:
    """What ``exitspace run`` produced."""

    run_dir: Path
    results: ResultsDocument
    paths: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0


def prepare(config: RunConfig, run_dir: Path, phases: Phases, allow_train: bool = True) -> tuple[CodesignInputs, System, CostBackend, Workload, str]:
    """Exit tables, workload, hardware, cost backend and the evaluator (cost matrices warm)."""
    from exitspace.cost.registry import get_backend
    from exitspace.hardware import load_system

    writable_folder(run_dir, "--run-dir")
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(config.public_dump(), sort_keys=False))
    phases.start("exit tables")
    tables, origin = obtain_tables(config, run_dir, phases, allow_train)
    phases.done("exit tables", origin)
    first = next(iter(tables.values()))
    phases.start("workload")
    workload = obtain_workload(first, run_dir)
    phases.done("workload", f"{workload.name}: {len(workload)} layers, {workload.macs / 1e6:.1f} M MACs with every head")
    system = load_system(config.hardware.system)
    backend = PersistentBackend(get_backend(config.cost.backend), run_dir / "cost_cache.sqlite3")
    evaluator = CodesignEvaluator(tables, workload, system, backend, confidence_kind=config.search.space.confidence,
                                  elp_definition=config.search.elp, seed=config.seed)
    space = DesignSpace.build(config.search.space, evaluator.available(STRATEGIES))
    pairs = list(space.precision_pairs)
    phases.start("cost", len(pairs))
    for i, pair in enumerate(pairs):
        evaluator.mapper(pair)
        phases.update("cost", i + 1, len(pairs))
    phases.done("cost", f"{system.name}, backend {backend.name}")
    backbone = str(first.meta.get("model_spec", {}).get("backbone", ""))
    stored = StoredEvaluations(evaluator, run_dir / STORED_FILE, _evaluator_identity(config, tables, system, backend))
    return CodesignInputs(space, stored, backbone, STRATEGIES), system, backend, workload, origin


def _evaluator_identity(config: RunConfig, tables: Mapping[PrecisionPair, ExitTable], system: System,
                        backend: CostBackend) -> str:
    """What a design's evaluation depends on besides the design: the exit tables' contents, the hardware, the
    cost backend, the seed and metric settings, and the package version."""
    digest = hashlib.sha256()
    for pair in sorted(tables):
        for split in ("val", "test"):
            digest.update(np.ascontiguousarray(tables[pair].logits[split]).tobytes())
            digest.update(np.ascontiguousarray(tables[pair].labels[split]).tobytes())
    digest.update(json.dumps({
        "system": system.model_dump(mode="json"), "backend": [backend.name, backend.version], "seed": config.seed,
        "elp": config.search.elp, "confidence": config.search.space.confidence, "version": __version__,
    }, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def system_alignment_sweep(workload: Workload, system: System, backend: CostBackend, top: int,
                           span: int = 12) -> dict[str, Any]:
    """:func:`~exitspace.cost.sweep.alignment_sweep` on the on-chip levels of the system's first compute core."""
    compute = [c for c in system.cores if c.kind == CoreKind.COMPUTE]
    if not compute or top <= 0:
        return {"layers": []}
    return alignment_sweep(workload, onchip_core(compute[0]), backend, top, span)


def run_flow(
    config: RunConfig,
    run_dir: Path | None = None,
    *,
    trials: int | None = None,
    phases: Phases | None = None,
    write: bool = True,
    allow_train: bool = True,
) -> FlowResult:
    """The whole flow; returns the results and the written paths (``write=False``: report/results.json only).
    Holds the run directory's search lock throughout."""
    phases = phases or Phases()
    start = time.perf_counter()
    run_dir = writable_folder(config.run_path(run_dir), "--run-dir")
    with run_dir_lock(run_dir, SEARCH_LOCK):  # one search per run directory (two would splice one study)
        return _run_flow(config, run_dir, trials, phases, write, allow_train, start)


def _run_flow(config: RunConfig, run_dir: Path, trials: int | None, phases: Phases, write: bool, allow_train: bool,
              start: float) -> FlowResult:
    from exitspace.report.render import write_report

    inputs, system, backend, workload, origin = prepare(config, run_dir, phases, allow_train)

    def progress(phase: str, done: int, total: int) -> None:
        phases.update(phase, done, total)

    phases.start("search", trials or config.search.trials)
    results = run_codesign(config, inputs, run_dir, trials=trials, progress=progress)
    phases.done("search", f"{results.study.trials} trials, {len(results.pareto)} Pareto designs")
    phases.start("alignment sweep")
    results.alignment_sweep = AlignmentSweepRecord.model_validate(
        system_alignment_sweep(workload, system, backend, config.report.sweep_layers))
    phases.done("alignment sweep")
    results.exit_tables = origin
    attach_oracle_bounds(results, cast(CodesignEvaluator, inputs.evaluator).tables)
    results.exit_table_hashes = {pair_key(pair): table.meta.get("model_hash")
                                 # cast: prepare() builds a CodesignEvaluator
                                 for pair, table in sorted(cast(CodesignEvaluator, inputs.evaluator).tables.items())}
    results.hardware = system.name
    results.cost_backend = f"{backend.name} {backend.version}"
    if write:
        phases.start("report")
        paths = write_report(results, run_dir / "report", designs=config.report.designs, html_page=config.report.html)
        phases.done("report", str(paths.get("html", paths["markdown"])))
    else:
        out = run_dir / "report"
        atomic_write_text(out / "results.json", json.dumps(results.to_json(), indent=1))
        paths = {"results": out / "results.json"}
    return FlowResult(run_dir, results, paths, time.perf_counter() - start)

