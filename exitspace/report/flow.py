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

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence, cast

import yaml

from exitspace.config import RunConfig
from exitspace.cost.base import CostBackend, LayerCost
from exitspace.cost.cache import layer_key
from exitspace.errors import CheckpointError, ConfigError
from exitspace.hardware.model import Core, CoreKind, System
from exitspace.pathnames import shown_path
from exitspace.search.codesign import CodesignInputs, run_codesign
from exitspace.search.evaluator import CodesignEvaluator
from exitspace.search.space import DesignSpace, PrecisionPair, pair_name
from exitspace.train.exit_table import ExitTable
from exitspace.workload.layer import Layer, OpType, Precision, Workload

ALLOCATION_STRATEGIES = ("single", "round_robin", "greedy", "ga")


class Phases:
    """Progress of the flow's phases; the default prints nothing."""

    def start(self, name: str, total: int | None = None) -> None:
        """A phase begins."""

    def update(self, name: str, done: int, total: int) -> None:
        """Progress inside a phase."""

    def done(self, name: str, message: str = "") -> None:
        """A phase ends."""

    def log(self, message: str) -> None:
        """A line of information."""


class PersistentBackend:
    """A cost backend behind the cost stage's persistent SQLite cache (same name and version)."""

    def __init__(self, backend: CostBackend, path: Path) -> None:
        from exitspace.cost.cache import CostCache

        self.inner = backend
        self.name = backend.name
        self.version = backend.version
        self.cache = CostCache(path)

    def evaluate(self, layers: Sequence[Layer], core: Core) -> list[LayerCost]:
        """Cached costs; the rest from the wrapped backend."""
        from exitspace.cost.cache import cached_evaluate

        return cached_evaluate(self.inner, layers, core, self.cache)


def find_tables(directory: Path | None) -> dict[PrecisionPair, Path]:
    """Exit tables (*.npz, searched recursively) by precision pair from their metadata."""
    found: dict[PrecisionPair, Path] = {}
    if directory is None or not directory.is_dir():
        return found
    for path in sorted(directory.rglob("*.npz")):
        try:
            table = ExitTable.load(path)
        except CheckpointError:
            continue
        if table.precision_pair is not None:
            found.setdefault(table.precision_pair, path)
    return found


def needed_pairs(config: RunConfig) -> list[PrecisionPair] | None:
    """Precision pairs the search needs tables for; None: every quantized pair that has a table."""
    pairs = config.search.space.precision_pairs
    return None if pairs is None else [(int(a), int(b)) for a, b in pairs]


def covering_pairs(found: dict[PrecisionPair, Path], pairs: list[PrecisionPair] | None) -> list[PrecisionPair]:
    """The pairs to search with the tables ``found``: ``pairs`` if all are there ([] if not); None: every quantized one."""
    if pairs is None:
        return [p for p in found if p != (32, 32)]
    return pairs if all(p in found for p in pairs) else []


def obtain_tables(config: RunConfig, run_dir: Path, phases: Phases, allow_train: bool = True) -> tuple[dict[PrecisionPair, ExitTable], str]:
    """Committed tables when they cover every needed pair; else train (or resume training) in the run dir."""
    pairs = needed_pairs(config)
    committed_dir = config.resolve_path(config.exit_tables.dir)
    for directory, origin in ((committed_dir, "exit_tables.dir"), (run_dir / "train", "trained in this run")):
        found = find_tables(directory)
        use = covering_pairs(found, pairs)
        if use:
            # cast: tables were found, so the directory is set
            return {p: ExitTable.load(found[p]) for p in use}, f"{origin}: {shown_path(cast(Path, directory))}"
    wanted = "every quantized pair" if pairs is None else str([pair_name(p) for p in pairs])
    train_path = config.resolve_path(config.exit_tables.fallback_train or config.train.config)
    if not allow_train:
        raise CheckpointError(
            f"exit tables for {wanted} not found in {committed_dir} or {run_dir / 'train'}; "
            "run `exitspace run` (which trains) or set exit_tables.dir"
        )
    if train_path is None:
        raise ConfigError(
            "exit_tables.dir has no tables for every pair in search.space.precision_pairs and no training config is "
            "given; set train.config (e.g. configs/train/smoke.yaml)"
        )
    from exitspace.train.config import load_train_config, parse_train_config
    from exitspace.train.pipeline import run_training

    train_config = load_train_config(train_path)
    if config.train.overrides:
        data = train_config.model_dump(mode="json")
        for dotted, value in config.train.overrides.items():
            node = data
            *parents, last = dotted.split(".")
            for key in parents:
                node = node.setdefault(key, {})
            node[last] = value
        train_config = parse_train_config(data, f"{config.source}: train.overrides")
    phases.start("train", None)
    phases.log(f"training {train_path.name} for {wanted} (resumes from {run_dir / 'train'})")
    run_training(train_config, run_dir / "train", pairs=None if pairs is None else [f"{a}/{b}" for a, b in pairs])
    phases.done("train")
    found = find_tables(run_dir / "train")
    use = covering_pairs(found, pairs)
    if not use:
        raise CheckpointError(f"training finished without exit tables for {wanted}; check {run_dir / 'train'}")
    return {p: ExitTable.load(found[p]) for p in use}, f"trained in this run: {shown_path(run_dir / 'train')}"


def obtain_workload(table: ExitTable, run_dir: Path) -> Workload:
    """The supernet's workload from the tables' model spec (cached as workload.json)."""
    spec_data = table.meta.get("model_spec")
    if not spec_data:
        raise CheckpointError("exit table metadata has no model_spec; re-run `exitspace train`")
    path = run_dir / "workload.json"
    stamp = run_dir / "workload.spec.json"
    spec_text = json.dumps(spec_data, sort_keys=True)
    if path.is_file() and stamp.is_file() and stamp.read_text() == spec_text:
        return Workload.from_json(path)
    from exitspace.models.eenn import EENNSpec
    from exitspace.workload.paper import eenn_workload

    workload = eenn_workload(EENNSpec.parse(spec_data), precision_backbone=8)
    workload.to_json(path)
    stamp.write_text(spec_text)
    return workload


def alignment_sweep(workload: Workload, system: System, backend: CostBackend, top: int, span: int = 12) -> dict[str, Any]:
    """Energy and latency of the ``top`` most energy-costly backbone MAC layers (8-bit, on the first compute
    core's on-chip hierarchy) as their output channels K (depthwise: channels) vary around the network's value."""
    from exitspace.mapping.costs import onchip_core

    compute = [c for c in system.cores if c.kind == CoreKind.COMPUTE]
    if not compute or top <= 0:
        return {"layers": []}
    core = onchip_core(compute[0])
    layers = [layer.with_precision(Precision.uniform(8)) for layer in workload.backbone() if layer.op.is_mac]
    costs = backend.evaluate(layers, core)
    total = sum(c.energy_pj for c in costs)
    groups: dict[tuple[Any, ...], list[tuple[Layer, LayerCost]]] = {}
    for layer, cost in zip(layers, costs):  # layers of one shape behave alike: sweep one per shape
        groups.setdefault(layer_key(layer), []).append((layer, cost))
    ranked = sorted(groups.values(), key=lambda g: -sum(c.energy_pj for _, c in g))[:top]
    out = []
    for group in ranked:
        layer = group[0][0]
        depthwise = layer.op == OpType.DEPTHWISE or (layer.groups == layer.K == layer.C and layer.groups > 1)
        values = [v for v in range(max(1, layer.K - span), layer.K + span + 1)]
        if depthwise:
            swept = [replace(layer, K=v, C=v, groups=v) for v in values]
        else:
            values = [v for v in values if v % layer.groups == 0]
            swept = [replace(layer, K=v) for v in values]
        results = backend.evaluate(swept, core)
        out.append({
            "name": layer.name, "dim": "channels" if depthwise else "K", "actual": layer.K, "values": values,
            "energy_pj": [r.energy_pj for r in results], "latency_cycles": [r.latency_cycles for r in results],
            "macs": [s.macs for s in swept], "share": sum(c.energy_pj for _, c in group) / total if total else 0.0,
            "same_shape": [other.name for other, _ in group[1:]],
            "spatial_utilization": [r.spatial_utilization for r in results],
        })
    array = compute[0].operational_array.sizes
    unrolled = {d: "+".join(compute[0].dataflow.get(d, ())) for d in array}
    dims = ", ".join(f"{d}={n} ({unrolled[d] or '-'})" for d, n in array.items())
    return {
        "core": compute[0].name,
        "layers": out,
        "note": (f"The {len(out)} backbone layer shapes with the most energy at 8 bits on {compute[0].name} (on-chip "
                 f"levels; layers of one shape counted together), swept over their output channels; steps show where "
                 f"the channel count stops filling the MAC array's unrolled dimensions ({dims})."),
    }


@dataclass
class FlowResult:
    """What ``exitspace run`` produced."""

    run_dir: Path
    results: dict[str, Any]
    paths: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0


def prepare(config: RunConfig, run_dir: Path, phases: Phases, allow_train: bool = True) -> tuple[CodesignInputs, System, CostBackend, Workload, str]:
    """Exit tables, workload, hardware, cost backend and the evaluator (cost matrices warm)."""
    from exitspace.cost.registry import get_backend
    from exitspace.hardware import load_system

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
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
    space = DesignSpace.build(config.search.space, evaluator.available(ALLOCATION_STRATEGIES))
    pairs = list(space.precision_pairs)
    phases.start("cost", len(pairs))
    for i, pair in enumerate(pairs):
        evaluator.mapper(pair)
        phases.update("cost", i + 1, len(pairs))
    phases.done("cost", f"{system.name}, backend {backend.name}")
    backbone = str(first.meta.get("model_spec", {}).get("backbone", ""))
    return CodesignInputs(space, evaluator, backbone, ALLOCATION_STRATEGIES), system, backend, workload, origin


def run_flow(
    config: RunConfig,
    run_dir: Path | None = None,
    *,
    trials: int | None = None,
    phases: Phases | None = None,
    write: bool = True,
    allow_train: bool = True,
) -> FlowResult:
    """The whole flow; returns the results and the written paths."""
    from exitspace.report.render import write_report

    phases = phases or Phases()
    start = time.perf_counter()
    run_dir = config.run_path(run_dir)
    inputs, system, backend, workload, origin = prepare(config, run_dir, phases, allow_train)

    def progress(phase: str, done: int, total: int) -> None:
        phases.update(phase, done, total)

    phases.start("search", trials or config.search.trials)
    results = run_codesign(config, inputs, run_dir, trials=trials, progress=progress)
    phases.done("search", f"{results['study']['trials']} trials, {len(results['pareto'])} Pareto designs")
    phases.start("alignment sweep")
    results["alignment_sweep"] = alignment_sweep(workload, system, backend, config.report.sweep_layers)
    phases.done("alignment sweep")
    results["exit_tables"] = origin
    results["exit_table_hashes"] = {f"{b}/{e}": table.meta.get("model_hash")
                                    # cast: prepare() builds a CodesignEvaluator
                                    for (b, e), table in sorted(cast(CodesignEvaluator, inputs.evaluator).tables.items())}
    results["hardware"] = system.name
    results["cost_backend"] = f"{backend.name} {backend.version}"
    paths: dict[str, Path] = {}
    if write:
        phases.start("report")
        paths = write_report(results, run_dir / "report", designs=config.report.designs, html_page=config.report.html)
        phases.done("report", str(paths.get("html", paths["markdown"])))
    return FlowResult(run_dir, results, paths, time.perf_counter() - start)


ProgressCallback = Callable[[str, int, int], None]
