"""A layer-to-core allocation: which core runs each layer of one candidate network.

:class:`Allocation` is the serialisable form (layer name -> core id, plus how it was found); inside the
mapping stage an allocation is an int array over the layers of a :class:`~exitspace.mapping.network.StagedNetwork`
holding core *positions* in ``system.cores`` (batched as ``[P, n]`` for the optimisers).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from exitspace.errors import ConfigError
from exitspace.mapping.costs import CostModel
from exitspace.mapping.network import StagedNetwork


@dataclass
class Allocation:
    """Layer name -> core id for one network, with the strategy that produced it and its objective."""

    cores: dict[str, int]
    strategy: str = "given"
    objective: str | None = None
    objective_value: float | None = None
    seed: int | None = None
    evaluations: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "strategy": self.strategy,
            "objective": self.objective,
            "objective_value": self.objective_value,
            "seed": self.seed,
            "evaluations": self.evaluations,
            "cores": dict(self.cores),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Allocation":
        """Inverse of :meth:`to_dict`; a bare ``{layer: core id}`` mapping is accepted too."""
        cores = data.get("cores", data) if isinstance(data, dict) else None
        if not isinstance(cores, dict):
            raise ConfigError("allocation: expected a JSON object {layer name: core id} or {'cores': {...}}")
        clean: dict[str, int] = {}
        for name, core in cores.items():
            if isinstance(core, bool) or not isinstance(core, int):
                raise ConfigError(f"allocation.cores[{name!r}]: core id must be an integer (got {core!r})")
            clean[str(name)] = core
        return cls(
            cores=clean,
            strategy=str(data.get("strategy", "given")) if "cores" in data else "given",
            objective=data.get("objective") if "cores" in data else None,
            objective_value=data.get("objective_value") if "cores" in data else None,
            seed=data.get("seed") if "cores" in data else None,
        )

    @classmethod
    def load(cls, path: Path) -> "Allocation":
        """Read an allocation JSON file; one-line error if missing or malformed."""
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except FileNotFoundError:
            raise ConfigError(f"allocation file {path}: not found; check the path") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"allocation file {path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None


def to_array(model: CostModel, net: StagedNetwork, allocation: Allocation) -> np.ndarray:
    """Core positions [n] for the network's layers; one-line errors for a missing layer, an unknown core
    or a core that may not run the layer."""
    positions = np.empty(net.num_layers, dtype=np.int64)
    for local, name in enumerate(net.layer_names):
        if name not in allocation.cores:
            raise ConfigError(f"allocation: layer {name!r} has no core; give every layer of the network a core id")
        pos = model.core_position(allocation.cores[name])
        if not model.eligible[net.layer_index[local], pos]:
            allowed = [model.core_ids[c] for c in np.flatnonzero(model.eligible[net.layer_index[local]])]
            raise ConfigError(
                f"allocation.cores[{name!r}]: core {allocation.cores[name]} ({model.core_names[pos]}) may not run "
                f"this layer; use one of {allowed}"
            )
        positions[local] = pos
    return positions


def from_array(
    model: CostModel,
    net: StagedNetwork,
    positions: np.ndarray,
    strategy: str,
    objective: str | None = None,
    value: float | None = None,
    seed: int | None = None,
    evaluations: int = 0,
) -> Allocation:
    """The serialisable allocation of a core-position array."""
    return Allocation(
        cores={name: model.core_ids[int(p)] for name, p in zip(net.layer_names, positions)},
        strategy=strategy,
        objective=objective,
        objective_value=None if value is None else float(value),
        seed=seed,
        evaluations=evaluations,
    )

