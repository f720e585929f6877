"""Shared building blocks of the backbones: block metadata, channel rounding, conv-BN-activation."""

from __future__ import annotations

import math
import types
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class BlockInfo:
    """Static description of one backbone stage: its name, output channels and spatial stride."""

    name: str
    out_channels: int
    stride: int


class _ScaleGradient(torch.autograd.Function):
    """Identity forward; multiplies the gradient by a constant in backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.scale, None


def scale_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``x`` unchanged in forward; its gradient times ``scale`` in backward (no-op at 1, detached at 0)."""
    if scale == 1.0:
        return x
    return x.detach() if scale == 0.0 else _ScaleGradient.apply(x, scale)


def float32_under_cpu_autocast(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``fn(x)``, but in float32 with autocast off when CPU autocast is on (see keep_depthwise_in_float)."""
    if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        with torch.autocast("cpu", enabled=False):
            return fn(x.float())
    return fn(x)


def _float_depthwise_forward(self: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    return float32_under_cpu_autocast(lambda t: self._conv_forward(t, self.weight, self.bias), x)


def keep_depthwise_in_float(model: nn.Module) -> int:
    """Run every depthwise conv of ``model`` in float32 under CPU autocast; returns how many.

    PyTorch's bf16 CPU depthwise kernels run 1.9-7x slower than the float32 ones here
    (``benchmarks/depthwise_precision.py``). The modules stay plain ``nn.Conv2d`` (only this instance's
    forward changes), so tracing and quantization see them as before; the next layer's autocast casts the
    float32 output as usual. For training-speed only.
    """
    count = 0
    for module in model.modules():
        if type(module) is nn.Conv2d and module.groups > 1 and module.groups == module.in_channels:
            module.forward = types.MethodType(_float_depthwise_forward, module)  # type: ignore[method-assign]
            # read by wrappers that call F.conv2d themselves (QAT); setattr: nn.Module types attributes as Tensor/Module
            setattr(module, "float_under_autocast", True)
            count += 1
    return count


def round_channels(channels: float, divisor: int = 8) -> int:
    """Round a (width-scaled) channel count to the nearest multiple of ``divisor``.

    The result is at least ``divisor`` and never more than 10% below ``channels`` (the usual
    MobileNet width-multiplier rule).
    """
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * channels:
        rounded += divisor
    return rounded


def conv_bn_act(
    in_channels: int,
    out_channels: int,
    kernel: int,
    stride: int = 1,
    groups: int = 1,
    activation: type[nn.Module] | None = nn.ReLU6,
) -> nn.Sequential:
    """Conv (same padding, no bias) -> BatchNorm -> optional activation."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if activation is not None:
        layers.append(activation(inplace=True) if activation in (nn.ReLU, nn.ReLU6) else activation())
    return nn.Sequential(*layers)


def init_weights(module: nn.Module) -> None:
    """He et al. (2015) normal init (fan-out, ReLU gain) for every conv; BatchNorm scale 1 and shift 0.

    The usual init of CIFAR ResNets and MobileNetV2: it gives conv weights ~2.4x the norm of PyTorch's
    default, hence a smaller effective step size early on, which matters in short schedules.
    Linear layers keep PyTorch's default.
    """
    for sub in module.modules():
        if isinstance(sub, nn.Conv2d):
            nn.init.kaiming_normal_(sub.weight, mode="fan_out", nonlinearity="relu")
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
        elif isinstance(sub, nn.BatchNorm2d):
            nn.init.ones_(sub.weight)
            nn.init.zeros_(sub.bias)


class Backbone(nn.Module):
    """A stem followed by an ordered list of blocks; heads may be mounted after any block.

    Subclasses set ``stem``, ``blocks`` (an ``nn.ModuleList``), ``stem_info`` and ``block_infos``.
    Every stage uses odd kernels with padding k//2, so a stage of stride s maps H to ceil(H / s).
    """

    stem: nn.Module
    blocks: nn.ModuleList
    stem_info: BlockInfo
    block_infos: tuple[BlockInfo, ...]
    in_channels: int

    @property
    def num_blocks(self) -> int:
        """Number of blocks (mounting points)."""
        return len(self.blocks)

    def block_shapes(self, input_size: int | tuple[int, int]) -> list[tuple[int, int, int]]:
        """(channels, height, width) of each block's output for an input of ``input_size``."""
        height, width = (input_size, input_size) if isinstance(input_size, int) else input_size
        height, width = math.ceil(height / self.stem_info.stride), math.ceil(width / self.stem_info.stride)
        shapes = []
        for info in self.block_infos:
            height, width = math.ceil(height / info.stride), math.ceil(width / info.stride)
            shapes.append((info.out_channels, height, width))
        return shapes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features after the last block."""
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return x
