"""The one module that talks to Optuna: the NSGA-II sampler of the search, studies, storages and trials.

The rest of exitspace imports these names from here, never from ``optuna``. What exitspace relies on in
Optuna's behaviour is pinned by tests/test_optuna_adapter.py: the generation of a trial is stored in its
system attributes under :data:`GENERATION_ATTR` (Optuna's rule, ``<sampler class>:generation``); a
finished trial replays through ``create_trial`` / ``Study.add_trials``; ``FixedTrial`` records the
distributions of the parameters a design space suggests.

Still private (so ``optuna<6`` stays pinned): :meth:`CodesignNSGAII.before_trial` reseeds the sampler's own
random states (``_rng``, ``_random_sampler``) per trial, which Optuna offers no public way to do.
"""

from __future__ import annotations

import time
from typing import Any, Literal, Sequence, cast

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import NSGAIISampler, RandomSampler
from optuna.storages import BaseStorage, InMemoryStorage
from optuna.study import MaxTrialsCallback, Study
from optuna.trial import FixedTrial, FrozenTrial, Trial, TrialState, create_trial

from exitspace.errors import ConfigError
from exitspace.pathnames import masked_url

__all__ = [
    "BaseDistribution", "BaseStorage", "CodesignNSGAII", "FixedTrial", "FrozenTrial", "GENERATION_ATTR",
    "MaxTrialsCallback", "Study", "Trial", "TrialState", "create_trial", "in_memory_study", "load_study",
    "open_shared_study", "open_storage", "suggested_distributions", "trial_seed",
]

Direction = Literal["minimize", "maximize"]

optuna.logging.set_verbosity(optuna.logging.WARNING)

GENERATION_ATTR = "CodesignNSGAII:generation"
"""The system attribute holding a trial's NSGA-II generation (Optuna names it after the sampler class)."""


class CodesignNSGAII(NSGAIISampler):
    """NSGA-II with bookkeeping that stays O(1) per trial (Optuna's scans every past trial per new trial,
    which dominates a 10,000-trial search). Same decisions as Optuna's:

    - the relative search space is computed once: every trial samples every parameter of the design space;
    - a new trial's generation follows Optuna's rule (the highest generation among completed trials, or the
      next one once it holds ``population_size`` trials), from counters kept as trials complete;
    - each generation's parent population is selected once and kept in memory, and every trial sees it in
      trial order;
    - each trial samples from random states seeded by (seed, trial number) (:func:`trial_seed`), so that a
      trial's parameters do not depend on how the study got to it: uninterrupted, resumed after a kill or
      Ctrl-C (the trials since the last stored generation are sampled again, identically), or on another worker.

    The last two assume this process runs every trial (the trial log); with a shared storage
    (``single_worker=False``) Optuna's own bookkeeping is used, as other workers add trials.
    """

    def __init__(self, single_worker: bool = True, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(seed=seed, **kwargs)
        self.single_worker = single_worker
        self.storage: BaseStorage | None = None  # the in-memory study's storage (see in_memory_study)
        self.seed = seed
        self._cached_space: dict[str, BaseDistribution] | None = None
        self._generation_counts: tuple[int, int] | None = None
        self._pending: dict[int, int] = {}
        self._parents: dict[int, list[FrozenTrial]] = {}

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, Any]:
        if self._cached_space is None:
            space = super().infer_relative_search_space(study, trial)
            if not space:
                return space
            self._cached_space = space
        return dict(self._cached_space)

    def get_trial_generation(self, study: Study, trial: FrozenTrial) -> int:
        if not self.single_worker:
            return int(super().get_trial_generation(study, trial))
        key = GENERATION_ATTR
        known = trial.system_attrs.get(key)
        if known is not None:
            return int(known)
        if self._generation_counts is None:
            generation = int(super().get_trial_generation(study, trial))
            counts: dict[int, int] = {}
            for done in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
                g = done.system_attrs.get(key, -1)
                counts[g] = counts.get(g, 0) + 1
            top = max(counts, default=0)
            self._generation_counts = (max(top, 0), counts.get(top, 0) if top >= 0 else 0)
        else:
            top, count = self._generation_counts
            generation = top if count < cast(int, self.population_size) else top + 1  # cast: NSGA-II always sets it
            self._record_generation(study, trial, generation)
        self._pending[trial.number] = generation
        return generation

    def _record_generation(self, study: Study, trial: FrozenTrial, generation: int) -> None:
        """Store the generation on the trial, where Optuna's own rule stores it (through the public storage API)."""
        if self.storage is None:
            raise RuntimeError("CodesignNSGAII(single_worker=True) samples on a study made by in_memory_study()")
        study_id = self.storage.get_study_id_from_name(study.study_name)
        trial_id = self.storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        self.storage.set_trial_system_attr(trial_id, GENERATION_ATTR, generation)

    def get_parent_population(self, study: Study, generation: int) -> list[FrozenTrial]:
        if not self.single_worker:  # in trial order too: Optuna's first call returns the selection order
            return sorted(super().get_parent_population(study, generation), key=lambda t: t.number)
        cached = self._parents.get(generation)
        if cached is not None:
            return cached
        # in trial order, as Optuna's own cache returns them (its first call returns the selection order)
        parents = self._parents[generation] = sorted(super().get_parent_population(study, generation),
                                                     key=lambda t: t.number)
        return parents

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        seed = trial_seed(self.seed, trial.number)
        self._rng.rng.seed(seed)  # the state crossover and mutation draw from (shared with the child strategy)
        self._random_sampler = RandomSampler(seed=seed)  # first generation, mutated parameters
        super().before_trial(study, trial)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Any) -> None:
        super().after_trial(study, trial, state, values)
        generation = self._pending.pop(trial.number, None)
        if state == TrialState.COMPLETE and generation is not None and self._generation_counts is not None:
            top, count = self._generation_counts
            if generation > top:
                self._generation_counts = (generation, 1)
            elif generation == top:
                self._generation_counts = (top, count + 1)


def trial_seed(seed: int | None, number: int) -> int | None:
    """The seed of trial ``number``'s sampling in a study seeded with ``seed`` (None: unseeded)."""
    if seed is None:
        return None
    return int(np.random.SeedSequence([seed & 0xFFFF_FFFF_FFFF_FFFF, number]).generate_state(1)[0])


def in_memory_study(directions: Sequence[Direction], sampler: CodesignNSGAII) -> Study:
    """A study in memory whose storage ``sampler`` may write its generation bookkeeping to."""
    storage = InMemoryStorage()
    sampler.storage = storage
    return optuna.create_study(storage=storage, directions=list(directions), sampler=sampler)


def _with_driver(url: str) -> str:
    """A bare ``postgresql://`` URL with the driver that is installed: SQLAlchemy 2.1 defaults to psycopg 3,
    the dev extra installs psycopg2."""
    if not url.startswith("postgresql://"):
        return url
    import importlib.util

    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
        return "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def open_storage(url: str) -> BaseStorage:
    """An Optuna storage from its URL; one-line error if unusable. Workers that start together on a new
    database race to create its tables: the loser's integrity error is retried."""
    for attempt in range(3):
        try:
            return optuna.storages.get_storage(_with_driver(url))
        except Exception as exc:  # noqa: BLE001 - Optuna/SQLAlchemy raise many types for a bad URL
            if "IntegrityError" in type(exc).__name__ and attempt < 2:
                time.sleep(0.5 + attempt)
                continue
            first = str(exc).splitlines()[0][:120] if str(exc) else ""
            raise ConfigError(
                f"search.storage: cannot open {masked_url(url)!r} ({type(exc).__name__}: {masked_url(first)}); give "
                "an Optuna storage URL such as sqlite:///study.db or postgresql://user:password@host/db"
            ) from None
    raise AssertionError("unreachable")


def open_shared_study(storage: BaseStorage, name: str, directions: Sequence[Direction]) -> Study:
    """The study ``name`` on a shared storage, created with ``directions`` if it does not exist yet."""
    return optuna.create_study(storage=storage, study_name=name, directions=list(directions), load_if_exists=True)


def load_study(storage: BaseStorage, name: str, sampler: NSGAIISampler) -> Study:
    """The existing study ``name`` on ``storage``, sampled by ``sampler``."""
    return optuna.load_study(study_name=name, storage=storage, sampler=sampler)


def suggested_distributions(suggest: Any, params: dict[str, Any]) -> dict[str, BaseDistribution]:
    """The distributions of the parameters ``suggest(trial)`` draws, replayed on fixed ``params``."""
    trial = FixedTrial(params)
    suggest(trial)
    return cast(dict[str, BaseDistribution], trial.distributions)
