"""The layer description every later stage consumes.

Loop-size conventions (ZigZag's): B batch, K output channels, C input channels, OY/OX output rows/cols,
FY/FX kernel rows/cols, G = ``groups``. A grouped layer computes per group K/G outputs from C/G inputs,
so a depthwise conv over 32 channels has K = C = groups = 32. Pooling and element-wise layers use the
same convention with K = C = groups = channels (one "op" per output element and kernel tap).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any, Iterable, Iterator

from exitspace.errors import ConfigError
from exitspace.files import atomic_write_text

WORKLOAD_FORMAT_VERSION = 1


class OpType(str, Enum):
    """Operation kinds the cost stage knows."""

    CONV = "conv"
    DEPTHWISE = "dwconv"
    POINTWISE = "pwconv"
    FC = "fc"
    POOL = "pool"
    ADD = "add"
    ACT = "act"

    @property
    def is_mac(self) -> bool:
        """True for ops that run on a MAC array (conv, depthwise, pointwise, fully connected)."""
        return self in (OpType.CONV, OpType.DEPTHWISE, OpType.POINTWISE, OpType.FC)


@dataclass(frozen=True)
class Precision:
    """Operand bit widths of one layer. Partial sums default to twice the activation width."""

    weight: int = 8
    input: int = 8
    output: int = 8
    psum: int = 16

    @classmethod
    def uniform(cls, bits: int) -> "Precision":
        """Weights and activations at ``bits``, partial sums at ``2 * bits`` (the paper's convention); 32 bits
        (float) accumulates in 32 bits."""
        return cls(weight=bits, input=bits, output=bits, psum=2 * bits if bits < 32 else 32)


def _input_extent(out: int, kernel: int, stride: int, padding: int) -> int:
    """The input size of one spatial axis: ``(out-1)*stride + kernel - 2*padding`` is the smallest that gives
    ``out`` outputs, ``stride - 1`` more give the same; take the one nearest ``stride * out``."""
    smallest = (out - 1) * stride + kernel - 2 * padding
    return min(max(stride * out, smallest), smallest + stride - 1)


@dataclass(frozen=True)
class Layer:
    """One layer of a workload.

    ``block`` tags the backbone block ("stem", "b0" ... "b11") or, for head layers, the block the head
    is mounted after; ``exit`` is the key of the exit head the layer belongs to (``"<label>:<head type>"``,
    e.g. ``"D:pool4_fc1"``), or None for backbone layers. ``inputs`` names the producer layers (the dependency graph); an empty tuple means the
    network input.
    """

    name: str
    op: OpType
    K: int
    C: int
    OY: int = 1
    OX: int = 1
    FY: int = 1
    FX: int = 1
    B: int = 1
    groups: int = 1
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    precision: Precision = field(default_factory=Precision)
    block: str = ""
    exit: str | None = None
    inputs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for dim in ("K", "C", "OY", "OX", "FY", "FX", "B", "groups"):
            value = getattr(self, dim)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"layer {self.name!r}.{dim}: must be a positive integer (got {value!r})")
        if self.K % self.groups or self.C % self.groups:
            raise ConfigError(
                f"layer {self.name!r}.groups: {self.groups} must divide K={self.K} and C={self.C}"
            )

    @property
    def is_depthwise(self) -> bool:
        """A depthwise op, or any convolution with one group per channel (K = C = groups > 1)."""
        return self.op == OpType.DEPTHWISE or (self.groups == self.K == self.C and self.groups > 1)

    @property
    def IY(self) -> int:
        """Input rows: of the sizes that give ``OY`` rows (PyTorch/ONNX floor rule), the one nearest
        ``stride * OY`` (a padded stride-2 3x3 layer reads 14 rows for 7 outputs, not the 13 its last window
        reaches; a stride-1 layer has a single size)."""
        return _input_extent(self.OY, self.FY, self.stride[0], self.padding[0])

    @property
    def IX(self) -> int:
        """Input columns, as IY."""
        return _input_extent(self.OX, self.FX, self.stride[1], self.padding[1])

    @property
    def macs(self) -> int:
        """Multiply-accumulates (or elementary ops for pooling / element-wise layers)."""
        return self.B * self.K * (self.C // self.groups) * self.OY * self.OX * self.FY * self.FX

    @property
    def weight_count(self) -> int:
        """Number of weights (0 for ops without weights)."""
        if not self.op.is_mac:
            return 0
        return self.K * (self.C // self.groups) * self.FY * self.FX

    @property
    def input_count(self) -> int:
        """Number of input activations (un-padded)."""
        return self.B * self.C * max(self.IY, 1) * max(self.IX, 1)

    @property
    def output_count(self) -> int:
        """Number of output activations."""
        return self.B * self.K * self.OY * self.OX

    def with_precision(self, precision: Precision) -> "Layer":
        """A copy at another precision."""
        return replace(self, precision=precision)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        data = asdict(self)
        data["op"] = self.op.value
        data["stride"] = list(self.stride)
        data["padding"] = list(self.padding)
        data["inputs"] = list(self.inputs)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Layer":
        """Inverse of :meth:`to_dict`; a bad field gets a one-line ConfigError."""
        name = data.get("name", "?")
        try:
            op = OpType(data["op"])
        except KeyError:
            raise ConfigError(f"layer {name!r}.op: missing; give one of {[o.value for o in OpType]}") from None
        except ValueError:
            raise ConfigError(
                f"layer {name!r}.op: unknown layer type {data['op']!r}; use one of {[o.value for o in OpType]}"
            ) from None
        fields = dict(data)
        fields["op"] = op
        fields["stride"] = tuple(fields.get("stride", (1, 1)))
        fields["padding"] = tuple(fields.get("padding", (0, 0)))
        fields["inputs"] = tuple(fields.get("inputs", ()))
        fields["precision"] = Precision(**fields.get("precision", {}))
        try:
            return cls(**fields)
        except TypeError as exc:
            raise ConfigError(f"layer {name!r}: {exc}; check the field names") from None


@dataclass
class Workload:
    """An ordered list of layers (topological order) plus a name."""

    name: str
    layers: list[Layer]

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    @property
    def macs(self) -> int:
        """Total MACs over all layers with a MAC op."""
        return sum(layer.macs for layer in self.layers if layer.op.is_mac)

    def backbone(self) -> list[Layer]:
        """Layers that belong to no exit head."""
        return [layer for layer in self.layers if layer.exit is None]

    def head(self, exit_name: str) -> list[Layer]:
        """Layers of one exit head."""
        return [layer for layer in self.layers if layer.exit == exit_name]

    @property
    def exits(self) -> list[str]:
        """Exit names in network order."""
        seen: list[str] = []
        for layer in self.layers:
            if layer.exit is not None and layer.exit not in seen:
                seen.append(layer.exit)
        return seen

    def select(self, layers: Iterable[Layer]) -> "Workload":
        """A sub-workload with the given layers (order kept)."""
        return Workload(self.name, list(layers))

    def with_precision(self, backbone: Precision, exits: Precision) -> "Workload":
        """A copy with one precision for backbone layers and another for head layers."""
        return Workload(
            self.name,
            [layer.with_precision(exits if layer.exit else backbone) for layer in self.layers],
        )

    def to_json(self, path: Path) -> None:
        """Write as versioned JSON."""
        payload = {
            "format": "exitspace.workload",
            "version": WORKLOAD_FORMAT_VERSION,
            "name": self.name,
            "layers": [layer.to_dict() for layer in self.layers],
        }
        atomic_write_text(path, json.dumps(payload, indent=1))

    @classmethod
    def from_json(cls, path: Path) -> "Workload":
        """Read what :meth:`to_json` wrote."""
        try:
            payload = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"workload file {path}: not found; check the path") from None
        except IsADirectoryError:
            raise ConfigError(f"workload file {path}: is a directory; give a workload JSON file") from None
        except UnicodeDecodeError:
            raise ConfigError(f"workload file {path}: not text (a binary file?); give a workload JSON written by "
                              "`exitspace workload --out`, or an ONNX file with --onnx") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"workload file {path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(payload, dict) or payload.get("format") != "exitspace.workload":
            raise ConfigError(f"workload file {path}: 'format' must be 'exitspace.workload'")
        entries = payload.get("layers")
        if not isinstance(entries, list):
            raise ConfigError(f"workload file {path}: 'layers' must be a list of layers")
        layers = []
        for index, entry in enumerate(entries):
            try:
                layers.append(Layer.from_dict(entry))
            except ConfigError as exc:
                raise ConfigError(f"workload file {path}: layers[{index}]: {exc}") from None
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise ConfigError(f"workload file {path}: layers[{index}] is not a layer ({type(exc).__name__}: "
                                  f"{str(exc)[:80]}); write it with `exitspace workload --out`") from None
        return cls(str(payload.get("name", Path(path).stem)), layers)

