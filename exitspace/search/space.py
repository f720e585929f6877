"""The design space: exit subset, head type per exit, precision pair, thresholds, policy, allocation.

A :class:`Design` is one point; :class:`DesignSpace` turns an Optuna trial into a design. Every parameter
is sampled in every trial (a static space, what NSGA-II needs); parameters of switched-off exits are
simply unused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from exitspace.config import SpaceConfig
from exitspace.dynamic.exit_rules import MODES
from exitspace.errors import ConfigError
from exitspace.precision import PrecisionPair, pair_label, parse_pair

def short_head(head: str) -> str:
    """``pool4_fc2`` -> ``fc2``, ``gap_fc`` -> ``gap`` (for names and tables)."""
    return head.removeprefix("pool4_").removesuffix("_fc") or head


@dataclass(frozen=True)
class Design:
    """One early-exit design.

    ``exits`` are the early exits switched on (network order, final exit excluded); ``heads`` maps every
    used exit (final included) to its head type; ``thresholds`` has one value per early exit.
    """

    exits: tuple[str, ...]
    final: str
    heads: tuple[tuple[str, str], ...]
    precision: PrecisionPair
    thresholds: tuple[float, ...]
    policy: str = "wait"
    allocation: str = "greedy"
    confidence: str = "max_softmax"

    def __post_init__(self) -> None:
        if len(self.thresholds) != len(self.exits):
            raise ConfigError(f"design: {len(self.thresholds)} thresholds for {len(self.exits)} early exits")

    @property
    def labels(self) -> tuple[str, ...]:
        """All used exits, final last."""
        return (*self.exits, self.final)

    @property
    def head_keys(self) -> list[str]:
        """Exit-table head keys ``"<label>:<head type>"`` of the used exits, in order."""
        heads = dict(self.heads)
        return [f"{label}:{heads[label]}" for label in self.labels]

    @property
    def name(self) -> str:
        """Short readable name, e.g. ``A:fc1,F:fc2,K:gap@0.85 8/8 wait greedy`` (head types shortened)."""
        shared = len(set(self.thresholds)) <= 1
        thr = f"{self.thresholds[0]:.2f}" if self.thresholds and shared else "/".join(f"{t:.2f}" for t in self.thresholds)
        heads = dict(self.heads)
        label = ",".join(f"{lab}:{short_head(heads[lab])}" for lab in self.labels) + (f"@{thr}" if self.thresholds else "")
        return f"{label} {pair_label(self.precision)} {self.policy} {self.allocation}"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON."""
        data = asdict(self)
        data["heads"] = dict(self.heads)
        data["precision"] = list(self.precision)
        data["exits"] = list(self.exits)
        data["thresholds"] = [round(float(t), 6) for t in self.thresholds]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Design":
        """Inverse of :meth:`to_dict`."""
        return cls(
            exits=tuple(data["exits"]),
            final=data["final"],
            heads=tuple(dict(data["heads"]).items()),
            precision=(int(data["precision"][0]), int(data["precision"][1])),
            thresholds=tuple(float(t) for t in data["thresholds"]),
            policy=data.get("policy", "wait"),
            allocation=data.get("allocation", "greedy"),
            confidence=data.get("confidence", "max_softmax"),
        )


@dataclass(frozen=True)
class Available:
    """What the exit tables and the mapping stage offer: labels (final last), head types per label,
    precision pairs with a table, allocation strategies."""

    labels: tuple[str, ...]
    head_types: dict[str, tuple[str, ...]]
    precision_pairs: tuple[PrecisionPair, ...]
    allocations: tuple[str, ...] | None = None

    @classmethod
    def from_head_keys(
        cls, head_keys: Sequence[str], precision_pairs: Sequence[PrecisionPair], allocations: Sequence[str] | None = None
    ) -> "Available":
        """From exit-table head keys ``"<label>:<head type>"`` (network order)."""
        labels: list[str] = []
        types: dict[str, list[str]] = {}
        for key in head_keys:
            label, _, head = key.partition(":")
            if label not in types:
                labels.append(label)
                types[label] = []
            types[label].append(head)
        return cls(
            tuple(labels),
            {k: tuple(v) for k, v in types.items()},
            tuple((int(a), int(b)) for a, b in precision_pairs),
            None if allocations is None else tuple(allocations),
        )


@dataclass
class DesignSpace:
    """The searchable choices, checked against what is available."""

    candidates: tuple[str, ...]
    final: str
    head_types: dict[str, tuple[str, ...]]
    precision_pairs: tuple[PrecisionPair, ...]
    threshold_mode: str
    threshold_low: float
    threshold_high: float
    threshold_step: float | None
    policies: tuple[str, ...]
    allocations: tuple[str, ...]
    confidence: str = "max_softmax"
    min_exits: int = 0
    max_exits: int | None = None
    fixed: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, config: SpaceConfig, available: Available) -> "DesignSpace":
        """Intersect the config's choices with what the tables offer; one-line errors on mismatch."""
        final = available.labels[-1]
        candidates = _candidate_exits(config, available)
        head_types = {label: _head_types(config, available, label) for label in (*candidates, final)}
        pairs = _precision_pairs(config, available)
        if available.allocations is not None:
            bad = [a for a in config.allocations if a not in available.allocations]
            if bad:
                raise ConfigError(
                    f"search.space.allocations: unknown strategy {bad}; use any of {list(available.allocations)}"
                )
        if config.max_exits is not None and config.min_exits > len(candidates):
            raise ConfigError(
                f"search.space.min_exits: {config.min_exits} exceeds the {len(candidates)} candidate exits; lower it"
            )
        t = config.thresholds
        return cls(
            candidates=tuple(candidates),
            final=final,
            head_types=head_types,
            precision_pairs=pairs,
            threshold_mode=t.mode,
            threshold_low=t.low,
            threshold_high=t.high,
            threshold_step=t.step,
            policies=tuple(config.policies),
            allocations=tuple(config.allocations),
            confidence=config.confidence,
            min_exits=config.min_exits,
            max_exits=config.max_exits,
        )

    def restricted(self, **fixed: Any) -> "DesignSpace":
        """A copy with some choices pinned (e.g. ``precision_pairs=((8, 8),)``)."""
        data = {**self.__dict__, **fixed}
        return DesignSpace(**data)

    def fingerprint(self) -> str:
        """Short hash of the space (enters the study name so a changed space starts a fresh study)."""
        payload = {k: v for k, v in self.__dict__.items() if k != "fixed"}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:10]

    def _threshold(self, trial: Any, name: str) -> float:
        return round(float(trial.suggest_float(name, self.threshold_low, self.threshold_high, step=self.threshold_step)), 6)

    def suggest(self, trial: Any) -> Design:
        """Sample one design from an Optuna trial (every parameter, every trial)."""
        on = [label for label in self.candidates if trial.suggest_categorical(f"exit_{label}", [False, True])]
        heads = {
            label: (trial.suggest_categorical(f"head_{label}", list(types)) if len(types) > 1 else types[0])
            for label, types in self.head_types.items()
        }
        pairs = [pair_label(p) for p in self.precision_pairs]
        precision = parse_pair(trial.suggest_categorical("precision", pairs)) if len(pairs) > 1 else self.precision_pairs[0]
        thresholds = MODES[self.threshold_mode](lambda name: self._threshold(trial, name), self.candidates, on)
        policy = trial.suggest_categorical("policy", list(self.policies)) if len(self.policies) > 1 else self.policies[0]
        allocation = (
            trial.suggest_categorical("allocation", list(self.allocations))
            if len(self.allocations) > 1
            else self.allocations[0]
        )
        used = (*on, self.final)
        return Design(
            exits=tuple(on),
            final=self.final,
            heads=tuple((label, heads[label]) for label in used),
            precision=precision,
            thresholds=thresholds,
            policy=policy,
            allocation=allocation,
            confidence=self.confidence,
        )

    def exit_count_violation(self, design: Design) -> float:
        """How far the number of early exits lies outside [min_exits, max_exits] (0 inside)."""
        n = len(design.exits)
        low = max(0, self.min_exits - n)
        high = 0 if self.max_exits is None else max(0, n - self.max_exits)
        return float(low + high)

    def static_design(self, precision: PrecisionPair, final_head: str | None = None) -> Design:
        """The static network at ``precision``: final exit only."""
        head = final_head or self.head_types[self.final][0]
        return Design(
            exits=(),
            final=self.final,
            heads=((self.final, head),),
            precision=precision,
            thresholds=(),
            policy=self.policies[0],
            allocation=self.allocations[0],
            confidence=self.confidence,
        )


def _candidate_exits(config: SpaceConfig, available: Available) -> tuple[str, ...]:
    """The early exits to search: the config's (checked against the tables) or every one offered."""
    offered = tuple(available.labels[:-1])
    if config.exits is None:
        return offered
    unknown = [e for e in config.exits if e not in offered]
    if unknown:
        raise ConfigError(
            f"search.space.exits: {unknown} not candidate early exits of this network; use any of "
            f"{list(offered)} (the final exit {available.labels[-1]} is always on)"
        )
    return tuple(e for e in offered if e in config.exits)


def _head_types(config: SpaceConfig, available: Available, label: str) -> tuple[str, ...]:
    """The head types of exit ``label`` the tables have, narrowed to the config's."""
    types = tuple(available.head_types[label])
    if config.head_types is None:
        return types
    kept = tuple(t for t in types if t in config.head_types)
    if not kept:
        raise ConfigError(
            f"search.space.head_types: none of {config.head_types} exists for exit {label}; the exit "
            f"tables have {list(types)}"
        )
    return kept


def _precision_pairs(config: SpaceConfig, available: Available) -> tuple[tuple[int, int], ...]:
    """The config's pairs (each needs a table), or every quantized pair with a table (float if none)."""
    if config.precision_pairs is None:
        return tuple(p for p in available.precision_pairs if p != (32, 32)) or tuple(available.precision_pairs)
    pairs = tuple((int(a), int(b)) for a, b in config.precision_pairs)
    missing = [p for p in pairs if p not in available.precision_pairs]
    if missing:
        raise ConfigError(
            f"search.space.precision_pairs: no exit table for {[list(p) for p in missing]}; available "
            f"{[list(p) for p in available.precision_pairs]} (train them or drop them from the list)"
        )
    return pairs
