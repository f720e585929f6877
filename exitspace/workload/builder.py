"""Shared by the torch and ONNX front ends: turns a stream of graph nodes into :class:`Layer` objects.

It keeps, for every tensor value of the source graph, the names of the layers that produce it
(free ops such as flatten or BatchNorm pass their inputs' producers through), fuses activations into
the single layer producing their input (or emits ACT layers), and makes layer names unique.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence

from exitspace.errors import ConfigError
from exitspace.workload.layer import Layer, OpType, Precision


def as_precision(precision: Precision | int | None) -> Precision:
    """A Precision from a Precision, a bit width (weights and activations; psums twice that) or None (8 bit)."""
    if precision is None:
        return Precision()
    if isinstance(precision, Precision):
        return precision
    if isinstance(precision, int) and precision > 0:
        return Precision.uniform(precision)
    raise ConfigError(f"precision: must be a positive bit width or a Precision (got {precision!r})")


def conv_op(in_channels: int, out_channels: int, groups: int, kernel: tuple[int, int]) -> OpType:
    """Depthwise when every input channel is its own group, pointwise for a 1x1 ungrouped conv, else conv."""
    if groups == in_channels and groups > 1:
        return OpType.DEPTHWISE
    if groups == 1 and kernel == (1, 1):
        return OpType.POINTWISE
    return OpType.CONV


def feature_dims(shape: Sequence[int]) -> tuple[int, int, int, int]:
    """(batch, channels, rows, cols) of an activation: NCHW, or [N, features] as 1x1 maps."""
    if len(shape) >= 4:
        return shape[0], shape[1], shape[-2], math.prod(shape[2:-2]) * shape[-1]
    if len(shape) == 3:
        return shape[0], shape[1], 1, shape[2]
    if len(shape) == 2:
        return shape[0], shape[1], 1, 1
    return 1, max(1, math.prod(shape)), 1, 1


class WorkloadBuilder:
    """Accumulates layers in topological order and tracks which layers produce each graph value."""

    def __init__(self, precision: Precision, fuse_activations: bool = True) -> None:
        self.precision = precision
        self.fuse_activations = fuse_activations
        self.layers: list[Layer] = []
        self._by_name: dict[str, Layer] = {}
        self._sources: dict[Hashable, tuple[str, ...]] = {}

    def unique_name(self, name: str) -> str:
        """``name``, or ``name_1``, ``name_2`` ... if taken."""
        candidate, index = name, 0
        while candidate in self._by_name:
            index += 1
            candidate = f"{name}_{index}"
        return candidate

    def producers(self, values: Iterable[Hashable]) -> tuple[str, ...]:
        """Layer names producing any of ``values`` (network inputs and constants produce none)."""
        names: list[str] = []
        for value in values:
            for name in self._sources.get(value, ()):
                if name not in names:
                    names.append(name)
        return tuple(names)

    def layer(self, name: str) -> Layer:
        """A layer added so far, by name."""
        return self._by_name[name]

    def alias(self, value: Hashable, inputs: Iterable[Hashable]) -> None:
        """A free op: ``value`` is produced by whatever produced ``inputs``."""
        self._sources[value] = self.producers(inputs)

    def emit(self, value: Hashable, layer: Layer) -> Layer:
        """Add ``layer`` (its name must come from :meth:`unique_name`) as the producer of ``value``."""
        self.layers.append(layer)
        self._by_name[layer.name] = layer
        self._sources[value] = (layer.name,)
        return layer

    def can_fuse(self, input_value: Hashable, input_consumers: int) -> bool:
        """True when an activation on ``input_value`` folds into the one layer producing it."""
        return self.fuse_activations and input_consumers == 1 and len(self._sources.get(input_value, ())) == 1

    def make(
        self,
        name: str,
        op: OpType,
        *,
        K: int,
        C: int,
        inputs: Iterable[Hashable],
        block: str,
        exit: str | None,
        OY: int = 1,
        OX: int = 1,
        FY: int = 1,
        FX: int = 1,
        B: int = 1,
        groups: int = 1,
        stride: tuple[int, int] = (1, 1),
        padding: tuple[int, int] = (0, 0),
    ) -> Layer:
        """Build a Layer with this builder's precision and the producers of ``inputs``."""
        return Layer(
            name=self.unique_name(name),
            op=op,
            K=K,
            C=C,
            OY=OY,
            OX=OX,
            FY=FY,
            FX=FX,
            B=B,
            groups=groups,
            stride=stride,
            padding=padding,
            precision=self.precision,
            block=block,
            exit=exit,
            inputs=self.producers(inputs),
        )

    def elementwise(
        self, name: str, op: OpType, out_shape: Sequence[int], inputs: Iterable[Hashable], block: str, exit: str | None
    ) -> Layer:
        """An ADD or ACT layer over an activation of ``out_shape`` (K = C = groups = channels)."""
        batch, channels, rows, cols = feature_dims(out_shape)
        return self.make(
            name, op, K=channels, C=channels, groups=channels, OY=rows, OX=cols, B=batch,
            inputs=inputs, block=block, exit=exit,
        )

    def pool(
        self,
        name: str,
        in_shape: Sequence[int],
        out_shape: Sequence[int],
        kernel: tuple[int, int] | None,
        stride: tuple[int, int] | None,
        padding: tuple[int, int],
        inputs: Iterable[Hashable],
        block: str,
        exit: str | None,
    ) -> Layer:
        """A POOL layer; ``kernel=None`` derives it from the shapes (adaptive / global pooling)."""
        batch, channels, in_rows, in_cols = feature_dims(in_shape)
        _, _, rows, cols = feature_dims(out_shape)
        if kernel is None:
            kernel = (math.ceil(in_rows / rows), math.ceil(in_cols / cols))
            stride = (max(1, in_rows // rows), max(1, in_cols // cols))
        return self.make(
            name, OpType.POOL, K=channels, C=channels, groups=channels, OY=rows, OX=cols, FY=kernel[0],
            FX=kernel[1], B=batch, stride=stride or kernel, padding=padding, inputs=inputs, block=block, exit=exit,
        )
