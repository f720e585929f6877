"""Speed of the co-design search: N candidate evaluations from exit tables and a warm cost cache.

    python benchmarks/search.py [--trials 10000] [--repeats 3] [--config resnet20_cifar10] [--out FILE]

Writes JSON (default benchmarks/results/search.json) with, for one search of ``--trials`` trials
(NSGA-II, the config's design space, in-memory sampling written to the SQLite trial log per generation):

- ``total_s``: wall clock of the search; target < 60 s for 10,000 trials on the 2-core machine;
- ``evaluation_s``: time inside the evaluator (exit-table scoring on val and test, allocation with the
  design's strategy, schedule, dynamic metrics), ``unique_designs`` (evaluations; repeated designs are
  memoised), ``persist_s`` (writing finished generations to the trial log) and
  ``sampler_overhead_s = total_s - evaluation_s - persist_s`` (Optuna's NSGA-II, parameter bookkeeping);
- ``eval_ms_median``: median over ``--repeats`` runs of the mean evaluation time of 500 fresh designs,
  per allocation strategy of the config (the searched space uses ``--allocations``, default round_robin:
  greedy / GA allocation are optimisers in their own right and add their own time per design);
- ``warm_cost_s``: building the cost matrices of every precision pair once (not part of the search).

Exit tables: the committed ones of the config when present, else synthetic tables of the same shape
(ResNet-20 heads, 5,000 val / 10,000 test samples) so the timing is representative; the JSON says which.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna

from exitspace.config import load_config
from exitspace.cost.registry import get_backend
from exitspace.hardware import load_system
from exitspace.models.eenn import EENNSpec
from exitspace.flow.tables import covering_pairs, find_tables, needed_pairs
from exitspace.mapping.optimise import STRATEGIES as ALLOCATION_STRATEGIES
from exitspace.search.engine import SearchProblem, run_search
from exitspace.search.evaluator import CodesignEvaluator
from exitspace.search.objectives import build_constraints
from exitspace.search.space import DesignSpace
from exitspace.search.storage import trial_log_url
from exitspace.train.exit_table import ExitTable
from exitspace.workload.paper import eenn_workload

RESNET20_SPEC = {"backbone": "resnet20", "head_types": ["pool4_fc1", "pool4_fc2", "gap_fc"]}


def synthetic_tables(spec: EENNSpec, pairs: list[tuple[int, int]], val: int = 5000, test: int = 10000):
    """Random logits of the right shape (heads of ``spec``), deeper heads more accurate."""
    keys = spec.head_keys
    rng = np.random.default_rng(0)
    tables = {}
    for pair in pairs:
        logits, labels = {}, {}
        for split, n in (("val", val), ("test", test)):
            y = rng.integers(0, 10, n)
            z = rng.normal(0, 1, (n, len(keys), 10)).astype(np.float32)
            depth = np.linspace(1.0, 4.0, len(keys))
            z[np.arange(n), :, y] += depth[None, :] * rng.random((n, 1)).astype(np.float32) * 2
            logits[split], labels[split] = z, y
        tables[pair] = ExitTable(keys, list(spec.head_blocks), logits, labels,
                                 {"precision_pair": list(pair), "model_spec": spec.model_dump(mode="json")})
    return tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--config", default="resnet20_cifar10")
    parser.add_argument("--allocations", default="round_robin",
                        help="comma-separated allocation strategies of the searched space (default round_robin: the "
                             "greedy and GA strategies are optimisers of their own, timed separately below)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "search.json")
    args = parser.parse_args()

    config = load_config(args.config)
    wanted = needed_pairs(config)  # None: every quantized pair that has a table, as `exitspace run` does
    found = find_tables(config.resolve_path(config.exit_tables.dir))
    pairs = covering_pairs(found, wanted)
    if pairs:
        tables = {p: ExitTable.load(found[p]) for p in pairs}
        origin = f"committed: {config.exit_tables.dir}"
        spec = EENNSpec.parse(next(iter(tables.values())).meta["model_spec"])
    else:
        spec = EENNSpec.parse(RESNET20_SPEC)
        pairs = wanted or [(8, 8), (8, 4), (4, 8), (4, 4)]
        tables = synthetic_tables(spec, pairs)
        origin = "synthetic (ResNet-20 heads, 5000 val / 10000 test samples)"
    workload = eenn_workload(spec)
    evaluator = CodesignEvaluator(tables, workload, load_system(config.hardware.system), get_backend(config.cost.backend),
                                  elp_definition=config.search.elp, seed=config.seed)
    start = time.perf_counter()
    evaluator.warm(pairs)
    warm_s = time.perf_counter() - start
    full_space = DesignSpace.build(config.search.space, evaluator.available(ALLOCATION_STRATEGIES))
    space = full_space.restricted(allocations=tuple(args.allocations.split(",")))

    # per-evaluation cost per allocation strategy, fresh designs each repeat
    eval_ms: dict[str, float] = {}
    for strategy in dict.fromkeys((*full_space.allocations, *space.allocations)):
        samples = []
        for repeat in range(args.repeats):
            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=100 + repeat))
            designs = []
            for _ in range(500):
                trial = study.ask()
                designs.append(full_space.restricted(allocations=(strategy,)).suggest(trial))
                study.tell(trial, 0.0)
            t0 = time.perf_counter()
            for design in designs:
                evaluator.evaluate(design)
            samples.append((time.perf_counter() - t0) / len(designs) * 1e3)
        eval_ms[strategy] = statistics.median(samples)

    static = {p: evaluator.evaluate(space.static_design(p)).val["accuracy"] for p in pairs}
    problem = SearchProblem(space, evaluator, list(config.search.objectives), config.search.elp,
                            build_constraints(config.search.constraints, space, static))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        outcome = run_search(problem, trials=args.trials, population=config.search.population, seed=config.seed,
                             storage=trial_log_url(Path(tmp)), study_name="bench")
        total = time.perf_counter() - t0
    result = {
        "benchmark": "search",
        "config": args.config,
        "exit_tables": origin,
        "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine(),
                    "optuna": optuna.__version__},
        "design_space": {"allocations": list(space.allocations), "policies": list(space.policies),
                         "precision_pairs": [list(p) for p in space.precision_pairs],
                         "threshold_mode": space.threshold_mode, "candidates": list(space.candidates)},
        "trials": args.trials,
        "population": config.search.population,
        "total_s": total,
        "evaluation_s": outcome.eval_seconds,
        "unique_designs": problem.evaluations,
        "persist_s": outcome.persist_seconds,
        "sampler_overhead_s": total - outcome.eval_seconds - outcome.persist_seconds,
        "ms_per_trial": 1e3 * total / args.trials,
        "target_s": 60.0,
        "meets_target": total < 60.0,
        "eval_ms_median": eval_ms,
        "repeats": args.repeats,
        "warm_cost_s": warm_s,
        "feasible_trials": len(outcome.feasible),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
