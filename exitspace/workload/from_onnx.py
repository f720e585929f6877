"""Workload from an ONNX file (shapes from ``onnx.shape_inference``).

Conv -> conv / dwconv / pwconv (by ``group`` and kernel), Gemm and MatMul with a constant weight -> fc,
MaxPool / AveragePool / GlobalAveragePool / GlobalMaxPool / ReduceMean over H, W -> pool, Add / Sum of two
activations -> add, Relu / Clip / other activations -> act (fused into their producer by default);
Flatten, Reshape, Identity, BatchNormalization, Dropout, Constant, Slice, Pad, Concat and other shape ops
are free. Node names written by ``torch.onnx.export`` carry the module path ("/blocks.3/expand/expand.0/
Conv"); from it layers get the same names and ``block`` / ``exit`` tags as ``workload_from_torch`` gives an
EENN ("blocks.N" -> "bN", "stem", head modules "<label>_<head type>" -> exit "<label>:<head type>").
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from exitspace.errors import ConfigError
from exitspace.workload.builder import WorkloadBuilder, as_precision, conv_op
from exitspace.workload.layer import Layer, OpType, Precision, Workload

ACTIVATION_OPS = {"Relu", "Clip", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Gelu", "Softmax"}
POOL_OPS = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"}
FREE_OPS = {
    "Flatten", "Reshape", "Identity", "BatchNormalization", "Dropout", "Constant", "Shape", "Gather", "Unsqueeze",
    "Squeeze", "Concat", "Transpose", "Pad", "Slice", "Cast", "ConstantOfShape", "Expand",
}
SUPPORTED_OPS = sorted({"Conv", "Gemm", "MatMul", "Add", "Sum", "ReduceMean"} | ACTIVATION_OPS | POOL_OPS | FREE_OPS)

OnnxTagger = Callable[[str, str], tuple[str, str, "str | None"]]

_BLOCK = re.compile(r"(?:^|\.)blocks\.(\d+)(?:\.|$)")
_HEAD = re.compile(r"^([A-Z]+)_([a-z][a-z0-9_]*)$")


def module_path(node_name: str) -> str:
    """The module path torch.onnx.export encodes in a node name ("/blocks.0/conv1/conv1.0/Conv" ->
    "blocks.0.conv1.0"); "" when the name has no scope."""
    parts = [part for part in node_name.split("/") if part][:-1]
    path, previous = "", ""
    for part in parts:
        suffix = part[len(previous) + 1 :] if previous and part.startswith(previous + ".") else part
        path = f"{path}.{suffix}" if path else suffix
        previous = part
    return path


def eenn_onnx_tagger(node_name: str, op_type: str) -> tuple[str, str, str | None]:
    """(layer name, block, exit) from a torch-exported node name, following the EENN's module layout."""
    path = module_path(node_name)
    suffix = ".add" if op_type in ("Add", "Sum") else ""
    if not path:
        return node_name or op_type, "", None
    parts = path.split(".")
    for index, part in enumerate(parts):
        head = _HEAD.match(part)
        if head:
            key = f"{head.group(1)}:{head.group(2)}"
            return ".".join([key, *parts[index + 1 :]]) + suffix, "", key
    match = _BLOCK.search(path)
    if match:
        rest = path[match.end() :]
        block = f"b{match.group(1)}"
        return (f"{block}.{rest}" if rest else block) + suffix, block, None
    if "stem" in parts:
        stem_rest = parts[parts.index("stem") + 1 :]
        return ".".join(["stem", *stem_rest]) + suffix, "stem", None
    return path + suffix, parts[0], None


def _attrs(node: Any) -> dict[str, Any]:
    import onnx

    return {attr.name: onnx.helper.get_attribute_value(attr) for attr in node.attribute}


def _pair(values: Any, default: int) -> tuple[int, int]:
    values = list(values) if values is not None else []
    if not values:
        return (default, default)
    return (int(values[0]), int(values[-1]))


def _load(path: Path) -> Any:
    import onnx

    if not path.is_file():
        raise ConfigError(f"ONNX file {path}: not found; check the path")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:  # noqa: BLE001 - protobuf and the checker raise several types
        raise ConfigError(f"ONNX file {path}: not a readable ONNX model ({type(exc).__name__}); re-export it") from None
    if not model.graph.node:
        raise ConfigError(f"ONNX file {path}: its graph has no nodes (an empty or non-ONNX file?); give an exported network")
    try:
        return onnx.shape_inference.infer_shapes(model)
    except Exception as exc:  # noqa: BLE001
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"ONNX file {path}: shape inference failed ({first}); export with static shapes") from None


@dataclass(frozen=True)
class _GraphIndex:
    """Facts about a graph's values: inferred shapes, constants (initializers, and outputs of free ops on
    constants, added as nodes are read) and how many nodes or graph outputs consume each value."""

    shapes: dict[str, tuple[int, ...]]
    constants: set[str]
    consumers: Counter[str]

    @classmethod
    def of(cls, graph: Any) -> _GraphIndex:
        """Index a shape-inferred ONNX graph (dynamic dimensions are taken as 1)."""
        shapes: dict[str, tuple[int, ...]] = {}
        for info in [*graph.input, *graph.output, *graph.value_info]:
            dims = info.type.tensor_type.shape.dim
            shapes[info.name] = tuple(d.dim_value if d.dim_value > 0 else 1 for d in dims)
        constants = {init.name for init in graph.initializer}
        for init in graph.initializer:
            shapes[init.name] = tuple(int(d) for d in init.dims)
        consumers: Counter[str] = Counter(value for node in graph.node for value in node.input if value)
        consumers.update(output.name for output in graph.output)
        return cls(shapes, constants, consumers)

    def shape_of(self, value: str, node: Any) -> tuple[int, ...]:
        """The inferred shape of ``value``, an input or output of ``node``."""
        if value not in self.shapes:
            raise ConfigError(f"ONNX node {node.name!r} ({node.op_type}): tensor {value!r} has no inferred shape")
        return self.shapes[value]


@dataclass(frozen=True)
class _ComputeNode:
    """A node that is not a free op, with what its layer is made of: the value it produces, its non-constant
    inputs, the layer name and ``block`` / ``exit`` tags, and its attributes."""

    node: Any
    out: str
    data_inputs: list[str]
    name: str
    block: str
    exit: str | None
    attrs: dict[str, Any]

    @property
    def op(self) -> str:
        """The ONNX op type."""
        return str(self.node.op_type)


def workload_from_onnx(
    path: str | Path,
    precision: Precision | int | None = None,
    name: str | None = None,
    fuse_activations: bool = True,
    tagger: OnnxTagger | None = None,
) -> Workload:
    """Read an ONNX model into a Workload (dynamic dimensions are taken as 1)."""
    path = Path(path)
    model = _load(path)
    graph = model.graph
    index = _GraphIndex.of(graph)
    tag = tagger or eenn_onnx_tagger
    builder = WorkloadBuilder(as_precision(precision), fuse_activations)
    for node in graph.node:
        _read_node(node, index, builder, tag)
    return Workload(name or graph.name or path.stem, builder.layers)


def _read_node(node: Any, index: _GraphIndex, builder: WorkloadBuilder, tag: OnnxTagger) -> None:
    """Add the layer ``node`` computes to ``builder``, or pass its inputs' producers through to its outputs."""
    op = node.op_type
    data_inputs = [value for value in node.input if value and value not in index.constants]
    if op in FREE_OPS:
        if op == "Constant" or not data_inputs:
            index.constants.update(node.output)
        for output in node.output:
            builder.alias(output, data_inputs)
        return
    if not node.output:
        return
    layer_name, block, exit_key = tag(node.name, op)
    compute = _ComputeNode(node, node.output[0], data_inputs, layer_name, block, exit_key, _attrs(node))
    layer = _layer(compute, index, builder)
    if layer is None:
        return
    if layer.exit is not None and not layer.block and layer.inputs:
        # A head is tagged with the block it is mounted after: that of the layer it reads.
        layer = replace(layer, block=builder.layer(layer.inputs[0]).block)
    builder.emit(compute.out, layer)


def _layer(compute: _ComputeNode, index: _GraphIndex, builder: WorkloadBuilder) -> Layer | None:
    """The layer of a computing node; None when the node folds into its input's producer (an activation
    fused into it, an Add or Sum with one activation input), which then also produces its output."""
    op, node = compute.op, compute.node
    if op == "Conv":
        return _conv_layer(compute, index, builder)
    if op in ("Gemm", "MatMul"):
        return _fc_layer(compute, index, builder)
    if op in POOL_OPS or op == "ReduceMean":
        return _pool_layer(compute, index, builder)
    if op in ("Add", "Sum"):
        if len(compute.data_inputs) < 2:
            builder.alias(compute.out, compute.data_inputs)
            return None
        return builder.elementwise(
            compute.name, OpType.ADD, index.shape_of(compute.out, node), compute.data_inputs, compute.block, compute.exit
        )
    if op in ACTIVATION_OPS:
        source = node.input[0]
        if builder.can_fuse(source, index.consumers[source]):
            builder.alias(compute.out, [source])
            return None
        return builder.elementwise(
            compute.name, OpType.ACT, index.shape_of(compute.out, node), [source], compute.block, compute.exit
        )
    raise ConfigError(
        f"ONNX node {node.name!r}: op type {op!r} is not supported; supported: {', '.join(SUPPORTED_OPS)}"
    )


def _leading_pads(attrs: dict[str, Any]) -> tuple[int, int]:
    """(top, left) of an explicit ``pads`` attribute; (0, 0) without one."""
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    return (int(pads[0]), int(pads[1])) if pads else (0, 0)


def _conv_layer(compute: _ComputeNode, index: _GraphIndex, builder: WorkloadBuilder) -> Layer:
    """A 2-D convolution (conv, dwconv or pwconv by ``group`` and kernel); padding from ``pads`` or ``auto_pad``."""
    node, attrs = compute.node, compute.attrs
    x_shape, w_shape = index.shape_of(node.input[0], node), index.shape_of(node.input[1], node)
    o_shape = index.shape_of(compute.out, node)
    if len(w_shape) != 4:
        raise ConfigError(f"ONNX node {node.name!r} (Conv): only 2-D convolutions are supported")
    if _pair(attrs.get("dilations"), 1) != (1, 1):
        raise ConfigError(f"ONNX node {node.name!r} (Conv): dilated convolutions are not supported")
    groups = int(attrs.get("group", 1))
    kernel = (w_shape[2], w_shape[3])
    stride = _pair(attrs.get("strides"), 1)
    padding = _leading_pads(attrs)
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
        padding = tuple(  # type: ignore[assignment]
            max(0, ((o - 1) * s + k - i) // 2) for o, s, k, i in zip(o_shape[2:], stride, kernel, x_shape[2:])
        )
    return builder.make(
        compute.name, conv_op(x_shape[1], w_shape[0], groups, kernel), K=w_shape[0], C=x_shape[1],
        OY=o_shape[2], OX=o_shape[3], FY=kernel[0], FX=kernel[1], B=x_shape[0], groups=groups,
        stride=stride, padding=padding, inputs=[node.input[0]], block=compute.block, exit=compute.exit,
    )


def _fc_layer(compute: _ComputeNode, index: _GraphIndex, builder: WorkloadBuilder) -> Layer:
    """A fully connected layer: a Gemm or MatMul whose second operand is a constant weight."""
    node, op, attrs = compute.node, compute.op, compute.attrs
    a_shape, b_shape = index.shape_of(node.input[0], node), index.shape_of(node.input[1], node)
    if node.input[1] not in index.constants:
        raise ConfigError(
            f"ONNX node {node.name!r} ({op}): the second operand is an activation; only products with a "
            "constant weight (fully connected layers) are supported"
        )
    if op == "Gemm":
        features_in = a_shape[0] if attrs.get("transA", 0) else a_shape[-1]
        batch = a_shape[-1] if attrs.get("transA", 0) else a_shape[0]
        features_out = b_shape[0] if attrs.get("transB", 0) else b_shape[1]
    else:
        features_in, features_out, batch = b_shape[0], b_shape[1], math.prod(a_shape[:-1]) or 1
    return builder.make(
        compute.name, OpType.FC, K=features_out, C=features_in, B=batch,
        inputs=[node.input[0]], block=compute.block, exit=compute.exit,
    )


def _pool_layer(compute: _ComputeNode, index: _GraphIndex, builder: WorkloadBuilder) -> Layer:
    """A pool layer: MaxPool / AveragePool with their window, global pooling, or ReduceMean over H and W."""
    node, op, attrs = compute.node, compute.op, compute.attrs
    x_shape, o_shape = index.shape_of(node.input[0], node), index.shape_of(compute.out, node)
    if op == "ReduceMean" and (len(x_shape) != 4 or o_shape[:2] != x_shape[:2]):
        raise ConfigError(f"ONNX node {node.name!r} (ReduceMean): supported only over H and W (global pooling)")
    if op in ("MaxPool", "AveragePool"):
        kernel = _pair(attrs.get("kernel_shape"), 1)
        stride = _pair(attrs.get("strides"), 1)
        padding = _leading_pads(attrs)
    else:
        kernel = stride = None  # type: ignore[assignment]
        padding = (0, 0)
    return builder.pool(
        compute.name, x_shape, o_shape, kernel, stride, padding, [node.input[0]], compute.block, compute.exit
    )
