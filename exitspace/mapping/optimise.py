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


def _local_search(score: _Scorer, start: np.ndarray, value: float, max_passes: int = 4) -> tuple[np.ndarray, float]:
    evaluator = score.evaluator
    best = start.copy()
    for _ in range(max_passes):
        improved = False
        for j in evaluator.free:
            options = np.flatnonzero(evaluator.eligible[j])
            trial = np.repeat(best[None, :], options.size, axis=0)
            trial[:, j] = options
            values = score(trial)
            pick = int(np.argmin(values))
            if values[pick] < value * (1 - 1e-12) and options[pick] != best[j]:
                best, value, improved = trial[pick].copy(), float(values[pick]), True
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
        children = [population[order[e]].copy() for e in range(config.elite)]
        need = config.population - config.elite
        contenders = rng.integers(0, config.population, size=(2 * need, config.tournament))
        winners = contenders[np.arange(2 * need), np.argmin(fitness[contenders], axis=1)]
        for k in range(need):
            mother, father = population[winners[2 * k]], population[winners[2 * k + 1]]
            child = mother.copy()
            if rng.random() < config.crossover and free.size > 1:
                lo, hi = np.sort(rng.choice(free.size + 1, size=2, replace=False))
                child[free[lo:hi]] = father[free[lo:hi]]
            flip = rng.random(free.size) < 1.5 / free.size
            if flip.any():
                child[free[flip]] = random_genes(1)[0][flip]
            if rng.random() < config.run_mutation:
                lo, hi = np.sort(rng.choice(free.size + 1, size=2, replace=False))
                core = compute[rng.integers(compute.size)]
                span = free[lo:hi]
                ok = evaluator.eligible[span, core]
                child[span[ok]] = core
            children.append(child)
        population = np.array(children)
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
