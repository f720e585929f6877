"""What keeps the search cheap gives the figures of the full evaluation: the MAC-proxy search's unmapped
scores (on the committed ResNet-20 exit tables, 8/8, on the quad-core Edge-TPU-like system), the bounded
evaluation cache, re-runs that evaluate nothing already done, and the stored slow-strategy evaluations."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import optuna
import pytest
from toys import ToyEvaluator

from exitspace.config import ConstraintsConfig, SpaceConfig, parse_config
from exitspace.cost.registry import get_backend
from exitspace.hardware import load_system
from exitspace.models.eenn import EENNSpec
from exitspace.search.codesign import _HardwareBlind
from exitspace.search.engine import SearchProblem, _Recent, run_search
from exitspace.search.evaluator import CodesignEvaluator
from exitspace.search.objectives import build_constraints
from exitspace.search.space import DesignSpace
from exitspace.search.storage import trial_log_url
from exitspace.search.stored import StoredEvaluations
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


def toy_problem(evaluator: ToyEvaluator) -> SearchProblem:
    config = parse_config({"name": "t", "search": {
        "space": {"precision_pairs": [[8, 8], [4, 8]], "allocations": ["greedy", "ga"], "policies": ["wait", "overlap"]},
        "baselines": {"mac_proxy": False}}})
    space = DesignSpace.build(config.search.space, evaluator.available())
    return SearchProblem(space, evaluator, ["accuracy", "elp"], "paper",
                         build_constraints(config.search.constraints, space, {}))


def test_evaluation_cache_is_bounded_and_keeps_the_recent_designs(monkeypatch: pytest.MonkeyPatch) -> None:
    recent = _Recent(size=3)
    for key in "abcd":
        recent.keep(key, key.upper())
    assert list(recent) == ["b", "c", "d"]
    assert recent.lookup("b") == "B" and list(recent) == ["c", "d", "b"]
    problem = toy_problem(ToyEvaluator())
    problem._cache.size = 16
    outcome = run_search(problem, trials=120, population=10, seed=0, storage="sqlite:///:memory:", study_name="s")
    assert len(problem._cache) == 16 < problem.evaluations
    assert len(outcome.trials) == 120 and not outcome.trials[0].evaluation.stages  # results keep summaries


def test_rerun_of_a_finished_study_evaluates_nothing(tmp_path: Path) -> None:
    url = trial_log_url(tmp_path)
    first = run_search(toy_problem(ToyEvaluator()), trials=60, population=10, seed=0, storage=url, study_name="s")
    again_evaluator = ToyEvaluator()
    again = run_search(toy_problem(again_evaluator), trials=60, population=10, seed=0, storage=url, study_name="s")
    assert again_evaluator.calls == 0 and again.new_trials == 0
    assert [(t.number, t.values, t.violations, t.evaluation.test) for t in again.trials] == \
        [(t.number, t.values, t.violations, t.evaluation.test) for t in first.trials]
    resumed_evaluator = ToyEvaluator()
    resumed = run_search(toy_problem(resumed_evaluator), trials=70, population=10, seed=0, storage=url,
                         study_name="s")
    assert resumed.new_trials == 10 and len(resumed.trials) == 70
    assert resumed_evaluator.calls <= 10  # only the new trials are evaluated


def test_slow_strategy_evaluations_are_kept_for_the_next_run(tmp_path: Path) -> None:
    problem = toy_problem(ToyEvaluator())
    designs = [problem.space.static_design((8, 8)), problem.space.static_design((4, 8))]
    slow = [replace(d, allocation="ga") for d in designs] + [replace(designs[0], allocation="greedy")]
    first_inner = ToyEvaluator()
    first = StoredEvaluations(first_inner, tmp_path / "e.sqlite3", "id-1")
    expected = [first.evaluate(d).to_dict() for d in slow]
    assert first_inner.calls == len(slow)
    again_inner = ToyEvaluator()
    again = StoredEvaluations(again_inner, tmp_path / "e.sqlite3", "id-1")
    assert [again.evaluate(d).to_dict() for d in slow] == expected
    assert again_inner.calls == 1  # only the fast strategy's design
    other_inner = ToyEvaluator()
    StoredEvaluations(other_inner, tmp_path / "e.sqlite3", "id-2").evaluate(slow[0])
    assert other_inner.calls == 1  # another evaluator identity does not reuse it


def test_phases_log_their_progress_when_not_a_terminal(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from exitspace.cli import run_cmds

    monkeypatch.setattr(run_cmds, "LOG_EVERY_S", 0.0)
    with run_cmds.RichPhases() as phases:
        phases.start("search", 3)
        for done in (1, 2, 3, 3):
            phases.update("search", done, 3)
        phases.update("refine front", 2, 2)
        phases.done("search", "3 trials")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "search ..." and lines[-1] == "search done: 3 trials"
    progress = [line.split(" (")[0] for line in lines[1:-1]]
    assert progress == ["search: 1/3", "search: 2/3", "search: 3/3", "refine front: 2/2"]  # the end once
