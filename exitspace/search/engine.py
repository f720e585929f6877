"""The search engine: an Optuna study with the NSGA-II sampler and constraints.

Storage. With the default (Optuna's journal storage in one SQLite file in the run directory, see
:mod:`exitspace.search.storage`) the sampler runs on an in-memory study that is mirrored into the file
after every generation and on interruption (Ctrl-C), so that storage stays off the per-trial path: even
the journal costs a few ms per trial, Optuna's RDB storage 10-50 ms (its ORM writes one row per
parameter), against about 1-3 ms for sampling plus evaluation. A killed process loses at most the
generation in flight and resumes from the stored trials.
With an explicit storage URL (e.g. PostgreSQL, for workers on several machines) every worker samples
directly on the shared storage so that each sees the others' trials; the trial budget is global.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from exitspace.errors import ConfigError
from exitspace.search.evaluation import Evaluation, Evaluator
from exitspace.search.objectives import Constraint, directions, objective_values, violations
from exitspace.search.space import Design, DesignSpace
from exitspace.search.storage import journal_url, open_storage

CONSTRAINT_ATTR = "constraints"  # where Optuna's samplers keep constraint values (system attrs)
GENERATION_ATTR = "NSGAIISampler:generation"

optuna.logging.set_verbosity(optuna.logging.WARNING)
# ``constraints_func`` is deprecated in Optuna 5 in favour of per-key ``Trial.set_constraint``, which writes
# one storage row per constraint and trial; the function form (one row) is kept while it exists.


@dataclass
class SearchProblem:
    """A design space, a scorer, objectives and constraints."""

    space: DesignSpace
    evaluator: Evaluator
    objectives: list[str]
    elp_definition: str
    constraints: list[Constraint]
    objective_override: Callable[[Evaluation], list[float]] | None = None
    _cache: dict[Design, Evaluation] = field(default_factory=dict, repr=False)
    eval_seconds: float = 0.0
    evaluations: int = 0

    def evaluate(self, design: Design) -> Evaluation:
        """Evaluate with memoisation (NSGA-II revisits designs)."""
        cached = self._cache.get(design)
        if cached is None:
            start = time.perf_counter()
            cached = self.evaluator.evaluate(design)
            self.eval_seconds += time.perf_counter() - start
            self.evaluations += 1
            self._cache[design] = cached
        return cached

    def design_of(self, params: dict[str, Any]) -> Design:
        """The design a trial's parameters stand for."""
        return self.space.suggest(optuna.trial.FixedTrial(params))

    def violations(self, design: Design) -> list[float]:
        """Constraint values (<= 0: met)."""
        return violations(self.evaluate(design), self.constraints)

    def values(self, evaluation: Evaluation) -> list[float]:
        """Objective values (val split)."""
        if self.objective_override is not None:
            return self.objective_override(evaluation)
        return objective_values(evaluation, self.objectives, self.elp_definition)


@dataclass
class TrialResult:
    """One completed trial."""

    number: int
    generation: int
    evaluation: Evaluation
    values: list[float]
    violations: list[float]

    @property
    def feasible(self) -> bool:
        """All constraints met."""
        return all(v <= 0 for v in self.violations)


@dataclass
class SearchOutcome:
    """All completed trials of a study plus timing."""

    study_name: str
    storage: str
    trials: list[TrialResult]
    population: int
    seconds: float = 0.0
    eval_seconds: float = 0.0
    new_trials: int = 0
    persist_seconds: float = 0.0

    @property
    def feasible(self) -> list[TrialResult]:
        """Trials that meet every constraint."""
        return [t for t in self.trials if t.feasible]


def default_storage(run_dir: Path) -> str:
    """The run directory's SQLite journal (see :mod:`exitspace.search.storage`)."""
    return journal_url(run_dir)


def _sampler(problem: "SearchProblem", population: int, seed: int) -> optuna.samplers.NSGAIISampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # constraints_func: see the module-level note
        return optuna.samplers.NSGAIISampler(
            population_size=population,
            seed=seed,
            constraints_func=lambda trial: problem.violations(problem.design_of(trial.params)),
        )


def _objective(problem: SearchProblem) -> Callable[[optuna.Trial], list[float]]:
    def objective(trial: optuna.Trial) -> list[float]:
        return problem.values(problem.evaluate(problem.space.suggest(trial)))

    return objective


def _results(problem: SearchProblem, trials: list[FrozenTrial], population: int) -> list[TrialResult]:
    """Completed trials with their evaluations (re-derived from the parameters: evaluations are
    deterministic and memoised, so only parameters and values need storing)."""
    out = []
    for trial in trials:
        if trial.state != TrialState.COMPLETE:
            continue
        generation = trial.system_attrs.get(GENERATION_ATTR, trial.number // population)
        evaluation = problem.evaluate(problem.design_of(trial.params))
        out.append(
            TrialResult(
                number=trial.number,
                generation=int(generation),
                evaluation=evaluation,
                values=problem.values(evaluation),
                violations=problem.violations(evaluation.design),
            )
        )
    return out


def run_search(
    problem: SearchProblem,
    *,
    trials: int,
    population: int,
    seed: int,
    storage: str,
    study_name: str,
    mirror: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> SearchOutcome:
    """Run (or resume) a study until it holds ``trials`` completed trials; return all of them.

    ``mirror``: sample in memory and write to ``storage`` per generation (fast, one worker); otherwise
    sample directly on ``storage`` (slower per trial, any number of workers).
    """
    dirs = directions(problem.objectives)
    store = open_storage(storage)
    persistent = optuna.create_study(
        storage=store, study_name=study_name, directions=dirs, load_if_exists=True
    )
    if list(persistent.directions) != [optuna.study.StudyDirection.MAXIMIZE if d == "maximize" else
                                       optuna.study.StudyDirection.MINIMIZE for d in dirs]:
        raise ConfigError(f"search.study_name: study {study_name!r} exists with other objectives; choose a new name")
    stored = persistent.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    start = time.perf_counter()
    eval_before = problem.eval_seconds
    done = len(stored)
    remaining = max(0, trials - done)
    persist_seconds = 0.0
    if progress:
        progress(min(done, trials), trials)

    if remaining and mirror:
        study = optuna.create_study(directions=dirs, sampler=_sampler(problem, population, seed + done))
        study.add_trials(stored)
        flushed = len(study.trials)

        def flush() -> None:
            nonlocal flushed, persist_seconds
            t0 = time.perf_counter()
            new = [t for t in study.get_trials(deepcopy=False)[flushed:] if t.state == TrialState.COMPLETE]
            persistent.add_trials(new)
            flushed = len(study.trials)
            persist_seconds += time.perf_counter() - t0

        def on_trial(_: optuna.Study, trial: FrozenTrial) -> None:
            if progress:
                progress(min(trial.number + 1, trials), trials)
            if (trial.number + 1) % population == 0:
                flush()

        try:
            study.optimize(_objective(problem), n_trials=remaining, callbacks=[on_trial], gc_after_trial=False)
        finally:
            flush()
        all_trials = study.get_trials(deepcopy=False)
    elif remaining:
        def on_trial_direct(study_: optuna.Study, trial: FrozenTrial) -> None:
            if progress:
                progress(min(len(study_.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))), trials), trials)

        study = optuna.load_study(study_name=study_name, storage=store, sampler=_sampler(problem, population, seed + done))
        study.optimize(
            _objective(problem),
            n_trials=remaining,
            callbacks=[optuna.study.MaxTrialsCallback(trials, states=(TrialState.COMPLETE,)), on_trial_direct],
            gc_after_trial=False,
        )
        all_trials = study.get_trials(deepcopy=False)
    else:
        all_trials = stored
    results = _results(problem, all_trials, population)
    return SearchOutcome(
        study_name=study_name,
        storage=storage,
        trials=results,
        population=population,
        seconds=time.perf_counter() - start,
        eval_seconds=problem.eval_seconds - eval_before,
        new_trials=remaining,
        persist_seconds=persist_seconds,
    )


def pareto_front(results: list[TrialResult], objectives: list[str]) -> list[TrialResult]:
    """Non-dominated feasible trials (objective values as the study sees them), one per distinct design."""
    feasible = [r for r in results if r.feasible]
    if not feasible:
        return []
    sign = np.array([-1.0 if name == "accuracy" else 1.0 for name in objectives])
    points = np.array([r.values for r in feasible], dtype=float) * sign
    keep = _non_dominated(points)
    front: dict[str, TrialResult] = {}
    for index in np.flatnonzero(keep):
        result = feasible[int(index)]
        front.setdefault(result.evaluation.design.name, result)
    return sorted(front.values(), key=lambda r: -r.evaluation.val["accuracy"])


def _non_dominated(points: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows no other row dominates (minimisation)."""
    n = points.shape[0]
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        if not keep[i]:
            continue
        dominated = np.all(points <= points[i], axis=1) & np.any(points < points[i], axis=1)
        if dominated.any():
            keep[i] = False
    return keep


def study_fingerprint(payload: dict[str, Any]) -> str:
    """Short hash of what defines a study (space, objectives, constraints, population, seed)."""
    import hashlib

    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:10]
