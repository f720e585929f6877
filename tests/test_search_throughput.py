"""What keeps the search cheap gives the figures of the full evaluation: the MAC-proxy search's unmapped
scores, on the committed ResNet-20 exit tables (8/8) on the quad-core Edge-TPU-like system."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from exitspace.config import ConstraintsConfig, SpaceConfig
from exitspace.cost.registry import get_backend
from exitspace.hardware import load_system
from exitspace.models.eenn import EENNSpec
from exitspace.search.codesign import _HardwareBlind
from exitspace.search.evaluator import CodesignEvaluator
from exitspace.search.objectives import build_constraints
from exitspace.search.space import DesignSpace
from exitspace.train.exit_table import ExitTable
from exitspace.workload.paper import eenn_workload

TABLE = Path(__file__).resolve().parents[1] / "results" / "resnet20_cifar10" / "exit_table_b8_e8.npz"


@pytest.fixture(scope="module")
def evaluator() -> CodesignEvaluator:
    table = ExitTable.load(TABLE)
    workload = eenn_workload(EENNSpec.parse(table.meta["model_spec"]), precision_backbone=8)
    return CodesignEvaluator({(8, 8): table}, workload, load_system("edge_tpu_quad"), get_backend("analytical"))


@pytest.fixture(scope="module")
def space(evaluator: CodesignEvaluator) -> DesignSpace:
    config = SpaceConfig(precision_pairs=[[8, 8]], allocations=["round_robin", "greedy"], policies=["wait", "overlap"])
    return DesignSpace.build(config, evaluator.available(("round_robin", "greedy")))


def sample(space: DesignSpace, count: int, seed: int = 0) -> list:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    designs = []
    for _ in range(count):
        trial = study.ask()
        designs.append(space.suggest(trial))
        study.tell(trial, 0.0)
    return designs


class Counting:
    """An evaluator that counts its full evaluations."""

    def __init__(self, inner: CodesignEvaluator) -> None:
        self.inner = inner
        self.full = 0

    def evaluate(self, design):
        self.full += 1
        return self.inner.evaluate(design)

    def score_without_mapping(self, design):
        return self.inner.score_without_mapping(design)


def test_unmapped_scores_equal_the_full_evaluation(evaluator: CodesignEvaluator, space: DesignSpace) -> None:
    for design in sample(space, 12):
        unmapped = evaluator.score_without_mapping(design)
        assert unmapped is not None  # on this system every layer fits every core that may run it
        full = evaluator.evaluate(design)
        assert unmapped.memory_fit == full.memory_fit
        for split in ("val", "test"):
            for key in ("accuracy", "macs_avg", "early_exit_share"):
                assert unmapped.split(split)[key] == pytest.approx(full.split(split)[key], rel=1e-12), key


def test_mac_proxy_maps_only_when_a_constraint_needs_costs(evaluator: CodesignEvaluator, space: DesignSpace) -> None:
    static = {(8, 8): 0.9}
    blind = build_constraints(ConstraintsConfig(max_accuracy_drop=0.03, memory_fit=True), space, static)
    costly = build_constraints(ConstraintsConfig(max_accuracy_drop=0.03, max_latency=1e9), space, static)
    designs = sample(space, 6, seed=1)
    counting = Counting(evaluator)
    for design in designs:
        _HardwareBlind(counting, blind).evaluate(design)
    assert counting.full == 0
    for design in designs:
        assert "l_avg" in _HardwareBlind(counting, costly).evaluate(design).val
    assert counting.full == len(designs)
