"""What the search needs from the stages below it: ``evaluate(design) -> ScoredDesign``.

The search never computes exit ratios or costs itself; an :class:`Evaluator` (built from the exit tables,
the workload, the cost backend, the mapping and the dynamic-inference stage) does. Metrics come per split:
``val`` drives the search (thresholds are thereby fitted on validation), ``test`` is what the report shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from exitspace.search.space import Design

SPLIT_METRICS = (
    "accuracy",
    "elp",
    "elp_product",
    "e_avg",
    "l_avg",
    "exit_overhead",
    "p50_latency",
    "p95_latency",
    "p99_latency",
    "early_exit_share",
    "macs_avg",
)
"""Keys every split's metrics carry. ``elp`` is the paper's E[E_cum * L_cum]; ``elp_product`` is
E_avg * L_avg; energies in pJ, latencies in cycles; ``exit_overhead`` is the share of the average energy
spent in exit heads; ``macs_avg`` the expected MACs per sample (the hardware-blind proxy)."""


@dataclass
class ScoredDesign:
    """Everything known about one design."""

    design: Design
    val: dict[str, float]
    test: dict[str, float]
    exit_ratios: dict[str, list[float]] = field(default_factory=dict)
    exit_accuracy: dict[str, list[float]] = field(default_factory=dict)
    stages: list[dict[str, Any]] = field(default_factory=list)
    memory_fit: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def split(self, name: str) -> dict[str, float]:
        """Metrics of ``"val"`` or ``"test"``."""
        return self.val if name == "val" else self.test

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (design included)."""
        return {
            "design": self.design.to_dict(),
            "name": self.design.name,
            "val": {k: float(v) for k, v in self.val.items()},
            "test": {k: float(v) for k, v in self.test.items()},
            "exit_ratios": self.exit_ratios,
            "exit_accuracy": self.exit_accuracy,
            "stages": self.stages,
            "memory_fit": bool(self.memory_fit),
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ScoredDesign":
        """Inverse of :meth:`to_dict`."""
        return cls(
            design=Design.from_dict(data["design"]),
            val=dict(data["val"]),
            test=dict(data["test"]),
            exit_ratios=dict(data.get("exit_ratios", {})),
            exit_accuracy=dict(data.get("exit_accuracy", {})),
            stages=list(data.get("stages", [])),
            memory_fit=bool(data.get("memory_fit", True)),
            extra=dict(data.get("extra", {})),
        )


@runtime_checkable
class Evaluator(Protocol):
    """Scores designs; must be deterministic and fast (the search calls it thousands of times)."""

    def evaluate(self, design: Design) -> ScoredDesign:
        """All metrics of one design."""
        ...
