"""Fake quantization as the exported graph runs it: QuantizeLinear -> DequantizeLinear at the layer's bits.

The QAT modules (``exitspace.train.quant``) compute their scales from running statistics and the current
weights; for export they are frozen into :class:`ExportQuantConv2d` / :class:`ExportQuantLinear`, which
call one custom op, ``exitspace::quantize_dequantize``. In eager mode the op is ``train.quant.fake_quantize``
(the arithmetic QAT trained with); ``torch.onnx.export`` translates it (:data:`ONNX_TRANSLATIONS`) into
ONNX QuantizeLinear + DequantizeLinear with an integer type of the layer's width: int8/uint8 at 8 bits,
int4/uint4 at 4 (opset 21), and for 2, 3, 5, 6 or 7 bits int8/uint8 with a Clip to the range between them.
Weights: per output channel, symmetric, narrow range; activations: per tensor, affine, [0, 2^b - 1].
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from exitspace.train.quant import QuantConv2d, QuantLinear, fake_quantize

OPSET = 21  # int4 / uint4 QuantizeLinear (the first opset with them)


@torch.library.custom_op("exitspace::quantize_dequantize", mutates_args=())
def quantize_dequantize(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, axis: int, qmin: int,
                        qmax: int) -> torch.Tensor:
    """``fake_quantize`` with a per-tensor (0-d) or per-channel (1-d, along ``axis``) scale and zero point."""
    if scale.dim() == 0:
        return fake_quantize(x, scale, zero_point, qmin, qmax)
    shape = [1] * x.dim()
    shape[axis] = -1
    return fake_quantize(x, scale.reshape(shape), zero_point.reshape(shape), qmin, qmax)


@quantize_dequantize.register_fake
def _(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, axis: int, qmin: int, qmax: int) -> torch.Tensor:
    return torch.empty_like(x)


def _onnx_quantize_dequantize(x: Any, scale: Any, zero_point: Any, axis: int, qmin: int, qmax: int) -> Any:
    """The ONNX translation (onnxscript, opset 21): QuantizeLinear / DequantizeLinear in the narrowest integer type."""
    from onnxscript import ir
    from onnxscript import opset21

    op: Any = opset21  # onnxscript's op signatures are typed for its own tensor types, not the exporter's values

    signed = qmin < 0
    exact = {(0, 15): ir.DataType.UINT4, (-7, 7): ir.DataType.INT4, (-8, 7): ir.DataType.INT4,
             (0, 255): ir.DataType.UINT8, (-127, 127): ir.DataType.INT8, (-128, 127): ir.DataType.INT8}
    dtype = exact.get((qmin, qmax), ir.DataType.INT8 if signed else ir.DataType.UINT8)
    zp = op.Cast(zero_point, to=dtype)
    quantized = op.QuantizeLinear(x, scale, zp, axis=axis)
    if (qmin, qmax) not in exact:  # 2, 3, 5, 6, 7 bits: saturate to the layer's range inside the 8-bit type
        quantized = op.Clip(quantized, op.Cast(qmin, to=dtype), op.Cast(qmax, to=dtype))
    return op.DequantizeLinear(quantized, scale, zp, axis=axis)


ONNX_TRANSLATIONS: dict[Callable[..., Any], Callable[..., Any]] = {
    torch.ops.exitspace.quantize_dequantize.default: _onnx_quantize_dequantize}


class _FrozenQuant(nn.Module):
    """Frozen input and weight quantization parameters of one QAT layer (buffers, exported as initializers)."""

    input_scale: torch.Tensor
    input_zero_point: torch.Tensor
    weight_scale: torch.Tensor
    weight_zero_point: torch.Tensor

    def _freeze(self, quantized: QuantConv2d | QuantLinear, weight: torch.Tensor) -> None:
        self.bits = quantized.bits
        scale, zero_point = quantized.input_fq.qparams()
        self.input_qmin, self.input_qmax = quantized.input_fq.qmin, quantized.input_fq.qmax
        self.weight_qmin, self.weight_qmax = quantized.weight_fq.qmin, quantized.weight_fq.qmax
        self.register_buffer("input_scale", scale.detach().float().reshape(()))
        self.register_buffer("input_zero_point", zero_point.detach().to(torch.int32).reshape(()))
        weight_scale = quantized.weight_fq.scale(weight).detach().float().reshape(-1)
        self.register_buffer("weight_scale", weight_scale)
        self.register_buffer("weight_zero_point", torch.zeros_like(weight_scale, dtype=torch.int32))

    def quantized_input(self, x: torch.Tensor) -> torch.Tensor:
        return quantize_dequantize(x, self.input_scale, self.input_zero_point, 1, self.input_qmin, self.input_qmax)

    def quantized_weight(self, weight: torch.Tensor) -> torch.Tensor:
        return quantize_dequantize(weight, self.weight_scale, self.weight_zero_point, 0, self.weight_qmin,
                                   self.weight_qmax)


class ExportQuantConv2d(_FrozenQuant):
    """A QAT convolution with frozen scales: quantize-dequantize input and weight, then convolve in float."""

    def __init__(self, quantized: QuantConv2d) -> None:
        super().__init__()
        self.conv = quantized.conv
        self._freeze(quantized, quantized.conv.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv
        return F.conv2d(self.quantized_input(x), self.quantized_weight(c.weight), c.bias, c.stride, c.padding,
                        c.dilation, c.groups)


class ExportQuantLinear(_FrozenQuant):
    """A QAT linear layer with frozen scales: quantize-dequantize input and weight, then multiply in float."""

    def __init__(self, quantized: QuantLinear) -> None:
        super().__init__()
        self.linear = quantized.linear
        self._freeze(quantized, quantized.linear.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.quantized_input(x), self.quantized_weight(self.linear.weight), self.linear.bias)


def freeze_quantization(module: nn.Module) -> int:
    """Replace every QAT layer below ``module`` by its frozen export form, in place; returns how many."""
    count = 0
    for name, child in module.named_children():
        if isinstance(child, QuantConv2d):
            setattr(module, name, ExportQuantConv2d(child))
            count += 1
        elif isinstance(child, QuantLinear):
            setattr(module, name, ExportQuantLinear(child))
            count += 1
        else:
            count += freeze_quantization(child)
    return count


def strip_quantization(module: nn.Module) -> int:
    """Replace every QAT or frozen layer below ``module`` by its plain float layer, in place (the structure
    the workload reads); returns how many."""
    count = 0
    for name, child in module.named_children():
        if isinstance(child, (QuantConv2d, ExportQuantConv2d)):
            setattr(module, name, child.conv)
            count += 1
        elif isinstance(child, (QuantLinear, ExportQuantLinear)):
            setattr(module, name, child.linear)
            count += 1
        else:
            count += strip_quantization(child)
    return count
