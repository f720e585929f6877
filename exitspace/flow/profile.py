"""``exitspace profile``: a workload costed layer by layer, each layer on the first core the mapping stage
may put it on (or on one given core)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from exitspace.errors import ConfigError
from exitspace.hardware.model import Core, System
from exitspace import precision
from exitspace.mapping.costs import eligible_cores
from exitspace.workload.layer import Layer, Precision, Workload


def check_bits(bits: int, option: str) -> Precision:
    """The layer precision of ``bits``; a one-line error naming ``option`` for a width the cost model lacks."""
    return Precision.uniform(precision.check_bits(bits, option))


def pick_core(system: System, layer: Layer, core_id: int | None) -> Core:
    """The core that runs ``layer`` in a profile: ``core_id`` if given and it supports the op, else the first
    core the mapping stage may put it on (:func:`~exitspace.mapping.costs.eligible_cores`, the one rule)."""
    if core_id is not None:
        try:
            chosen = system.core(core_id)
        except KeyError:
            raise ConfigError(f"--core: no core with id {core_id} in {system.name!r}; ids {[c.id for c in system.cores]}") from None
        if layer.op in chosen.ops:
            return chosen
    return system.cores[eligible_cores(layer, system)[0]]


def load_model(model: str, heads: str, bits: int, exit_bits: int | None) -> Workload:
    """A workload from a workload JSON file, an ONNX file or a backbone name (with its exit heads)."""
    backbone = check_bits(bits, "--bits")
    exits = check_bits(exit_bits, "--exit-bits") if exit_bits is not None else backbone
    path = Path(model)
    if path.suffix == ".onnx":
        from exitspace.workload.from_onnx import workload_from_onnx

        return workload_from_onnx(path, precision=backbone).with_precision(backbone, exits)
    if path.suffix == ".json" or path.exists():
        return Workload.from_json(path).with_precision(backbone, exits)
    from exitspace.models.eenn import EENNSpec
    from exitspace.workload.paper import eenn_workload

    spec = EENNSpec.parse({"backbone": model, "head_types": [h.strip() for h in heads.split(",") if h.strip()]})
    return eenn_workload(spec, precision_backbone=backbone, precision_exits=exits)


def profile_rows(workload: Workload, system: System, backend_name: str, core_id: int | None,
                 cache_path: Path | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per-layer cost rows and totals (each layer on the core :func:`pick_core` chooses)."""
    from exitspace.cost.cache import CostCache, cached_evaluate
    from exitspace.cost.registry import get_backend

    backend = get_backend(backend_name)
    cache = CostCache(cache_path) if cache_path is not None else None
    by_core: dict[int, list[int]] = {}
    cores: dict[int, Core] = {}
    layer_core: list[int] = []
    for i, layer in enumerate(workload.layers):
        chosen = pick_core(system, layer, core_id)
        cores[chosen.id] = chosen
        by_core.setdefault(chosen.id, []).append(i)
        layer_core.append(chosen.id)
    costs: list[Any] = [None] * len(workload.layers)
    for cid, idx in by_core.items():
        layers = [workload.layers[i] for i in idx]
        for i, cost in zip(idx, cached_evaluate(backend, layers, cores[cid], cache)):
            costs[i] = cost
    if cache is not None:
        cache.close()
    rows = []
    for layer, cost, cid in zip(workload.layers, costs, layer_core):
        dominant = max(
            ((level, sum(per.values())) for level, per in cost.mem_energy_pj.items()), key=lambda x: x[1], default=("-", 0)
        )[0]
        rows.append({
            "layer": layer.name, "op": layer.op.value, "exit": layer.exit, "macs": layer.macs,
            "core_id": cid,
            "core": cost.core, "latency_cycles": cost.latency_cycles, "energy_pj": cost.energy_pj,
            "compute_cycles": cost.compute_cycles, "stall_cycles": cost.stall_cycles,
            "onload_cycles": cost.onload_cycles, "offload_cycles": cost.offload_cycles,
            "spatial_utilization": cost.spatial_utilization, "utilization": cost.utilization,
            "dominant_memory": dominant, "cost": cost.to_dict(),
        })
    totals = {
        "layers": len(rows), "macs": sum(r["macs"] for r in rows),
        "latency_cycles": sum(r["latency_cycles"] for r in rows), "energy_pj": sum(r["energy_pj"] for r in rows),
        "backend": backend.name, "backend_version": backend.version,
    }
    return rows, totals
