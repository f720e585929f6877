"""Search engine: constraints, infeasibility messages, determinism, resume after an interruption, storage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
from toys import ToyEvaluator

from exitspace.config import parse_config
from exitspace.errors import ConfigError, InfeasibleError
from exitspace.search.codesign import CodesignInputs, run_codesign
from exitspace.search.engine import SearchProblem, pareto_front, run_search
from exitspace.search.hypervolume import hypervolume
from exitspace.search.objectives import build_constraints
from exitspace.search.optuna_adapter import in_memory_study, open_storage
from exitspace.search.space import Design, DesignSpace
from exitspace.search.storage import TrialLog, trial_log_url


def _config(**search: object):  # type: ignore[no-untyped-def]
    base = {"trials": 120, "population": 20,
            "space": {"precision_pairs": [[8, 8], [4, 8]], "allocations": ["greedy", "ga"], "policies": ["wait", "overlap"]},
            "baselines": {"mac_proxy": False}}
    base.update(search)
    return parse_config({"name": "t", "search": base})


def _inputs(evaluator: ToyEvaluator, config) -> CodesignInputs:  # type: ignore[no-untyped-def]
    return CodesignInputs(DesignSpace.build(config.search.space, evaluator.available()), evaluator, "toy")


def test_space_suggest_is_consistent() -> None:
    evaluator = ToyEvaluator()
    space = DesignSpace.build(_config().search.space, evaluator.available())
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(30):
        trial = study.ask()
        design = space.suggest(trial)
        study.tell(trial, 0.0)
        assert design.final == "K" and design.labels[-1] == "K"
        assert len(design.thresholds) == len(design.exits)
        assert list(design.exits) == sorted(design.exits)
        assert Design.from_dict(design.to_dict()) == design
        assert space.suggest(optuna.trial.FixedTrial(trial.params)) == design


def test_unknown_exit_and_missing_pair_are_clear() -> None:
    evaluator = ToyEvaluator(pairs=((8, 8),))
    with pytest.raises(ConfigError, match=r"search.space.exits: \['Z'\]"):
        DesignSpace.build(parse_config({"search": {"space": {"exits": ["A", "Z"]}}}).search.space, evaluator.available())
    with pytest.raises(ConfigError, match=r"no exit table for \[\[4, 4\]\]"):
        DesignSpace.build(parse_config({"search": {"space": {"precision_pairs": [[4, 4]]}}}).search.space,
                          evaluator.available())


def test_front_is_feasible_and_nondominated(tmp_path: Path) -> None:
    config = _config(constraints={"max_accuracy_drop": 0.01, "max_exit_overhead": 0.09})
    results = run_codesign(config, _inputs(ToyEvaluator(), config), tmp_path)
    static = {k: v.val["accuracy"] for k, v in results.static.items()}
    assert results.pareto
    for entry in results.pareto:
        pair = "/".join(str(b) for b in entry.design.precision)
        assert entry.val["accuracy"] >= static[pair] - 0.01 - 1e-12
        assert entry.val["exit_overhead"] <= 0.09 + 1e-12
    values = np.array([[-e.val["accuracy"], e.val["elp"], e.val["exit_overhead"]] for e in results.pareto])
    for i in range(len(values)):
        dominated = np.all(values <= values[i], axis=1) & np.any(values < values[i], axis=1)
        assert not dominated.any()


def test_infeasible_constraint_gets_clear_message(tmp_path: Path) -> None:
    config = _config(trials=60, constraints={"min_accuracy": 0.999})
    with pytest.raises(InfeasibleError) as info:
        run_codesign(config, _inputs(ToyEvaluator(), config), tmp_path)
    message = str(info.value)
    assert "no design meets accuracy >= 99.9%" in message
    assert "relax search.constraints.min_accuracy" in message
    best = float(message.split("constraints: ")[1].split("%")[0])
    assert 50.0 < best < 99.9


def test_jointly_infeasible_constraints_named(tmp_path: Path) -> None:
    config = _config(trials=60, constraints={"min_early_exit_share": 0.5, "max_exit_overhead": 0.0001})
    with pytest.raises(InfeasibleError, match="max_exit_overhead"):
        run_codesign(config, _inputs(ToyEvaluator(), config), tmp_path)


def test_same_seed_same_front(tmp_path: Path) -> None:
    config = _config()
    first = run_codesign(config, _inputs(ToyEvaluator(), config), tmp_path / "a")
    second = run_codesign(config, _inputs(ToyEvaluator(), config), tmp_path / "b")
    assert [e.name for e in first.pareto] == [e.name for e in second.pareto]
    assert [e.objective_values for e in first.pareto] == [e.objective_values for e in second.pareto]
    other = run_codesign(_config(seed=7), _inputs(ToyEvaluator(), config), tmp_path / "c")
    assert [t[:3] for t in other.trials] != [t[:3] for t in first.trials]


class _Interrupting(ToyEvaluator):
    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after

    def evaluate(self, design: Design):  # type: ignore[no-untyped-def]
        if self.calls >= self.after:
            raise KeyboardInterrupt
        return super().evaluate(design)


def _problem(evaluator: ToyEvaluator) -> SearchProblem:
    config = _config()
    space = DesignSpace.build(config.search.space, evaluator.available())
    return SearchProblem(space, evaluator, ["accuracy", "elp"], "paper", build_constraints(config.search.constraints, space, {}))


def test_resume_after_interrupt_keeps_trials(tmp_path: Path) -> None:
    url = trial_log_url(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_search(_problem(_Interrupting(after=50)), trials=100, population=10, seed=0, storage=url, study_name="s")
    stored = TrialLog(tmp_path / "study.sqlite3").load("s")
    assert 40 <= len(stored) < 100  # every finished trial is kept, in order
    resumed = run_search(_problem(ToyEvaluator()), trials=100, population=10, seed=0, storage=url, study_name="s")
    assert len(resumed.trials) == 100
    assert resumed.new_trials == 100 - len(stored)
    assert [t.number for t in resumed.trials] == list(range(100))
    again = TrialLog(tmp_path / "study.sqlite3").load("s")
    assert len(again) == 100
    assert [t["params"] for t in again[: len(stored)]] == [t["params"] for t in stored]
    assert pareto_front(resumed.trials, ["accuracy", "elp"])


def test_direct_mode_on_rdb_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'rdb.db'}"
    outcome = run_search(_problem(ToyEvaluator()), trials=5, population=4, seed=0, storage=url, study_name="d")
    assert len(outcome.trials) == 5
    again = run_search(_problem(ToyEvaluator()), trials=5, population=4, seed=0, storage=url, study_name="d")
    assert again.new_trials == 0 and len(again.trials) == 5


def test_bad_storage_url_is_one_line() -> None:
    with pytest.raises(ConfigError, match="search.storage: cannot open"):
        open_storage("nosuchdb://x")


def test_hypervolume_known_values() -> None:
    ref = np.array([1.0, 1.0])
    assert hypervolume(np.array([[0.5, 0.5]]), ref) == pytest.approx(0.25)
    assert hypervolume(np.array([[0.5, 0.5], [0.25, 0.75]]), ref) == pytest.approx(0.25 + 0.25 * 0.25)
    assert hypervolume(np.array([[1.5, 0.1]]), ref) == 0.0
    cube = np.array([[0.5, 0.5, 0.5], [0.25, 0.75, 0.5]])  # 3 objectives: the union of two boxes
    assert hypervolume(cube, np.ones(3)) == pytest.approx(0.125 + 0.75 * 0.25 * 0.5 - 0.5 * 0.25 * 0.5)


def test_hypervolume_curve_never_decreases(tmp_path: Path) -> None:
    config = _config()
    curve = run_codesign(config, _inputs(ToyEvaluator(), config), tmp_path).hypervolume.curve
    values = [c.hypervolume for c in curve]
    assert len(values) == 6 and values[-1] > 0
    assert all(b >= a - 1e-12 for a, b in zip(values, values[1:]))


def test_fast_nsga2_bookkeeping_matches_optuna() -> None:
    """The O(1) generation/parent bookkeeping makes the same choices as Optuna's own scans."""
    from exitspace.search.engine import GENERATION_ATTR, _objective, _sampler

    runs = []
    for single in (True, False):
        problem = _problem(ToyEvaluator())
        sampler = _sampler(problem, 10, 0, single_worker=single)
        study = (in_memory_study(["maximize", "minimize"], sampler) if single
                 else optuna.create_study(directions=["maximize", "minimize"], sampler=sampler))
        objective = _objective(problem)
        for _ in range(60):
            trial = study.ask()
            study.tell(trial, objective(trial))
        runs.append([(t.params, t.system_attrs.get(GENERATION_ATTR)) for t in study.get_trials()])
    assert runs[0] == runs[1]
    assert runs[0][-1][1] == 5


def test_paper_designs_scored_when_backbone_is_the_papers(tmp_path: Path) -> None:
    from exitspace.search.codesign import PAPER_DESIGNS

    evaluator = ToyEvaluator(pairs=((8, 8),), labels=tuple("ABCDEFGHIJK"))
    config = parse_config({"name": "p", "search": {"trials": 40, "population": 10, "baselines": {"mac_proxy": False}}})
    inputs = CodesignInputs(DesignSpace.build(config.search.space, evaluator.available()), evaluator, "mobilenetv2_cifar")
    results = run_codesign(config, inputs, tmp_path)
    paper = results.paper_designs
    assert [tuple(e.design.exits) for e in paper] == [exits for exits, _ in PAPER_DESIGNS]
    assert [e.design.thresholds[0] for e in paper] == [t for _, t in PAPER_DESIGNS]
    assert all(e.design.final == "K" and e.design.policy == "wait" for e in paper)
    toy = run_codesign(config.model_copy(update={"name": "q"}),
                       CodesignInputs(inputs.space, evaluator, "resnet20"), tmp_path)
    assert toy.paper_designs == []
