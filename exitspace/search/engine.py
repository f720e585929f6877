"""The search engine: an Optuna study with the NSGA-II sampler and constraints.

Storage. With the default (a trial log in one SQLite file in the run directory, see
:mod:`exitspace.search.storage`) the sampler runs on an in-memory study whose finished trials are written
to the file after every generation and on interruption (Ctrl-C), so that storage stays off the per-trial
path. A killed process loses at most the generation in flight and resumes from the stored trials.
With an explicit storage URL (e.g. PostgreSQL, for workers on several machines) every worker samples
directly on the shared storage so that each sees the others' trials; the trial budget is global.
"""

from __future__ import annotations

import json
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np

from exitspace.errors import ConfigError
from exitspace.search.scored import Evaluator, ScoredDesign
from exitspace.search.objectives import Constraint, directions, objective_values, violations
from exitspace.search.space import Design, DesignSpace
from exitspace.search.optuna_adapter import (
    GENERATION_ATTR, BaseDistribution, CodesignNSGAII, FixedTrial, FrozenTrial, Study, Trial,
    TrialState, in_memory_study, load_study, open_shared_study, open_storage, suggested_distributions,
)
from exitspace.search.storage import TrialLog, is_trial_log, open_trial_log, to_frozen, trial_log_url

# ``constraints_func`` is deprecated in Optuna 5 in favour of per-key ``Trial.set_constraint``, which writes
# one storage row per constraint and trial; the function form (one row) is kept while it exists.


CACHE_SIZE = 4096
"""Designs whose evaluations a problem keeps in memory (the most recently used): NSGA-II revisits designs of
the last few generations, so a bounded cache hits as often as an unbounded one without growing with trials."""

SCORED_ATTR = "exitspace:scored"
"""Trial user attribute with the design and its per-split metrics (compact JSON): finished trials are not
evaluated again when a study is resumed or re-run."""


class _Recent(OrderedDict[Any, Any]):
    """A mapping that keeps its ``size`` most recently used entries."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        super().__init__()
        self.size = size

    def lookup(self, key: Any) -> Any:
        """The value of ``key`` (now the most recent), or None."""
        value = self.get(key)
        if value is not None:
            self.move_to_end(key)
        return value

    def keep(self, key: Any, value: Any) -> Any:
        """Store ``value``, dropping the least recently used entry when full; returns ``value``."""
        self[key] = value
        if len(self) > self.size:
            self.popitem(last=False)
        return value


@dataclass
class SearchProblem:
    """A design space, a scorer, objectives and constraints."""

    space: DesignSpace
    evaluator: Evaluator
    objectives: list[str]
    elp_definition: str
    constraints: list[Constraint]
    objective_override: Callable[[ScoredDesign], list[float]] | None = None
    _cache: _Recent = field(default_factory=_Recent, repr=False)
    _designs: _Recent = field(default_factory=_Recent, repr=False)
    _distributions: dict[tuple[str, ...], dict[str, Any]] = field(default_factory=dict, repr=False)
    eval_seconds: float = 0.0
    evaluations: int = 0

    def evaluate(self, design: Design) -> ScoredDesign:
        """Evaluate with memoisation of the recent designs (NSGA-II revisits designs)."""
        cached = self._cache.lookup(design)
        if cached is None:
            start = time.perf_counter()
            cached = self.evaluator.evaluate(design)
            self.eval_seconds += time.perf_counter() - start
            self.evaluations += 1
            self._cache.keep(design, cached)
        return cached

    def design_of(self, params: dict[str, Any]) -> Design:
        """The design a trial's parameters stand for (memoised on the parameter values)."""
        key = tuple(sorted(params.items()))
        design = self._designs.lookup(key)
        if design is None:
            design = self._designs.keep(key, self.space.suggest(FixedTrial(params)))
        return design

    def distributions(self, params: dict[str, Any]) -> dict[str, BaseDistribution]:
        """The parameter distributions of the space (to replay stored trials); a parameter's distribution
        depends only on which parameters the trial has, so they are derived once per set of names."""
        names = tuple(sorted(params))
        known = self._distributions.get(names)
        if known is None:
            known = self._distributions[names] = suggested_distributions(self.space.suggest, params)
        return known

    def violations(self, design: Design) -> list[float]:
        """Constraint values (<= 0: met)."""
        return violations(self.evaluate(design), self.constraints)

    def values(self, evaluation: ScoredDesign) -> list[float]:
        """Objective values (val split)."""
        if self.objective_override is not None:
            return self.objective_override(evaluation)
        return objective_values(evaluation, self.objectives, self.elp_definition)


@dataclass
class TrialResult:
    """One completed trial."""

    number: int
    generation: int
    evaluation: ScoredDesign
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
    """The run directory's SQLite trial log (see :mod:`exitspace.search.storage`)."""
    return trial_log_url(run_dir)


def _sampler(
    problem: "SearchProblem", population: int, seed: int, single_worker: bool = True
) -> CodesignNSGAII:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # constraints_func: see the module-level note
        return CodesignNSGAII(
            single_worker=single_worker,
            population_size=population,
            seed=seed,
            constraints_func=lambda trial: problem.violations(problem.design_of(trial.params)),
        )


def _objective(problem: SearchProblem) -> Callable[[Trial], list[float]]:
    def objective(trial: Trial) -> list[float]:
        design = problem.space.suggest(trial)
        problem._designs.keep(tuple(sorted(trial.params.items())), design)
        scored = problem.evaluate(design)
        trial.set_user_attr(SCORED_ATTR, _record(scored))
        return problem.values(scored)

    return objective


def _record(scored: ScoredDesign) -> str:
    """The trial attribute :data:`SCORED_ATTR` of a scored design: its design and per-split metrics."""
    return json.dumps({"design": scored.design.to_dict(), "val": scored.val, "test": scored.test,
                       "memory_fit": bool(scored.memory_fit)}, separators=(",", ":"))


def _summary(scored: ScoredDesign) -> ScoredDesign:
    """What a trial result keeps of a scored design: the design, its metrics and memory fit (no stages, exit
    ratios or allocation; evaluate the design again for those)."""
    return ScoredDesign(design=scored.design, val=scored.val, test=scored.test, memory_fit=scored.memory_fit)


def _stored_summary(trial: FrozenTrial) -> ScoredDesign | None:
    """The summary a trial stored when it ran (None for trials of older runs: they are evaluated again)."""
    text = trial.user_attrs.get(SCORED_ATTR)
    if not isinstance(text, str):
        return None
    data = json.loads(text)
    return ScoredDesign(design=Design.from_dict(data["design"]), val=data["val"], test=data["test"],
                        memory_fit=bool(data["memory_fit"]))


def _results(problem: SearchProblem, trials: list[FrozenTrial], population: int) -> list[TrialResult]:
    """Completed trials with a summary of their scores: the one each trial stored when it ran, else one
    re-derived from its parameters (evaluations are deterministic)."""
    out = []
    for trial in trials:
        if trial.state != TrialState.COMPLETE:
            continue
        generation = trial.system_attrs.get(GENERATION_ATTR, trial.number // population)
        summary = _stored_summary(trial) or _summary(problem.evaluate(problem.design_of(trial.params)))
        out.append(
            TrialResult(
                number=trial.number,
                generation=int(generation),
                evaluation=summary,
                values=problem.values(summary),
                violations=violations(summary, problem.constraints),
            )
        )
    return out


@dataclass(frozen=True)
class _SearchJob:
    """What a call of :func:`run_search` asks for: the problem, the trial budget, the NSGA-II settings, where
    the study is stored and how progress is reported."""

    problem: SearchProblem
    trials: int
    population: int
    seed: int
    storage: str
    study_name: str
    directions: list[Literal["minimize", "maximize"]]
    progress: Callable[[int, int], None] | None

    def report(self, done: int) -> None:
        """Report ``done`` completed trials (capped at the budget), if progress is reported."""
        if self.progress:
            self.progress(min(done, self.trials), self.trials)

    def report_completed(self, study: Study, trial: object = None) -> None:
        """Report the completed trials of the (shared) study (an Optuna callback's signature)."""
        if self.progress:
            self.report(len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))))


@dataclass(frozen=True)
class _StudyRun:
    """A study's trials after a session, how many new trials the session was to run and the seconds it spent
    writing the trial log."""

    trials: list[FrozenTrial]
    new_trials: int
    persist_seconds: float = 0.0


class _TrialLogWriter:
    """Appends a study's newly finished trials to the trial log and times the writes."""

    def __init__(self, log: TrialLog, study: Study, study_name: str) -> None:
        self.log = log
        self.study = study
        self.study_name = study_name
        self.flushed = len(study.get_trials(deepcopy=False))
        self.seconds = 0.0

    def flush(self) -> None:
        """Store the completed trials among those finished since the last flush."""
        t0 = time.perf_counter()
        fresh = self.study.get_trials(deepcopy=False)[self.flushed:]
        self.log.append(self.study_name, [t for t in fresh if t.state == TrialState.COMPLETE])
        self.flushed += len(fresh)
        self.seconds += time.perf_counter() - t0


def run_search(
    problem: SearchProblem,
    *,
    trials: int,
    population: int,
    seed: int,
    storage: str,
    study_name: str,
    progress: Callable[[int, int], None] | None = None,
) -> SearchOutcome:
    """Run (or resume) a study until it holds ``trials`` completed trials; return all of them.

    ``storage``: the run directory's trial log (:func:`~exitspace.search.storage.trial_log_url`; sampling
    in memory, one write per generation) or any Optuna storage URL (sampling directly on it, so that
    workers on several machines share one study and one trial budget).
    """
    dirs = directions(problem.objectives)
    start = time.perf_counter()
    eval_before = problem.eval_seconds
    job = _SearchJob(problem, trials, population, seed, storage, study_name, dirs, progress)
    run = _run_on_trial_log(job) if is_trial_log(storage) else _run_on_shared_storage(job)
    results = _results(problem, run.trials, population)
    return SearchOutcome(
        study_name=study_name,
        storage=storage,
        trials=results,
        population=population,
        seconds=time.perf_counter() - start,
        eval_seconds=problem.eval_seconds - eval_before,
        new_trials=run.new_trials,
        persist_seconds=run.persist_seconds,
    )


def _run_on_trial_log(job: _SearchJob) -> _StudyRun:
    """Sample in memory, starting from the trials stored in the trial log; store finished trials after every
    generation and when the session ends (also by an exception)."""
    problem = job.problem
    log = open_trial_log(job.storage)
    try:
        log.open_study(job.study_name, job.directions)
        stored = [p for p in log.load(job.study_name) if p["state"] == "COMPLETE"]
        done = len(stored)
        remaining = max(0, job.trials - done)
        job.report(done)
        if not remaining:  # a finished study: its stored trials are the outcome, no sampler needed
            return _StudyRun([_stored_trial(p, problem.distributions(p["params"])) for p in stored], 0)
        sampler = _sampler(problem, job.population, job.seed)
        study = in_memory_study(job.directions, sampler)
        study.add_trials([to_frozen(p, problem.distributions(p["params"])) for p in stored])
        writer = _TrialLogWriter(log, study, job.study_name)
        try:
            _ask_and_tell(job, study, remaining, writer.flush)
        finally:
            writer.flush()
        return _StudyRun(study.get_trials(deepcopy=False), remaining, writer.seconds)
    finally:
        log.close()


def _stored_trial(payload: dict[str, Any], distributions: dict[str, Any]) -> FrozenTrial:
    """A stored trial as a frozen trial, without Optuna's checks (it passed them when it ran)."""
    return FrozenTrial(
        number=payload["number"], state=TrialState[payload["state"]], value=None, values=payload["values"],
        datetime_start=None, datetime_complete=None, params=payload["params"],
        distributions={k: distributions[k] for k in payload["params"]}, user_attrs=payload.get("user_attrs", {}),
        system_attrs=payload["system_attrs"], intermediate_values={}, trial_id=payload["number"],
    )


def _run_trial(study: Study, objective: Callable[[Trial], list[float]], trial: Trial) -> None:
    """Score ``trial`` and tell ``study``; a trial whose objective raises (Ctrl-C included) is told as failed
    and the exception propagates."""
    try:
        values = objective(trial)
    except BaseException:
        study.tell(trial, state=TrialState.FAIL)
        raise
    study.tell(trial, values)


def _ask_and_tell(job: _SearchJob, study: Study, count: int, flush: Callable[[], None]) -> None:
    """Run ``count`` trials one after the other (:func:`_run_trial`), flushing after each full generation."""
    objective = _objective(job.problem)
    for _ in range(count):
        trial = study.ask()
        _run_trial(study, objective, trial)
        job.report(trial.number + 1)
        if (trial.number + 1) % job.population == 0:
            flush()


OVER_BUDGET_ATTR = "exitspace:over_budget"
"""User attribute of a trial a worker asked for when the other workers had already taken the last of the
budget (told failed, never run)."""
WAIT_FOR_WORKERS_S = 600.0


def _run_on_shared_storage(job: _SearchJob) -> _StudyRun:
    """Sample directly on an Optuna storage, so that every worker sees the others' trials. The trial budget
    counts the completed and running trials of all workers: a worker runs a trial only while fewer than the
    budget are ahead of it, so the study ends with exactly that many completed trials; then it waits for the
    other workers' running trials, so that every worker reports the same finished study."""
    store = open_storage(job.storage)
    study = open_shared_study(store, job.study_name, job.directions)
    if [d.name.lower() for d in study.directions] != job.directions:
        raise ConfigError(f"search.study_name: study {job.study_name!r} exists with other objectives; choose a new name")
    done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    job.report(done)
    ran = 0
    if done < job.trials:
        # every trial draws from (seed, trial number): workers never share a number, so they never draw alike
        sampler = _sampler(job.problem, job.population, job.seed, single_worker=False)
        study = load_study(store, job.study_name, sampler)
        ran = _ask_and_tell_shared(job, study)
    _wait_for_workers(job, study)
    return _StudyRun(study.get_trials(deepcopy=False), ran)


def _taken(study: Study, before: int | None = None) -> int:
    """Trials completed or running (with a number below ``before``)."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
    return sum(1 for t in trials if before is None or t.number < before)


def _ask_and_tell_shared(job: _SearchJob, study: Study) -> int:
    """Run trials while the budget is not taken; returns how many this worker ran."""
    objective = _objective(job.problem)
    ran = 0
    while _taken(study) < job.trials:
        trial = study.ask()
        if _taken(study, before=trial.number) >= job.trials:  # another worker took the last one meanwhile
            trial.set_user_attr(OVER_BUDGET_ATTR, True)
            study.tell(trial, state=TrialState.FAIL)
            break
        _run_trial(study, objective, trial)
        ran += 1
        job.report_completed(study, trial)
    return ran


def _wait_for_workers(job: _SearchJob, study: Study) -> None:
    """Wait (at most :data:`WAIT_FOR_WORKERS_S`) while other workers still run trials of the budget."""
    deadline = time.monotonic() + WAIT_FOR_WORKERS_S
    while time.monotonic() < deadline:
        running = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if t.number < job.trials]
        if not running:
            return
        job.report_completed(study, running[0])
        time.sleep(0.25)


def pareto_front(results: list[TrialResult], objectives: list[str]) -> list[TrialResult]:
    """Non-dominated feasible trials (objective values as the study sees them), one per distinct design."""
    feasible = [r for r in results if r.feasible]
    if not feasible:
        return []
    sign = np.array([-1.0 if name == "accuracy" else 1.0 for name in objectives])
    points = np.array([r.values for r in feasible], dtype=float) * sign
    keep = _non_dominated(points)
    front: dict[Design, TrialResult] = {}
    for index in np.flatnonzero(keep):
        result = feasible[int(index)]
        front.setdefault(result.evaluation.design, result)
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
