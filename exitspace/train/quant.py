"""Quantization-aware training: fake quantization of weights and activations, per precision pair.

Choice: our own small fake-quant modules (``WeightFakeQuant``, ``ActivationFakeQuant`` inside
``QuantConv2d`` / ``QuantLinear``), about a hundred lines, rather than the alternatives:

- ``torch.ao.quantization.FakeQuantize`` (tried first): its kernels run in float32 only, so under
  the bf16 autocast that makes CPU training ~3-4x faster here every quantized layer round-trips
  bf16 -> fp32 -> bf16 in forward and backward; a ResNet-20 EENN QAT step ran ~7x slower than the
  float step (24 vs 172 img/s, same load). Plain tensor ops stay in the input dtype.
- torch.ao's eager/FX ``prepare_qat`` flows fuse modules and assign one qconfig per module type;
  different bit widths for backbone and exit heads with the EENN's multi-output forward fit badly.
- Brevitas would be a new dependency for what is a few dozen lines here.

The arithmetic follows torch.ao's conventions (symmetric narrow-range per-channel weights, affine
per-tensor activations whose range contains zero, STE with clipping mask), and the tests check it.

Scheme (each conv / linear layer takes its part's precision, as the hardware model assumes):

- weights: per output channel, symmetric, narrow range [-(2^(b-1)-1), 2^(b-1)-1], scale from the
  current weights at every step;
- input activations: per tensor, affine, [0, 2^b-1], scale from a moving average of min/max;
- BatchNorm: statistics frozen during QAT (BN layers kept in eval mode), affine parameters train;
  BN folds into the preceding conv at deployment;
- 32 bits means "not quantized".
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from exitspace.models.common import float32_under_cpu_autocast
from exitspace.precision import FLOAT_BITS, PrecisionPair

def fake_quantize(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, qmin: int, qmax: int) -> torch.Tensor:
    """``(clamp(round(x / scale) + zp, qmin, qmax) - zp) * scale`` in ``x``'s dtype.

    Gradient: straight-through estimator, 1 where ``x`` falls inside the clamp range, 0 outside
    (rounding is bypassed with the detach trick; the clamp supplies the mask). ``scale`` and
    ``zero_point`` broadcast against ``x`` and get no gradient.
    """
    scale = scale.detach().to(x.dtype)
    zero_point = zero_point.detach().to(x.dtype)
    v = x / scale + zero_point
    v = v + (torch.round(v) - v).detach()
    return (torch.clamp(v, qmin, qmax) - zero_point) * scale


class WeightFakeQuant(nn.Module):
    """Per-output-channel symmetric fake quantization; scale = max|w| / (2^(b-1) - 1) from the current weights."""

    def __init__(self, bits: int) -> None:
        super().__init__()
        self.bits = bits
        self.qmax = 2 ** (bits - 1) - 1
        self.qmin = -self.qmax

    def scale(self, weight: torch.Tensor) -> torch.Tensor:
        """Per-channel scale, shaped to broadcast over ``weight``."""
        absmax = weight.detach().abs().flatten(1).amax(1).float().clamp_min(1e-8)
        return (absmax / self.qmax).view(-1, *([1] * (weight.dim() - 1)))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        scale = self.scale(weight)
        return fake_quantize(weight, scale, torch.zeros_like(scale), self.qmin, self.qmax)


class ActivationFakeQuant(nn.Module):
    """Per-tensor affine fake quantization on [0, 2^b - 1]; range = moving average of batch min / max.

    The range always contains 0 (so zero is exact). The observer updates only while ``observe`` is
    True (training); freeze it for evaluation with :func:`set_observers`.
    """

    min_val: torch.Tensor  # buffers, registered in __init__
    max_val: torch.Tensor
    initialized: torch.Tensor

    def __init__(self, bits: int, momentum: float = 0.01) -> None:
        super().__init__()
        self.bits, self.momentum = bits, momentum
        self.qmin, self.qmax = 0, 2**bits - 1
        self.observe = True
        self.register_buffer("min_val", torch.zeros(()))
        self.register_buffer("max_val", torch.zeros(()))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Fold a batch's min / max into the running range (the first batch sets it).

        Branch-free on the ``initialized`` flag, so ``torch.compile`` traces QAT steps without graph breaks.
        """
        low, high = torch.aminmax(x.detach())
        low, high = low.float(), high.float()
        first = ~self.initialized
        self.min_val.copy_(torch.where(first, low, torch.lerp(self.min_val, low, self.momentum)))
        self.max_val.copy_(torch.where(first, high, torch.lerp(self.max_val, high, self.momentum)))
        self.initialized.fill_(True)

    def qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, zero point) from the running range."""
        low, high = self.min_val.clamp(max=0.0), self.max_val.clamp(min=0.0)
        scale = ((high - low) / (self.qmax - self.qmin)).clamp_min(1e-8)
        zero_point = torch.clamp(torch.round(self.qmin - low / scale), self.qmin, self.qmax)
        return scale, zero_point

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.observe or not bool(self.initialized):  # the flag is read only with observers off (evaluation)
            self.update(x)
        scale, zero_point = self.qparams()
        return fake_quantize(x, scale, zero_point, self.qmin, self.qmax)


class QuantConv2d(nn.Module):
    """A Conv2d whose input and weight are fake-quantized to ``bits``; shares the original parameters."""

    def __init__(self, conv: nn.Conv2d, bits: int) -> None:
        super().__init__()
        self.conv = conv
        self.bits = bits
        self.input_fq = ActivationFakeQuant(bits)
        self.weight_fq = WeightFakeQuant(bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if getattr(self.conv, "float_under_autocast", False):  # see models.common.keep_depthwise_in_float
            return float32_under_cpu_autocast(self._quantized_conv, x)
        return self._quantized_conv(x)

    def _quantized_conv(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv
        return F.conv2d(self.input_fq(x), self.weight_fq(c.weight), c.bias, c.stride, c.padding, c.dilation, c.groups)


class QuantLinear(nn.Module):
    """A Linear whose input and weight are fake-quantized to ``bits``; shares the original parameters."""

    def __init__(self, linear: nn.Linear, bits: int) -> None:
        super().__init__()
        self.linear = linear
        self.bits = bits
        self.input_fq = ActivationFakeQuant(bits)
        self.weight_fq = WeightFakeQuant(bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.input_fq(x), self.weight_fq(self.linear.weight), self.linear.bias)


def _swap(module: nn.Module, bits: int) -> int:
    """Replace every Conv2d / Linear below ``module`` in place; returns how many were replaced."""
    count = 0
    for name, child in module.named_children():
        if isinstance(child, nn.Conv2d) and type(child) is nn.Conv2d:
            setattr(module, name, QuantConv2d(child, bits))
            count += 1
        elif isinstance(child, nn.Linear) and type(child) is nn.Linear:
            setattr(module, name, QuantLinear(child, bits))
            count += 1
        elif not isinstance(child, (QuantConv2d, QuantLinear)):
            count += _swap(child, bits)
    return count


def default_is_head(name: str) -> bool:
    """Submodules named ``heads...`` belong to the exits; everything else is backbone."""
    return name.split(".")[0] == "heads"


def quantize_model(
    model: nn.Module, pair: PrecisionPair, is_head: Callable[[str], bool] = default_is_head
) -> nn.Module:
    """Insert fake quantization in place: backbone layers at ``pair[0]`` bits, exit heads at ``pair[1]``.

    Top-level children are classified by ``is_head(name)``. Returns the model.
    """
    for name, child in list(model.named_children()):
        bits = pair[1] if is_head(name) else pair[0]
        if bits == FLOAT_BITS:
            continue
        if isinstance(child, (nn.Conv2d, nn.Linear)):
            setattr(model, name, QuantConv2d(child, bits) if isinstance(child, nn.Conv2d) else QuantLinear(child, bits))
        else:
            _swap(child, bits)
    return model


def set_observers(model: nn.Module, enabled: bool) -> None:
    """Turn activation observers on (ranges follow the data in training) or off (ranges frozen)."""
    for module in model.modules():
        if isinstance(module, ActivationFakeQuant):
            module.observe = enabled


def freeze_batchnorm(model: nn.Module) -> None:
    """Put every BatchNorm in eval mode (running statistics frozen); call after ``model.train()``."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


def quantized_layer_bits(model: nn.Module) -> dict[str, int]:
    """Name -> bits of every fake-quantized layer (for reports and tests)."""
    return {name: m.bits for name, m in model.named_modules() if isinstance(m, (QuantConv2d, QuantLinear))}
