"""The batched mapping hot path gives the decisions of its one-at-a-time definition, on the paper's
MobileNetV2 EENN on the quad-core Edge-TPU-like system (weight streaming, transfers, SIMD/pooling cores)."""

from __future__ import annotations

import numpy as np
import pytest

from exitspace.cost.registry import get_backend
from exitspace.hardware import load_system
from exitspace.mapping import Mapper, NetworkEvaluator
from exitspace.mapping.optimise import _local_search, _Scorer, optimise
from exitspace.workload.paper import paper_mobilenetv2_workload


@pytest.fixture(scope="module")
def mapper() -> Mapper:
    return Mapper(paper_mobilenetv2_workload(), load_system("edge_tpu_quad"), get_backend("analytical"))


CANDIDATES = [["B:pool4_fc1", "K:pool4_fc1"], ["D:pool4_fc1", "F:pool4_fc2", "I:pool4_fc1", "K:pool4_fc1"],
              ["A:pool4_fc2", "C:pool4_fc1", "E:pool4_fc1", "G:pool4_fc2", "J:pool4_fc1", "K:pool4_fc2"]]


def random_allocations(evaluator: NetworkEvaluator, count: int, seed: int) -> np.ndarray:
    """Random eligible core positions [count, n]."""
    rng = np.random.default_rng(seed)
    choice = [np.flatnonzero(row) for row in evaluator.eligible]
    return np.array([[rng.choice(options) for options in choice] for _ in range(count)], dtype=np.int64)


def streamed_one_core_at_a_time(evaluator: NetworkEvaluator, alloc: np.ndarray) -> np.ndarray:
    """The pinning rule as documented: per core, the running sum of its layers' weights against its capacity."""
    streamed = np.zeros(alloc.shape, dtype=bool)
    for core in range(evaluator.model.num_cores):
        on_core = alloc == core
        running = np.cumsum(np.where(on_core, evaluator.weight_bits, 0.0), axis=1)
        streamed |= on_core & (running > evaluator.capacity[core])
    return streamed


def descent_one_layer_at_a_time(score: _Scorer, start: np.ndarray, value: float, max_passes: int = 4) -> np.ndarray:
    """The local search as defined: free layers in order, each moved to its best core if that improves."""
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
    return best


@pytest.mark.parametrize("keys", CANDIDATES)
def test_pinning_and_overlap_schedule_match_their_definitions(mapper: Mapper, keys: list[str]) -> None:
    evaluator = mapper.evaluator(mapper.network(keys))
    alloc = random_allocations(evaluator, 24, seed=len(keys))
    batch = evaluator.layers(alloc)
    streamed = streamed_one_core_at_a_time(evaluator, alloc)
    assert streamed.any() and not streamed.all()  # the rule bites on this system
    np.testing.assert_array_equal(batch.streamed, streamed)
    start, finish = evaluator.overlap_times(alloc, batch)
    for p in range(alloc.shape[0]):  # the plain-Python list schedule of one allocation
        one = evaluator.layers(alloc[p])
        s1, f1 = evaluator.overlap_times(alloc[p : p + 1], one)
        np.testing.assert_allclose(start[p], s1[0], rtol=1e-12)
        np.testing.assert_allclose(finish[p], f1[0], rtol=1e-12)


@pytest.mark.parametrize("policy", ["wait", "overlap"])
@pytest.mark.parametrize("keys", CANDIDATES)
def test_batched_local_search_takes_the_same_moves(mapper: Mapper, keys: list[str], policy: str) -> None:
    evaluator = mapper.evaluator(mapper.network(keys))
    rng = np.random.default_rng(7)
    ratios = rng.dirichlet(np.ones(len(keys)))
    for start in random_allocations(evaluator, 3, seed=11):
        score = _Scorer(evaluator, ratios, "avg_product", policy)
        value = float(score(start)[0])
        expected = descent_one_layer_at_a_time(score, start, value)
        found, found_value = _local_search(score, start, value)
        np.testing.assert_array_equal(found, expected)
        assert found_value == pytest.approx(float(score(expected)[0]), rel=1e-12)
        assert found_value <= value


def test_ga_is_seeded_and_never_worse_than_greedy(mapper: Mapper) -> None:
    evaluator = mapper.evaluator(mapper.network(CANDIDATES[1]))
    ratios = np.array([0.2549, 0.1531, 0.3114, 0.2806])
    for policy in ("wait", "overlap"):
        first = optimise(evaluator, "ga", ratios, policy=policy, seed=3)
        again = optimise(evaluator, "ga", ratios, policy=policy, seed=3)
        np.testing.assert_array_equal(first.positions, again.positions)
        assert first.value <= optimise(evaluator, "greedy", ratios, policy=policy).value * (1 + 1e-12)
