"""Fake quantization: values on the 2^b grid, STE gradient, per-part bit widths, frozen observers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from exitspace.models import build_eenn
from exitspace.train.quant import (
    ActivationFakeQuant, QuantConv2d, QuantLinear, WeightFakeQuant, fake_quantize, quantize_model,
    quantized_layer_bits, set_observers,
)


@pytest.mark.parametrize("bits", [8, 4])
def test_weights_on_symmetric_per_channel_grid(bits: int) -> None:
    torch.manual_seed(0)
    weight = torch.randn(6, 4, 3, 3) * torch.linspace(0.1, 3, 6).view(-1, 1, 1, 1)
    fq = WeightFakeQuant(bits)
    out = fq(weight)
    scale = fq.scale(weight)
    levels = out / scale
    assert torch.allclose(levels, levels.round(), atol=1e-4)
    assert levels.abs().max() <= 2 ** (bits - 1) - 1 + 1e-4
    assert torch.allclose(out.abs().flatten(1).amax(1), weight.abs().flatten(1).amax(1), rtol=1e-5)
    for channel in range(6):
        assert out[channel].unique().numel() <= 2**bits - 1
    # agrees with PyTorch's reference kernel for the same qparams
    reference = torch.fake_quantize_per_channel_affine(
        weight, scale.flatten(), torch.zeros(6, dtype=torch.int32), 0, -(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1
    )
    assert torch.allclose(out, reference, atol=1e-6)


@pytest.mark.parametrize("bits", [8, 4])
def test_activations_on_affine_grid_with_exact_zero(bits: int) -> None:
    fq = ActivationFakeQuant(bits)
    x = torch.linspace(-1.0, 3.0, 1000)
    out = fq(x)
    scale, zero_point = fq.qparams()
    codes = out / scale + zero_point
    assert torch.allclose(codes, codes.round(), atol=1e-3)
    assert codes.min() >= -1e-3 and codes.max() <= 2**bits - 1 + 1e-3
    assert out.unique().numel() <= 2**bits
    assert fq(torch.zeros(3)).abs().max() == 0
    assert (out - x).abs().max() <= scale / 2 + 1e-6


def test_straight_through_gradient_with_clipping_mask() -> None:
    x = torch.tensor([-3.0, -0.4, 0.0, 0.3, 0.9, 5.0], requires_grad=True)
    out = fake_quantize(x, torch.tensor(0.1), torch.tensor(10.0), 0, 15)  # representable range [-1.0, 0.5]
    out.backward(torch.ones_like(out))
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0, 0.0]


def test_observer_moves_in_training_and_freezes() -> None:
    fq = ActivationFakeQuant(8)
    fq(torch.tensor([0.0, 1.0]))
    assert fq.max_val.item() == pytest.approx(1.0)
    fq(torch.tensor([0.0, 2.0]))
    assert 1.0 < fq.max_val.item() < 1.1
    set_observers(nn.Sequential(fq), False)
    before = fq.max_val.clone()
    fq(torch.tensor([0.0, 100.0]))
    assert torch.equal(fq.max_val, before)


def test_quantize_model_bits_per_part_and_float_passthrough() -> None:
    torch.manual_seed(0)
    model = build_eenn(backbone="small_cnn", head_types=["pool4_fc1"], input_size=16)
    x = torch.randn(4, 3, 16, 16)
    model.eval()
    reference = model(x)
    quantize_model(model, (8, 4))
    bits = quantized_layer_bits(model)
    assert bits and all(b == 4 for name, b in bits.items() if name.startswith("heads."))
    assert all(b == 8 for name, b in bits.items() if name.startswith("backbone."))
    assert sum(isinstance(m, QuantConv2d) for m in model.modules()) == 5  # stem + 4 blocks
    assert sum(isinstance(m, QuantLinear) for m in model.modules()) == len(model.head_keys)
    out = model(x)
    assert out.shape == reference.shape and not torch.equal(out, reference)
    float_heads = build_eenn(backbone="small_cnn", head_types=["pool4_fc1"], input_size=16)
    quantize_model(float_heads, (8, 32))
    assert all(name.startswith("backbone.") for name in quantized_layer_bits(float_heads))


def test_eight_bits_is_close_four_bits_further() -> None:
    torch.manual_seed(0)
    errors = {}
    for bits in (8, 4):
        torch.manual_seed(0)
        model = build_eenn(backbone="small_cnn", head_types=["pool4_fc1"], input_size=16).eval()
        x = torch.randn(8, 3, 16, 16)
        with torch.no_grad():
            reference = model(x)
            quantize_model(model, (bits, bits))
            errors[bits] = float((model(x) - reference).abs().mean() / reference.abs().mean())
    assert errors[8] < 0.05 and errors[8] * 4 < errors[4]


def test_quantized_depthwise_convs_stay_float_under_autocast() -> None:
    from exitspace.models.common import keep_depthwise_in_float

    model = build_eenn(backbone="mobilenetv2_cifar", width=0.25, head_types=["pool4_fc1"], candidates=[])
    keep_depthwise_in_float(model)
    quantize_model(model, (8, 8))
    wrapped = [m for m in model.modules() if isinstance(m, QuantConv2d)]
    depthwise = next(m for m in wrapped if m.conv.groups > 1)
    pointwise = next(m for m in wrapped if m.conv.groups == 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert depthwise(torch.randn(1, depthwise.conv.in_channels, 8, 8)).dtype == torch.float32
        assert pointwise(torch.randn(1, pointwise.conv.in_channels, 8, 8)).dtype == torch.bfloat16
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 1, 10)


def test_observer_first_batch_sets_the_range_then_averages() -> None:
    fq = ActivationFakeQuant(8, momentum=0.5)
    fq(torch.tensor([-1.0, 3.0]))
    assert (fq.min_val.item(), fq.max_val.item()) == (-1.0, 3.0)
    fq(torch.tensor([-3.0, 1.0]))
    assert (fq.min_val.item(), fq.max_val.item()) == (-2.0, 2.0)


def test_qat_training_forward_traces_without_graph_breaks() -> None:
    """``runtime.compile_qat`` pays only if dynamo sees the fake-quantized EENN as one graph."""
    torch.manual_seed(0)
    model = quantize_model(build_eenn(backbone="small_cnn", head_types=["pool4_fc1"]), (8, 4)).train()
    x = torch.randn(4, 3, 32, 32)
    model(x)  # observers initialised, as after calibration
    explained = torch._dynamo.explain(model)(x)
    assert explained.graph_break_count == 0, explained.break_reasons
    fresh = quantize_model(build_eenn(backbone="small_cnn", head_types=["pool4_fc1"]), (8, 8)).train()
    assert torch._dynamo.explain(fresh)(x).graph_break_count == 0  # uninitialised observers too
