"""Allocation strategies: heuristics and a seeded genetic algorithm, all on the batched evaluator.

Every strategy returns core positions [n] for a :class:`~exitspace.mapping.schedule.NetworkEvaluator`'s
network and minimises (or, for the fixed heuristics, just evaluates) an objective of the exit ratios:
``avg_product`` (the paper's ``sum_i r_i E_cum,i L_cum,i``, default), ``product_of_averages``
(``E_avg * L_avg``), ``energy`` or ``latency``. Layers with one eligible core (pooling on the pooling
core, element-wise ops on the SIMD core, where the system has them) are fixed; the rest are free.

- ``single``: every free layer on one compute core (the best one);
- ``round_robin``: exit stage s (backbone segment + head) on compute core ``s mod n_compute``;
- ``greedy``: from the better of the two, layer by layer in execution order, move a layer to the core
  that lowers the objective most; repeat passes until nothing improves (a local search);
- ``ga``: genetic algorithm (tournament selection, two-point crossover, per-gene and run mutation,
  elitism) seeded with the heuristics, then the greedy local search on its best (memetic). Same seed,
  same result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from exitspace.errors import ConfigError
from exitspace.mapping.schedule import NetworkEvaluator, check_objective, check_policy

STRATEGIES: tuple[str, ...] = ("single", "round_robin", "greedy", "ga")
"""Allocation strategies (layers -> cores), the one list of their names."""


def check_strategy(strategy: str, where: str = "allocation") -> str:
    """``strategy`` if it names an allocation strategy; else a one-line error naming ``where``."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"{where}: unknown strategy {strategy!r}; use one of {list(STRATEGIES)}")
    return strategy


@dataclass
class SearchResult:
    """Best allocation [n] found, its objective and the number of allocations evaluated."""

    positions: np.ndarray
    value: float
    evaluations: int


@dataclass(frozen=True)
class GAConfig:
    """Genetic-algorithm settings."""

    population: int = 48
    generations: int = 120
    patience: int = 30
    tournament: int = 3
    crossover: float = 0.9
    elite: int = 2
    run_mutation: float = 0.3


class _Scorer:
    def __init__(
        self,
        evaluator: NetworkEvaluator,
        ratios: np.ndarray,
        objective: str,
        policy: str,
        custom: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        if custom is None:
            check_objective(objective)
        check_policy(policy)
        self.custom = custom
        ratios = np.asarray(ratios, dtype=float)
        if ratios.shape != (evaluator.net.num_stages,):
            raise ConfigError(
                f"ratios: {ratios.size} values for {evaluator.net.num_stages} exits; give one ratio per exit"
            )
        self.evaluator, self.ratios, self.objective, self.policy = evaluator, ratios, objective, policy
        self.count = 0

    def __call__(self, alloc: np.ndarray) -> np.ndarray:
        alloc = np.atleast_2d(alloc)
        self.count += alloc.shape[0]
        if self.custom is not None:
            return self.custom(alloc)
        return self.evaluator.objective(alloc, self.ratios, self.objective, self.policy)


def _compute_cores(evaluator: NetworkEvaluator) -> list[int]:
    cores = evaluator.model.compute_positions
    if not cores:
        raise ConfigError(f"hardware {evaluator.model.system.name!r}: has no compute core; add one")
    return cores


def _single_candidates(evaluator: NetworkEvaluator) -> np.ndarray:
    rows = []
    for core in _compute_cores(evaluator):
        rows.append(np.where(evaluator.eligible[:, core], core, evaluator.default))
    return np.array(rows, dtype=np.int64)


def _round_robin(evaluator: NetworkEvaluator) -> np.ndarray:
    cores = np.array(_compute_cores(evaluator))
    wanted = cores[evaluator.net.stage_of % len(cores)]
    return np.where(evaluator.eligible[evaluator.rows, wanted], wanted, evaluator.default).astype(np.int64)


def _moves(evaluator: NetworkEvaluator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every single-layer move of the local search, free layer by free layer: (layer [M], core [M], offsets
    [F + 1] where free layer k's moves are rows offsets[k]:offsets[k + 1])."""
    options = [np.flatnonzero(evaluator.eligible[j]) for j in evaluator.free]
    layer = np.repeat(evaluator.free, [o.size for o in options]).astype(np.int64)
    core = np.concatenate(options).astype(np.int64) if options else np.zeros(0, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum([o.size for o in options])]).astype(np.int64)
    return layer, core, offsets


def _local_search(score: _Scorer, start: np.ndarray, value: float, max_passes: int = 4) -> tuple[np.ndarray, float]:
    """First-improvement descent: free layers in execution order, each moved to the core that lowers the
    objective most, passes until one improves nothing.

    The moves of all remaining free layers are scored in one batch from the current allocation; the first
    layer (in order) with an improving move takes it, and only the layers after it are scored again, from
    the new allocation. Same decisions as scoring one layer at a time, in a few batched calls."""
    layer, core, offsets = _moves(score.evaluator)
    best = start.copy()
    for _ in range(max_passes):
        improved = False
        first = 0  # free layers before this one have been tried against the current allocation
        while first < offsets.size - 1:
            rows = slice(offsets[first], offsets[-1])
            trial = np.repeat(best[None, :], rows.stop - rows.start, axis=0)
            trial[np.arange(trial.shape[0]), layer[rows]] = core[rows]
            values = score(trial)
            local = offsets[first:] - offsets[first]
            lowest = np.minimum.reduceat(values, local[:-1])
            better = np.flatnonzero(lowest < value * (1 - 1e-12))
            if not better.size:
                break
            k = first + int(better[0])
            segment = values[local[k - first] : local[k - first + 1]]
            pick = int(np.argmin(segment))
            if core[offsets[k] + pick] != best[layer[offsets[k]]]:
                best = trial[local[k - first] + pick].copy()
                value = float(segment[pick])
                improved = True
            first = k + 1
        if not improved:
            break
    return best, value


def single(score: _Scorer) -> SearchResult:
    """All free layers on the best single compute core."""
    candidates = _single_candidates(score.evaluator)
    values = score(candidates)
    pick = int(np.argmin(values))
    return SearchResult(candidates[pick], float(values[pick]), score.count)


def round_robin(score: _Scorer) -> SearchResult:
    """Stage s on compute core s mod n_compute."""
    alloc = _round_robin(score.evaluator)
    return SearchResult(alloc, float(score(alloc)[0]), score.count)


def greedy(score: _Scorer) -> SearchResult:
    """Local search from the better of ``single`` and ``round_robin``."""
    first, second = single(score), round_robin(score)
    start = first if first.value <= second.value else second
    best, value = _local_search(score, start.positions, start.value)
    return SearchResult(best, value, score.count)


def _spans(rng: np.random.Generator, count: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` random non-empty spans [lo, hi) of ``range(length)`` (two distinct cut points each)."""
    first = rng.integers(0, length + 1, size=count)
    second = rng.integers(0, length, size=count)
    second += second >= first
    return np.minimum(first, second), np.maximum(first, second)


def genetic(score: _Scorer, seed: int = 0, config: GAConfig | None = None) -> SearchResult:
    """Seeded genetic algorithm + greedy polish (see module docstring)."""
    config = config or GAConfig()
    evaluator = score.evaluator
    rng = np.random.default_rng(seed)
    free = evaluator.free
    if free.size == 0:
        alloc = evaluator.default.copy()
        return SearchResult(alloc, float(score(alloc)[0]), score.count)
    options = [np.flatnonzero(evaluator.eligible[j]) for j in free]
    width = max(o.size for o in options)
    table = np.array([np.resize(o, width) for o in options])  # [F, width], cycled where fewer
    counts = np.array([o.size for o in options])
    compute = np.array(_compute_cores(evaluator))
    slots = np.arange(free.size)

    def random_genes(count: int) -> np.ndarray:
        picks = (rng.random((count, free.size)) * counts).astype(np.int64)
        return table[np.arange(free.size), picks]

    seeds = [greedy(score).positions, _round_robin(evaluator), *_single_candidates(evaluator)]
    base = evaluator.default.copy()
    population = np.repeat(base[None, :], config.population, axis=0)
    population[:, free] = random_genes(config.population)
    for k, seeded in enumerate(seeds[: config.population]):
        population[k] = seeded
    fitness = score(population)
    best_value, stale = float(fitness.min()), 0
    for _ in range(config.generations):
        order = np.argsort(fitness, kind="stable")
        elite = population[order[: config.elite]]
        need = config.population - config.elite
        contenders = rng.integers(0, config.population, size=(2 * need, config.tournament))
        winners = contenders[np.arange(2 * need), np.argmin(fitness[contenders], axis=1)]
        children = population[winners[0::2]].copy()  # mothers
        fathers = population[winners[1::2]]
        if free.size > 1:  # two-point crossover on the free genes
            lo, hi = _spans(rng, need, free.size)
            take = (slots >= lo[:, None]) & (slots < hi[:, None]) & (rng.random(need) < config.crossover)[:, None]
            children[:, free] = np.where(take, fathers[:, free], children[:, free])
        flip = rng.random((need, free.size)) < 1.5 / free.size  # per-gene mutation
        children[:, free] = np.where(flip, random_genes(need), children[:, free])
        lo, hi = _spans(rng, need, free.size)  # run mutation: a span of free genes onto one compute core
        core = compute[rng.integers(compute.size, size=need)]
        run = (slots >= lo[:, None]) & (slots < hi[:, None]) & (rng.random(need) < config.run_mutation)[:, None]
        run &= evaluator.eligible[free[None, :], core[:, None]]
        children[:, free] = np.where(run, core[:, None], children[:, free])
        population = np.concatenate([elite, children])
        fitness = score(population)
        current = float(fitness.min())
        if current < best_value * (1 - 1e-12):
            best_value, stale = current, 0
        else:
            stale += 1
            if stale >= config.patience:
                break
    pick = int(np.argmin(fitness))
    best, value = _local_search(score, population[pick], float(fitness[pick]))
    return SearchResult(best, value, score.count)


def optimise(
    evaluator: NetworkEvaluator,
    strategy: str,
    ratios: np.ndarray,
    objective: str = "avg_product",
    policy: str = "wait",
    seed: int = 0,
    ga: GAConfig | None = None,
    custom: Callable[[np.ndarray], np.ndarray] | None = None,
) -> SearchResult:
    """Run one allocation strategy (``single``, ``round_robin``, ``greedy``, ``ga``). ``custom``, if given,
    replaces the objective: it maps allocations [P, n] to values [P] (lower is better)."""
    score = _Scorer(evaluator, ratios, objective, policy, custom)
    if strategy == "single":
        return single(score)
    if strategy == "round_robin":
        return round_robin(score)
    if strategy == "greedy":
        return greedy(score)
    if strategy == "ga":
        return genetic(score, seed=seed, config=ga)
    raise ConfigError(f"allocation: unknown strategy {strategy!r}; use one of {list(STRATEGIES)} or a JSON file")
