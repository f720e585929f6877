"""Speed of the mapping + dynamic stages; writes benchmarks/results/mapping.json.

    python benchmarks/mapping.py [--out FILE] [--repeats 7]

Measured (medians over repeats, wall clock, one process):

- ``candidate_metrics_ms``: one EENN candidate's dynamic metrics from warm per-layer costs: schedule of
  its (cached) staged network on a given allocation + :func:`dynamic_metrics` (target < 1 ms);
- ``new_candidate_ms``: a candidate never seen before: staging, evaluator, round-robin allocation,
  schedule, metrics; and the same with the greedy allocator;
- ``allocation_s``: one allocation-optimiser run (greedy, GA under wait, GA under overlap) for the
  paper's D,F,I,K network;
- ``threshold_vectors_per_s``: threshold vectors scored per second on a 10,000-sample, 4-exit table.

Workload: the paper's MobileNetV2-CIFAR supernet at 8/8 (exits A-J, K; both head types) on the
edge_tpu_quad system with the analytical backend.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np

from exitspace.cost.registry import get_backend
from exitspace.dynamic import ExitScorer, dynamic_metrics
from exitspace.dynamic.confidence import confidence
from exitspace.hardware.loader import load_system
from exitspace.mapping import LayerCostCache, Mapper
from exitspace.mapping.allocation import to_array
from exitspace.mapping.optimise import optimise
from exitspace.workload.paper import paper_mobilenetv2_workload

PAPER_EXITS = ["D:pool4_fc1", "F:pool4_fc1", "I:pool4_fc1", "K:pool4_fc1"]
PAPER_RATIOS = np.array([0.2549, 0.1531, 0.3114, 0.2806])


def median_time(func: Callable[[], object], repeats: int, inner: int = 1) -> float:
    """Median over ``repeats`` of the mean time of ``inner`` calls, in seconds."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            func()
        samples.append((time.perf_counter() - start) / inner)
    return statistics.median(samples)


def random_candidates(rng: np.random.Generator, count: int) -> list[tuple[list[str], np.ndarray]]:
    """Random exit subsets of A-J (+K) with random head types and random ratios."""
    labels = list("ABCDEFGHIJ")
    out = []
    for _ in range(count):
        chosen = sorted(rng.choice(10, size=rng.integers(1, 8), replace=False))
        keys = [f"{labels[i]}:{rng.choice(['pool4_fc1', 'pool4_fc2'])}" for i in chosen] + ["K:pool4_fc1"]
        out.append((keys, rng.dirichlet(np.ones(len(keys)))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results") / "mapping.json")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    repeats = args.repeats

    workload = paper_mobilenetv2_workload(precision=8)
    system = load_system("edge_tpu_quad")
    backend = get_backend("analytical")
    start = time.perf_counter()
    mapper = Mapper(workload, system, backend, cache=LayerCostCache())
    cold_build_s = time.perf_counter() - start
    warm_build_s = median_time(lambda: Mapper(workload, system, backend), repeats)

    net = mapper.network(PAPER_EXITS)
    allocation = mapper.allocate(net, "greedy", PAPER_RATIOS)
    static = mapper.static_schedule("K:pool4_fc1")
    evaluator = mapper.evaluator(net)
    positions = to_array(mapper.model, net, allocation)

    def candidate_metrics() -> None:
        schedule = evaluator.schedule(positions, "wait", allocation)
        dynamic_metrics(schedule, PAPER_RATIOS, static)

    def candidate_metrics_overlap() -> None:
        schedule = evaluator.schedule(positions, "overlap", allocation)
        dynamic_metrics(schedule, PAPER_RATIOS, static)

    candidate_ms = 1e3 * median_time(candidate_metrics, repeats, inner=200)
    candidate_overlap_ms = 1e3 * median_time(candidate_metrics_overlap, repeats, inner=50)
    objective_batch_us = 1e6 * median_time(
        lambda: evaluator.objective(np.repeat(positions[None], 48, axis=0), PAPER_RATIOS), repeats, inner=50
    ) / 48

    rng = np.random.default_rng(0)
    fresh = random_candidates(rng, 60)

    def new_candidates(strategy: str) -> float:
        local = Mapper(workload, system, backend)  # warm per-layer costs, no staged networks yet
        times = []
        for keys, ratios in fresh:
            begin = time.perf_counter()
            sub = local.network(keys)
            found = optimise(local.evaluator(sub), strategy, ratios)
            schedule = local.evaluator(sub).schedule(found.positions, "wait")
            dynamic_metrics(schedule, ratios, static)
            times.append(time.perf_counter() - begin)
        return 1e3 * statistics.median(times)

    new_rr_ms = statistics.median(new_candidates("round_robin") for _ in range(3))
    new_greedy_ms = statistics.median(new_candidates("greedy") for _ in range(3))

    allocation_s = {
        "greedy": median_time(lambda: optimise(evaluator, "greedy", PAPER_RATIOS), repeats),
        "ga_wait": median_time(lambda: optimise(evaluator, "ga", PAPER_RATIOS, seed=1), max(3, repeats // 2)),
        "ga_overlap": median_time(
            lambda: optimise(evaluator, "ga", PAPER_RATIOS, policy="overlap", seed=1), max(3, repeats // 2)
        ),
    }
    ga_value = optimise(evaluator, "ga", PAPER_RATIOS, seed=1).value
    greedy_value = optimise(evaluator, "greedy", PAPER_RATIOS).value

    n = 10_000
    logits = rng.normal(size=(n, 4, 10)).astype(np.float32)
    labels = rng.integers(0, 10, size=n)
    logits[np.arange(n), :, labels] += rng.exponential(2.0, size=(n, 4)).astype(np.float32)
    scorer = ExitScorer(confidence(logits), logits.argmax(-1) == labels[:, None], PAPER_EXITS)
    vectors = rng.uniform(0.3, 1.0, size=(2000, 3)).astype(np.float32)
    score_s = median_time(lambda: scorer.score(vectors), repeats)

    result = {
        "benchmark": "mapping",
        "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine()},
        "workload": f"{workload.name} supernet 8/8, {len(workload)} layers; system edge_tpu_quad; backend analytical",
        "paper_network": PAPER_EXITS,
        "repeats": repeats,
        "cost_model_build_s": {"cold": cold_build_s, "warm_cache": warm_build_s},
        "candidate_metrics_ms": {"wait": candidate_ms, "overlap": candidate_overlap_ms, "target": 1.0},
        "objective_per_allocation_in_batch_of_48_us": objective_batch_us,
        "new_candidate_ms": {"round_robin": new_rr_ms, "greedy": new_greedy_ms, "candidates": len(fresh)},
        "allocation_s": allocation_s,
        "allocation_objective": {"greedy": greedy_value, "ga": ga_value, "ga_over_greedy": ga_value / greedy_value},
        "threshold_vectors_per_s": {
            "value": len(vectors) / score_s,
            "samples": n,
            "exits": 4,
            "vectors_per_call": len(vectors),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
