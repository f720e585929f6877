"""From the paper's Stream figures to exitspace's accounting, one difference at a time (docs/stream-profile.md).

Writes benchmarks/results/stream_walk.json. Run from the repository root:

    nice -n 10 python benchmarks/stream_walk.py

Models: the reference models of tests/goldens/stream (their exits, heads and exit ratios; 8-bit backbone and
exits) on the ``stream_eenn_quad`` preset. Rows, each switching one more rule of the ``stream`` cost profile
off (exitspace/mapping/stream_profile.py):

0. the fork's accounting (every rule on), next to the fork's own figures;
1. pooling without the spurious channel loop;
2. layers costed on the on-chip hierarchy (no DRAM round trip per layer);
3. no weight fetch from the off-chip core;
4. one deployable allocation (exitspace's greedy avg-product allocation) instead of each stage's best;
5. transfers without the memory read/write energy the fork counts (links stay at 0 pJ);
6. ZigZag 3.9.1 per-layer semantics (bandwidth borrowing, off-loading in the runtime) and the core's own
   dataflow instead of the fork's mapping search and SIMD width lanes;
7. exitspace's own accounting: ``exitspace evaluate`` (default profile, greedy allocation, ``wait`` policy).

Per row and model: head share of latency (sum of head latencies / sum of stage latencies), average ET in
J*cycles (sum_i r_i E_cum,i L_cum,i) and the reduction vs static the way the fork computes it
(E_cum,final x sum of backbone latencies / average ET); for row 7 also exitspace's own reduction of the average
product against its static baseline.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from exitspace.cost.registry import get_backend  # noqa: E402
from exitspace.dynamic import evaluate_design  # noqa: E402
from exitspace.hardware.loader import load_system  # noqa: E402
from exitspace.mapping import Mapper  # noqa: E402
from exitspace.mapping.stream_profile import PAPER_RULES, StreamRules, stream_figures  # noqa: E402
from exitspace.workload.paper import paper_mobilenetv2_workload  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "stream_walk.json"
GOLDENS = ROOT / "tests" / "goldens" / "stream"
PRESET = "stream_eenn_quad"

STEPS: list[tuple[str, dict[str, bool]]] = [
    ("paper-faithful (Stream fork's accounting)", {}),
    ("- pooling channel overcount", {"pool_channel_loop": False}),
    ("- DRAM residency of every layer", {"dram_residency": False}),
    ("- weight fetch from the off-chip core", {"weight_prefetch": False}),
    ("- best-of-allocations per stage (one deployable allocation)", {"best_of_allocations": False}),
    ("- transfer memory energy", {"transfer_memory_energy": False}),
    ("- ZigZag 3.6.3 latency and the fork's mapping search", {"zigzag_363_latency": False, "runtime_excludes_offload": False,
                                                          "spatial_search": False, "simd_width_lanes": False}),
]


def _models() -> list[dict[str, Any]]:
    models: list[dict[str, Any]] = []
    for path in sorted(GOLDENS.glob("*.json")):
        models += json.loads(path.read_text())["models"]
    return models


def _row_of(figures: Any) -> dict[str, float]:
    return {"head_latency_share": figures.head_latency_share, "avg_et_j_cycles": figures.avg_et_j_cycles,
            "et_reduction_vs_static": figures.et_reduction_vs_static}


def _exitspace_default(mapper: Mapper, keys: list[str], ratios: list[float]) -> dict[str, float]:
    """The same three figures from ``exitspace evaluate``'s accounting (one greedy allocation, ``wait``)."""
    evaluation = evaluate_design(mapper, keys, ratios, strategy="greedy", policy="wait", objective="avg_product")
    stages = evaluation.schedule.stages
    cum_e = [s.cum_energy_pj / 1e12 for s in stages]
    cum_l = [s.cum_latency_cycles for s in stages]
    avg_et = sum(r * e * l for r, e, l in zip(ratios, cum_e, cum_l))
    backbone = sum(s.backbone_latency_cycles for s in stages)
    return {
        "head_latency_share": sum(s.head_latency_cycles for s in stages) / sum(s.latency_cycles for s in stages),
        "avg_et_j_cycles": avg_et,
        "et_reduction_vs_static": cum_e[-1] * backbone / avg_et,
        "exitspace_reduction_avg_product": evaluation.metrics.reduction_avg_product or 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    started = time.process_time()
    system = load_system(PRESET)
    workload = paper_mobilenetv2_workload()
    mapper = Mapper(workload, system, get_backend("analytical"))
    models = []
    for model in _models():
        keys = [f"{e}:{h}" for e, h in zip(model["exits"], model["heads"])]
        ratios = model["exit_ratios"]
        deployable = evaluate_design(mapper, keys, ratios, strategy="greedy", policy="wait").schedule.allocation.cores
        rules = PAPER_RULES
        rows = []
        for label, change in STEPS:
            rules = replace(rules, **change)
            allocations = [] if rules.best_of_allocations else [deployable]
            rows.append({"step": label, **_row_of(stream_figures(workload, keys, system, ratios, rules, allocations))})
        rows.append({"step": "exitspace's own accounting (exitspace evaluate)", **_exitspace_default(mapper, keys, ratios)})
        models.append({
            "nas_model": model["nas_model"], "exits": keys, "ratios": ratios,
            "fork": {"head_latency_share": model["head_latency_share"], "avg_et_j_cycles": model["avg_et_j_cycles"],
                     "et_reduction_vs_static": model["et_reduction_vs_static"]},
            "rows": rows,
        })
    medians = []
    for i, (label, _) in enumerate(STEPS + [("exitspace's own accounting (exitspace evaluate)", {})]):
        medians.append({"step": label, **{key: statistics.median(m["rows"][i][key] for m in models)
                                          for key in ("head_latency_share", "avg_et_j_cycles", "et_reduction_vs_static")}})
    result = {"preset": PRESET, "bits": "8/8", "models": models, "medians": medians,
              "cpu_seconds": round(time.process_time() - started, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    for row in medians:
        print(f"{row['step']:62} head share {row['head_latency_share']:6.1%}  avg ET {row['avg_et_j_cycles']:9.2f}  "
              f"reduction {row['et_reduction_vs_static']:.3f}x")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
