"""The real design evaluator: exit tables + mapping + dynamic metrics, one deployable mapping per design.

Per design: exit ratios and accuracies on val and test from the exit table of its precision pair
(:class:`~exitspace.dynamic.ExitScorer` on pre-computed confidences), an allocation found by the design's
strategy for its validation exit ratios (:class:`~exitspace.mapping.Mapper`), the schedule under its
head policy, and :func:`~exitspace.dynamic.dynamic_metrics` for both splits on that one schedule.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Mapping

import numpy as np

from exitspace.cost.base import CostBackend
from exitspace.dynamic import ExitScorer, confidence, deploy, dynamic_metrics
from exitspace.errors import CheckpointError, ConfigError
from exitspace.hardware.model import System
from exitspace.mapping import LayerCostCache, Mapper
from exitspace.mapping.allocation import to_array
from exitspace.mapping.costs import activation_fit_matrix
from exitspace.mapping.schedule import StageCost
from exitspace.precision import PrecisionPair
from exitspace.search.scored import ScoredDesign
from exitspace.search.space import Available, Design
from exitspace.train.exit_table import ExitTable
from exitspace.workload.layer import Precision, Workload

ALLOCATION_OBJECTIVE = {"paper": "avg_product", "product": "product_of_averages"}
STAGE_FIELDS = tuple(f.name for f in fields(StageCost))


class CodesignEvaluator:
    """Scores designs on exit tables (one per precision pair) and one hardware system."""

    def __init__(
        self,
        tables: Mapping[PrecisionPair, ExitTable],
        workload: Workload,
        system: System,
        backend: CostBackend,
        *,
        confidence_kind: str = "max_softmax",
        elp_definition: str = "paper",
        seed: int = 0,
        cache: LayerCostCache | None = None,
    ) -> None:
        if not tables:
            raise CheckpointError("no exit tables; run `exitspace train` or point exit_tables.dir at them")
        self.tables = dict(tables)
        self.workload = workload
        self.system = system
        self.backend = backend
        self.seed = seed
        self.objective = ALLOCATION_OBJECTIVE[elp_definition]
        keys = next(iter(self.tables.values())).head_keys
        for pair, table in self.tables.items():
            if table.head_keys != keys:
                raise CheckpointError(f"exit table {pair}: heads {table.head_keys} differ from {keys}; retrain")
        missing = [k for k in keys if k not in workload.exits]
        if missing:
            raise ConfigError(f"workload {workload.name!r} lacks heads {missing} of the exit tables; rebuild it from the same model spec")
        self.head_keys = list(keys)
        self._cache = cache if cache is not None else LayerCostCache()
        self._mappers: dict[PrecisionPair, Mapper] = {}
        self._fit_matrix: dict[PrecisionPair, np.ndarray] = {}
        self._conf: dict[tuple[PrecisionPair, str], np.ndarray] = {}
        self._correct: dict[tuple[PrecisionPair, str], np.ndarray] = {}
        for pair, table in self.tables.items():
            for split in ("val", "test"):
                logits = table.logits[split]
                # stored head-major [H, N] so that a subset's rows are contiguous (ExitScorer keeps [E, N])
                self._conf[(pair, split)] = np.ascontiguousarray(confidence(logits, confidence_kind).T, dtype=np.float32)
                self._correct[(pair, split)] = np.ascontiguousarray((logits.argmax(axis=-1) == table.labels[split][:, None]).T)
        self._layer_macs = np.array([layer.macs if layer.op.is_mac else 0 for layer in workload.layers], dtype=float)

    def available(self, allocations: tuple[str, ...]) -> Available:
        """What the tables offer, for :meth:`DesignSpace.build`."""
        return Available.from_head_keys(self.head_keys, list(self.tables), allocations)

    def mapper(self, pair: PrecisionPair) -> Mapper:
        """The mapper of one precision pair (cost matrices built on first use)."""
        if pair not in self._mappers:
            workload = self.workload.with_precision(Precision.uniform(pair[0]), Precision.uniform(pair[1]))
            self._mappers[pair] = Mapper(workload, self.system, backend=self.backend, cache=self._cache)
        return self._mappers[pair]

    def warm(self, pairs: list[PrecisionPair] | None = None) -> None:
        """Build the cost matrices of every pair now (the slow part, done once)."""
        for pair in pairs or list(self.tables):
            self.mapper(pair)

    def _scorer(self, pair: PrecisionPair, split: str, keys: list[str], cols: list[int]) -> ExitScorer:
        return ExitScorer(self._conf[(pair, split)][cols].T, self._correct[(pair, split)][cols].T, keys, split)

    def evaluate(self, design: Design) -> ScoredDesign:
        """All metrics of one design (see module docstring)."""
        if design.precision not in self.tables:
            raise ConfigError(f"design {design.name}: no exit table for precision {design.precision}")
        keys = design.head_keys
        cols = [self.head_keys.index(k) for k in keys]
        outcomes = {s: self._scorer(design.precision, s, keys, cols).outcome(list(design.thresholds))
                    for s in ("val", "test")}
        mapper = self.mapper(design.precision)
        net = mapper.network(keys)
        allocation, schedule = deploy(mapper, net, design.allocation, outcomes["val"].ratios, self.objective,
                                      design.policy, self.seed)
        stage_macs = np.bincount(net.stage_of, weights=self._layer_macs[net.layer_index], minlength=net.num_stages)
        cum_macs = np.cumsum(stage_macs)
        metrics: dict[str, dict[str, float]] = {}
        for split, outcome in outcomes.items():
            m = dynamic_metrics(schedule, outcome.ratios, None, None)
            ratios = np.asarray(m.ratios)
            metrics[split] = {
                "accuracy": outcome.accuracy,
                "elp": m.avg_product,
                "elp_product": m.product_of_averages,
                "e_avg": m.energy_avg_pj,
                "l_avg": m.latency_avg_cycles,
                "exit_overhead": m.overhead_energy_share,
                "exit_overhead_latency": m.overhead_latency_share,
                "p50_latency": m.latency_percentiles["p50"],
                "p95_latency": m.latency_percentiles["p95"],
                "p99_latency": m.latency_percentiles["p99"],
                "early_exit_share": float(1.0 - ratios[-1]),
                "macs_avg": float(ratios @ cum_macs),
            }
        stages = []
        for stage, macs in zip(schedule.stages, stage_macs):
            row = {name: getattr(stage, name) for name in STAGE_FIELDS}
            row["head_key"], row["exit"] = stage.exit, stage.label
            row["macs"] = float(macs)
            stages.append(row)
        return ScoredDesign(
            design=design,
            val=metrics["val"],
            test=metrics["test"],
            exit_ratios={s: list(o.ratios) for s, o in outcomes.items()},
            exit_accuracy={s: [0.0 if a is None else a for a in o.exit_accuracy] for s, o in outcomes.items()},
            stages=stages,
            memory_fit=self._fits(design.precision, mapper, net, allocation),
            extra={"allocation": {"strategy": allocation.strategy, "cores": allocation.cores}},
        )

    def score_without_mapping(self, design: Design) -> ScoredDesign | None:
        """Accuracy, expected MACs and early-exit share per split, and the memory fit, without mapping the design
        (what a hardware-blind search needs); None when the memory fit depends on the allocation. The result has
        no cost metrics, stages or allocation."""
        if design.precision not in self.tables:
            raise ConfigError(f"design {design.name}: no exit table for precision {design.precision}")
        mapper = self.mapper(design.precision)
        net = mapper.network(design.head_keys)
        fit = self._fit_matrix_of(design.precision, mapper)[net.layer_index]
        eligible = mapper.model.eligible[net.layer_index]
        if (fit | ~eligible).all():
            memory_fit = True  # every layer fits every core that may run it
        elif not (fit & eligible).any(axis=1).all():
            memory_fit = False  # some layer fits no core that may run it
        else:
            return None
        keys = design.head_keys
        cols = [self.head_keys.index(k) for k in keys]
        cum_macs = np.cumsum(np.bincount(net.stage_of, weights=self._layer_macs[net.layer_index],
                                         minlength=net.num_stages))
        metrics: dict[str, dict[str, float]] = {}
        ratios: dict[str, list[float]] = {}
        for split in ("val", "test"):
            outcome = self._scorer(design.precision, split, keys, cols).outcome(list(design.thresholds))
            shares = np.asarray(outcome.ratios, dtype=float)
            ratios[split] = list(outcome.ratios)
            metrics[split] = {"accuracy": outcome.accuracy, "early_exit_share": float(1.0 - shares[-1]),
                              "macs_avg": float(shares @ cum_macs)}
        return ScoredDesign(design=design, val=metrics["val"], test=metrics["test"], exit_ratios=ratios,
                            memory_fit=memory_fit)

    def _fit_matrix_of(self, pair: PrecisionPair, mapper: Mapper) -> np.ndarray:
        fit = self._fit_matrix.get(pair)
        if fit is None:
            fit = self._fit_matrix[pair] = activation_fit_matrix(mapper.workload, self.system)
        return fit

    def _fits(self, pair: PrecisionPair, mapper: Mapper, net: Any, allocation: Any) -> bool:
        """Every layer's input and output activations fit its core's on-chip activation memory (no spill).
        Weights that do not fit a core's weight memory are streamed from off-chip and paid for in the cost."""
        fit = self._fit_matrix_of(pair, mapper)
        positions = to_array(mapper.model, net, allocation)
        return bool(fit[net.layer_index, positions].all())
