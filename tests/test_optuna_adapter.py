"""What exitspace relies on in Optuna's behaviour, pinned (exitspace/search/optuna_adapter.py is the one
module that uses Optuna): where a trial's NSGA-II generation is kept, that the fast single-worker
bookkeeping writes it there through the public storage API, that stored trials replay, and that a fixed
trial records the distributions a design space suggests."""

from __future__ import annotations

from typing import Any

import optuna
import pytest

from exitspace.search.optuna_adapter import (
    GENERATION_ATTR, CodesignNSGAII, FixedTrial, Study, Trial, TrialState, create_trial, in_memory_study,
    suggested_distributions,
)

DIRECTIONS: list[Any] = ["minimize", "minimize"]


def _suggest(trial: Any) -> tuple[float, str]:
    return trial.suggest_float("x", 0.0, 1.0, step=0.05), trial.suggest_categorical("side", ["left", "right"])


def _objective(trial: Trial) -> list[float]:
    x, side = _suggest(trial)
    return [x, (1.0 - x) if side == "left" else (1.2 - x)]


def _run(study: Study, count: int) -> list[tuple[dict[str, Any], Any]]:
    for _ in range(count):
        trial = study.ask()
        study.tell(trial, _objective(trial))
    return [(t.params, t.system_attrs.get(GENERATION_ATTR)) for t in study.get_trials()]


def test_optuna_keeps_the_generation_under_the_sampler_class_name() -> None:
    study = optuna.create_study(directions=DIRECTIONS, sampler=CodesignNSGAII(single_worker=False, population_size=4, seed=0))
    generations = [g for _, g in _run(study, 10)]
    assert generations == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]


def test_single_worker_bookkeeping_matches_optuna_through_the_public_storage_api() -> None:
    own = optuna.create_study(directions=DIRECTIONS, sampler=CodesignNSGAII(single_worker=False, population_size=4, seed=0))
    fast = in_memory_study(DIRECTIONS, CodesignNSGAII(single_worker=True, population_size=4, seed=0))
    assert _run(fast, 14) == _run(own, 14)


def test_single_worker_sampler_needs_its_study_from_the_adapter() -> None:
    study = optuna.create_study(directions=DIRECTIONS, sampler=CodesignNSGAII(single_worker=True, population_size=2, seed=0))
    with pytest.raises(RuntimeError, match="in_memory_study"):
        _run(study, 4)


def test_stored_trials_replay_with_their_generation() -> None:
    study = in_memory_study(DIRECTIONS, CodesignNSGAII(population_size=4, seed=0))
    _run(study, 6)
    replayed = in_memory_study(DIRECTIONS, CodesignNSGAII(population_size=4, seed=0))
    replayed.add_trials([
        create_trial(state=TrialState.COMPLETE, params=t.params, distributions=t.distributions, values=t.values,
                     system_attrs=t.system_attrs)
        for t in study.get_trials()
    ])
    assert ([(t.params, t.values, t.system_attrs) for t in replayed.get_trials()]
            == [(t.params, t.values, t.system_attrs) for t in study.get_trials()])
    assert _run(replayed, 2)[-1][1] == 1  # the next trials continue the stored generations


def test_fixed_trial_records_the_suggested_distributions() -> None:
    distributions = suggested_distributions(_suggest, {"x": 0.25, "side": "right"})
    assert set(distributions) == {"x", "side"}
    assert distributions["x"] == optuna.distributions.FloatDistribution(0.0, 1.0, step=0.05)
    assert _suggest(FixedTrial({"x": 0.25, "side": "right"})) == (0.25, "right")
