"""Benchmark of the analytical cost model: speed (cold, batched, warm cache, against ZigZag) and agreement.

Writes benchmarks/results/cost_model.json. Run from the repository root:

    nice -n 15 python benchmarks/cost_model.py [--zigzag-layers 3] [--repeats 7]

Speed: medians over ``--repeats`` runs of
- the warm-cache lookup of the whole paper EENN workload (MobileNetV2-CIFAR with both head types at every exit;
  every layer on the core the profile would use), target < 1 ms;
- a cold batched evaluation of all its MAC layers (per layer = batch time / layers);
- a cold single-layer evaluation of each of the ZigZag comparison layers;
- with the zigzag extra installed: ZigZag's mapping search on the same layers in the same run (one run each; it
  takes seconds), and the ratios ZigZag time / analytical time per layer.
Agreement: for every complete golden file in tests/goldens, compute cycles and spatial utilization equality and
the mean / max relative error of latency and energy of the analytical backend.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from exitspace.flow.profile import pick_core  # noqa: E402
from exitspace.cost.analytical import AnalyticalBackend  # noqa: E402
from exitspace.cost.base import LayerCost  # noqa: E402
from exitspace.cost.cache import CostCache, cached_evaluate  # noqa: E402
from exitspace.hardware.loader import load_system  # noqa: E402
from exitspace.hardware.model import Core  # noqa: E402
from exitspace.workload.layer import Layer  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "cost_model.json"
GOLDENS = ROOT / "tests" / "goldens"


def median_time(fn: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def workload_by_core(system_name: str) -> tuple[list[Layer], dict[int, list[Layer]], dict[int, Core]]:
    from exitspace.workload.paper import paper_mobilenetv2_workload

    workload = paper_mobilenetv2_workload()
    system = load_system(system_name)
    groups: dict[int, list[Layer]] = {}
    cores: dict[int, Core] = {}
    for layer in workload.layers:
        core = pick_core(system, layer, None)
        cores[core.id] = core
        groups.setdefault(core.id, []).append(layer)
    return workload.layers, groups, cores


def speed(repeats: int) -> dict[str, Any]:
    backend = AnalyticalBackend()
    layers, groups, cores = workload_by_core("edge_tpu_quad")
    cache = CostCache()
    for cid, group in groups.items():
        cached_evaluate(backend, group, cores[cid], cache)

    def warm() -> None:
        for cid, group in groups.items():
            cached_evaluate(backend, group, cores[cid], cache)

    warm_s = median_time(warm, repeats * 5)
    mac_core = next(cid for cid, c in cores.items() if c.kind.value == "compute")
    mac_layers = groups[mac_core]
    batch_s = median_time(lambda: backend.evaluate(mac_layers, cores[mac_core]), repeats)
    all_s = median_time(lambda: [backend.evaluate(g, cores[c]) for c, g in groups.items()], repeats)
    return {
        "workload": "paper_mobilenetv2_workload() (exits A-K, heads pool4_fc1 + pool4_fc2) on edge_tpu_quad",
        "workload_layers": len(layers),
        "warm_cache_whole_workload_ms": warm_s * 1e3,
        "warm_cache_target_ms": 1.0,
        "warm_cache_per_layer_us": warm_s / len(layers) * 1e6,
        "cold_batch_mac_layers": len(mac_layers),
        "cold_batch_mac_layers_ms": batch_s * 1e3,
        "cold_batch_per_layer_ms": batch_s / len(mac_layers) * 1e3,
        "cold_whole_workload_ms": all_s * 1e3,
        "mac_core": cores[mac_core].name,
    }


def zigzag_side_by_side(n_layers: int, repeats: int, core_name: str = "edge_tpu_like",
                        spread: bool = True) -> dict[str, Any]:
    """ZigZag and the analytical model on the same layers of the paper workload, timed in this run.

    ``spread``: one layer of each kind (conv, depthwise, pointwise, FC); otherwise the first ``n_layers``
    distinct MAC layer shapes in workload order.
    """
    try:
        from exitspace.cost.registry import get_backend

        zz = get_backend("zigzag")
    except Exception as exc:  # noqa: BLE001 - the extra is optional; say why it was skipped
        return {"skipped": f"zigzag backend unavailable: {exc}"}
    from exitspace.cost.cache import layer_key
    from exitspace.hardware.loader import load_core
    from exitspace.workload.paper import paper_mobilenetv2_workload

    backend = AnalyticalBackend()
    core = load_core(core_name)
    mac_layers = [l for l in paper_mobilenetv2_workload().layers if l.op.is_mac]
    if spread:
        picks = [l for op in ("conv", "dwconv", "pwconv", "fc")
                 for l in [next((x for x in mac_layers if x.op.value == op), None)] if l is not None]
    else:
        seen: set[tuple] = set()
        picks = []
        for layer in mac_layers:
            if layer_key(layer) not in seen:
                seen.add(layer_key(layer))
                picks.append(layer)
    picks = picks[:n_layers]
    batch_per_layer = median_time(lambda: backend.evaluate(mac_layers, core), repeats) / len(mac_layers)
    rows = []
    for layer in picks:
        single = median_time(lambda: backend.evaluate([layer], core), repeats)
        start = time.perf_counter()
        reference: LayerCost = zz.evaluate([layer], core)[0]
        zz_s = time.perf_counter() - start
        ours = backend.evaluate([layer], core)[0]
        rows.append({
            "layer": layer.name, "op": layer.op.value,
            "zigzag_s": zz_s, "analytical_single_call_s": single, "analytical_batched_per_layer_s": batch_per_layer,
            "speedup_single_call": zz_s / single, "speedup_batched": zz_s / batch_per_layer,
            "compute_cycles_equal": ours.compute_cycles == reference.compute_cycles,
            "latency_rel_error": abs(ours.latency_cycles - reference.latency_cycles) / reference.latency_cycles,
            "energy_rel_error": abs(ours.energy_pj - reference.energy_pj) / reference.energy_pj,
        })
        print(f"  {layer.name:22} zigzag {zz_s:6.2f} s  x{zz_s / batch_per_layer:8.0f} (batched)  "
              f"x{zz_s / single:6.0f} (single call)  lat {rows[-1]['latency_rel_error']:.2%}  "
              f"E {rows[-1]['energy_rel_error']:.2%}", flush=True)
    lat = [r["latency_rel_error"] for r in rows]
    en = [r["energy_rel_error"] for r in rows]
    return {
        "core": core.name, "zigzag_version": zz.version, "layers": rows,
        "median_speedup_batched": statistics.median(r["speedup_batched"] for r in rows),
        "min_speedup_batched": min(r["speedup_batched"] for r in rows),
        "min_speedup_single_call": min(r["speedup_single_call"] for r in rows),
        "target_speedup": 10_000,
        "latency_mean_rel_error": statistics.fmean(lat), "latency_max_rel_error": max(lat),
        "energy_mean_rel_error": statistics.fmean(en), "energy_max_rel_error": max(en),
        "compute_cycles_equal": sum(r["compute_cycles_equal"] for r in rows),
    }


def agreement() -> list[dict[str, Any]]:
    backend = AnalyticalBackend()
    out = []
    for path in sorted(GOLDENS.glob("*.json")):
        golden = json.loads(path.read_text())
        if not golden.get("complete") or not golden.get("layers"):
            continue
        core = Core(**golden["core"])
        layers = [Layer.from_dict(e["layer"]) for e in golden["layers"]]
        refs = [LayerCost.from_dict(e["cost"]) for e in golden["layers"]]
        ours = backend.evaluate(layers, core)
        lat = [abs(o.latency_cycles - r.latency_cycles) / r.latency_cycles for o, r in zip(ours, refs)]
        en = [abs(o.energy_pj - r.energy_pj) / r.energy_pj for o, r in zip(ours, refs)]
        out.append({
            "file": path.name, "core": core.name, "set": golden.get("set"), "bits": golden.get("bits"),
            "layers": len(layers),
            "compute_cycles_equal": sum(o.compute_cycles == r.compute_cycles for o, r in zip(ours, refs)),
            "spatial_utilization_equal": sum(
                abs(o.spatial_utilization - r.spatial_utilization) <= 1e-9 * max(1.0, r.spatial_utilization)
                for o, r in zip(ours, refs)
            ),
            "latency_mean_rel_error": statistics.fmean(lat), "latency_max_rel_error": max(lat),
            "energy_mean_rel_error": statistics.fmean(en), "energy_max_rel_error": max(en),
            "worst_latency_layer": layers[lat.index(max(lat))].name,
            "worst_energy_layer": layers[en.index(max(en))].name,
        })
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--zigzag-layers", type=int, default=4, help="layers to run through ZigZag (0: skip)")
    parser.add_argument("--zigzag-core", default="edge_tpu_like", help="core preset for the ZigZag comparison")
    parser.add_argument("--zigzag-distinct", action="store_true",
                        help="compare the first N distinct MAC layer shapes instead of one layer per kind")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    print("speed ...", flush=True)
    result: dict[str, Any] = {
        "benchmark": "cost_model",
        "backend": "analytical", "backend_version": AnalyticalBackend.version,
        "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine()},
        "speed": speed(args.repeats),
    }
    print("agreement with the goldens ...", flush=True)
    result["agreement"] = agreement()
    if args.zigzag_layers > 0:
        print(f"ZigZag side by side on {args.zigzag_layers} layers (seconds each) ...", flush=True)
        result["zigzag"] = zigzag_side_by_side(args.zigzag_layers, args.repeats, args.zigzag_core,
                                               spread=not args.zigzag_distinct)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: result[k] for k in ("speed",)}, indent=1))
    for row in result["agreement"]:
        print(f"{row['file']:34} n={row['layers']:3} cyc= {row['compute_cycles_equal']:3} spU= "
              f"{row['spatial_utilization_equal']:3} lat {row['latency_mean_rel_error']:.2%}/{row['latency_max_rel_error']:.2%}"
              f" E {row['energy_mean_rel_error']:.2%}/{row['energy_max_rel_error']:.2%}")
    if "zigzag" in result:
        print(json.dumps({k: v for k, v in result["zigzag"].items() if k != "layers"}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
