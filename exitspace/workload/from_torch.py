"""Workload from a PyTorch module: torch.fx symbolic tracing plus shape propagation on an example input.

BatchNorm is folded (no layer), ReLU-like activations fuse into the one layer producing their input
(``fuse_activations=False`` keeps them as ACT layers), residual adds become ADD layers and pooling POOL
layers; reshapes, flatten, slicing, padding, concatenation and dropout are free. A module may define
``workload_tag(path) -> (layer name, block, exit)`` to name layers and tag them with their backbone block
and exit head (the EENN supernet and PlainNet do); otherwise names are module paths and ``block`` is
the top-level child a layer belongs to.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from exitspace.errors import ConfigError
from exitspace.workload.builder import WorkloadBuilder, as_precision, conv_op
from exitspace.workload.layer import OpType, Precision, Workload

Tagger = Callable[[str], tuple[str, str, "str | None"]]

ACTIVATION_MODULES = (
    nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.LeakyReLU, nn.SiLU, nn.GELU, nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid,
)
FREE_MODULES = (
    nn.BatchNorm1d, nn.BatchNorm2d, nn.Flatten, nn.Unflatten, nn.Identity, nn.Dropout, nn.Dropout2d,
)
POOL_MODULES = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
ADAPTIVE_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)

ADD_FUNCTIONS: set[Any] = {operator.add, operator.iadd, torch.add}
ACTIVATION_FUNCTIONS: set[Any] = {
    F.relu, F.relu6, F.hardtanh, F.leaky_relu, F.silu, F.gelu, F.hardswish, F.hardsigmoid,
    torch.relu, torch.sigmoid, torch.tanh, torch.clamp,
}
POOL_FUNCTIONS: set[Any] = {F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d, F.adaptive_max_pool2d}
FREE_FUNCTIONS: set[Any] = {
    operator.getitem, getattr, torch.flatten, torch.reshape, torch.cat, torch.concat, torch.stack, torch.squeeze,
    torch.unsqueeze, torch.permute, torch.transpose, F.pad, F.dropout, F.dropout2d,
}
ADD_METHODS = {"add", "add_"}
ACTIVATION_METHODS = {"relu", "relu_", "clamp", "clamp_", "sigmoid", "tanh"}
FREE_METHODS = {
    "view", "reshape", "flatten", "contiguous", "size", "dim", "squeeze", "unsqueeze", "permute", "transpose",
    "float", "to", "detach", "clone",
}
SUPPORTED = (
    "Conv2d, Linear, Max/Avg/Adaptive pooling, mean over H and W, add, ReLU-like activations; BatchNorm, "
    "Flatten, reshape/view, slicing, pad, cat/stack and Dropout are free"
)


def default_tagger(path: str) -> tuple[str, str, str | None]:
    """Name = module path, block = its top-level child, no exit."""
    return path, path.split(".", 1)[0], None


def _shape(node: fx.Node) -> tuple[int, ...]:
    meta = node.meta.get("tensor_meta")
    if meta is None or not hasattr(meta, "shape"):
        raise ConfigError(f"torch node {node.name!r}: no tensor shape after shape propagation; check the example input")
    return tuple(int(d) for d in meta.shape)


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        return (int(value[0]), int(value[-1]))
    return (int(value), int(value))


def _arg(node: fx.Node, index: int, name: str, default: Any = None) -> Any:
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def _module_path(node: fx.Node) -> str:
    """Qualified path of the innermost module a function call happened in ('' at the top level)."""
    if node.op == "call_module":
        return str(node.target)
    stack = node.meta.get("nn_module_stack") or {}
    return next(reversed(stack.keys()), "") if stack else ""


def _trace(module: nn.Module, inputs: Sequence[torch.Tensor]) -> fx.GraphModule:
    try:
        graph_module = fx.symbolic_trace(module)
    except Exception as exc:  # noqa: BLE001 - tracing failures come in many types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"module {type(module).__name__}: torch.fx cannot trace it ({first}); remove data-dependent control "
            "flow from forward() or export it to ONNX and use workload_from_onnx"
        ) from None
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        with torch.no_grad():
            ShapeProp(graph_module).propagate(*inputs)
    except Exception as exc:  # noqa: BLE001
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"example_input: the module rejected shape(s) {[tuple(t.shape) for t in inputs]} ({first}); "
            "give an input of the shape the module expects, e.g. (1, 3, 32, 32)"
        ) from None
    finally:
        for sub, training in modes:
            sub.training = training
    return graph_module


def workload_from_torch(
    module: nn.Module,
    example_input: torch.Tensor | Sequence[torch.Tensor],
    precision: Precision | int | None = None,
    name: str | None = None,
    fuse_activations: bool = True,
    tagger: Tagger | None = None,
) -> Workload:
    """Trace ``module`` on ``example_input`` (batch size becomes the layers' B) into a Workload."""
    inputs = (example_input,) if isinstance(example_input, torch.Tensor) else tuple(example_input)
    graph_module = _trace(module, inputs)
    tag = tagger or getattr(module, "workload_tag", None) or default_tagger
    builder = WorkloadBuilder(as_precision(precision), fuse_activations)

    for node in graph_module.graph.nodes:
        if node.op in ("placeholder", "get_attr"):
            builder.alias(node, [])
            continue
        if node.op == "output":
            continue
        path = _module_path(node)
        base, block, exit_key = tag(path) if path else (node.name, "", None)
        sources = node.all_input_nodes
        if node.op == "call_module":
            _module_node(builder, graph_module.get_submodule(str(node.target)), node, base, block, exit_key)
        else:
            _function_node(builder, node, sources, base if path else "", block, exit_key)
    return Workload(name or type(module).__name__, builder.layers)


def _activation(
    builder: WorkloadBuilder, node: fx.Node, name: str, block: str, exit_key: str | None
) -> None:
    source = node.all_input_nodes[0]
    if builder.can_fuse(source, len(source.users)):
        builder.alias(node, [source])
    else:
        builder.emit(node, builder.elementwise(name, OpType.ACT, _shape(node), [source], block, exit_key))


def _module_node(
    builder: WorkloadBuilder, sub: nn.Module, node: fx.Node, name: str, block: str, exit_key: str | None
) -> None:
    # cast: None only for a call without input nodes; the conv, linear and pooling branches that read it have one
    source = cast(fx.Node, node.all_input_nodes[0] if node.all_input_nodes else None)
    if isinstance(sub, nn.Conv2d):
        if _pair(sub.dilation) != (1, 1):
            raise ConfigError(f"module {node.target!r}: dilated convolutions are not supported; use dilation=1")
        if isinstance(sub.padding, str):
            raise ConfigError(f"module {node.target!r}: padding={sub.padding!r}; give explicit integer padding")
        in_shape, out_shape = _shape(source), _shape(node)
        kernel = _pair(sub.kernel_size)
        layer = builder.make(
            name, conv_op(sub.in_channels, sub.out_channels, sub.groups, kernel),
            K=sub.out_channels, C=sub.in_channels, OY=out_shape[2], OX=out_shape[3], FY=kernel[0], FX=kernel[1],
            B=in_shape[0], groups=sub.groups, stride=_pair(sub.stride), padding=_pair(sub.padding),
            inputs=[source], block=block, exit=exit_key,
        )
        builder.emit(node, layer)
    elif isinstance(sub, nn.Linear):
        in_shape = _shape(source)
        batch = 1
        for dim in in_shape[:-1]:
            batch *= dim
        layer = builder.make(
            name, OpType.FC, K=sub.out_features, C=sub.in_features, B=batch,
            inputs=[source], block=block, exit=exit_key,
        )
        builder.emit(node, layer)
    elif isinstance(sub, POOL_MODULES):
        pool_kernel: tuple[int, int] | None
        pool_stride: tuple[int, int] | None
        if isinstance(sub, ADAPTIVE_POOLS):
            pool_kernel = pool_stride = None
            padding = (0, 0)
        else:
            pool_kernel = _pair(sub.kernel_size)
            pool_stride = _pair(sub.stride if sub.stride is not None else sub.kernel_size)
            padding = _pair(sub.padding)
        builder.emit(
            node, builder.pool(name, _shape(source), _shape(node), pool_kernel, pool_stride, padding, [source], block, exit_key)
        )
    elif isinstance(sub, ACTIVATION_MODULES):
        _activation(builder, node, name, block, exit_key)
    elif isinstance(sub, FREE_MODULES):
        builder.alias(node, node.all_input_nodes)
    else:
        raise ConfigError(
            f"module {node.target!r} ({type(sub).__name__}): not supported by the workload tracer; supported: {SUPPORTED}"
        )


def _function_node(
    builder: WorkloadBuilder, node: fx.Node, sources: list[fx.Node], base: str, block: str, exit_key: str | None
) -> None:
    """``base`` is the enclosing module's layer name ('' at the top level, where the fx node name is used)."""
    target = node.target
    is_method = node.op == "call_method"

    def named(kind: str) -> str:
        return f"{base}.{kind}" if base else node.name

    tensor_args = [a for a in node.args if isinstance(a, fx.Node)]
    if (not is_method and target in ADD_FUNCTIONS) or (is_method and target in ADD_METHODS):
        if len(tensor_args) >= 2:
            builder.emit(node, builder.elementwise(named("add"), OpType.ADD, _shape(node), tensor_args, block, exit_key))
        else:
            builder.alias(node, sources)
    elif (not is_method and target in ACTIVATION_FUNCTIONS) or (is_method and target in ACTIVATION_METHODS):
        _activation(builder, node, named("act"), block, exit_key)
    elif not is_method and target in POOL_FUNCTIONS:
        source = tensor_args[0]
        if target in (F.adaptive_avg_pool2d, F.adaptive_max_pool2d):
            kernel = stride = None
            padding = (0, 0)
        else:
            kernel = _pair(_arg(node, 1, "kernel_size"))
            stride_arg = _arg(node, 2, "stride")
            stride = _pair(stride_arg) if stride_arg not in (None, [], ()) else kernel
            padding = _pair(_arg(node, 3, "padding", 0))
        builder.emit(
            node, builder.pool(named("pool"), _shape(source), _shape(node), kernel, stride, padding, [source], block, exit_key)
        )
    elif target is torch.mean or (is_method and target == "mean"):
        source = tensor_args[0]
        in_shape, out_shape = _shape(source), _shape(node)
        if len(in_shape) != 4 or out_shape[:2] != in_shape[:2]:
            raise ConfigError(f"torch node {node.name!r}: mean is supported only over H and W (global pooling)")
        builder.emit(
            node, builder.pool(named("pool"), in_shape, out_shape, None, None, (0, 0), [source], block, exit_key)
        )
    elif (not is_method and target in FREE_FUNCTIONS) or (is_method and target in FREE_METHODS):
        builder.alias(node, sources)
    else:
        what = target if is_method else getattr(target, "__name__", str(target))
        raise ConfigError(
            f"torch node {node.name!r} ({what}): not supported by the workload tracer; supported: {SUPPORTED}"
        )
