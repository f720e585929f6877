"""Backbones, exit heads and the EENN supernet."""

from __future__ import annotations

import pytest
import torch

from exitspace.errors import ConfigError, ExitspaceError
from exitspace.models import (
    BACKBONES,
    EENNSpec,
    build_backbone,
    build_eenn,
    build_head,
    build_plain,
    exit_label,
    round_channels,
)
from exitspace.models.heads import pooled_size
from exitspace.models.mobilenetv2 import MOBILENETV2_CIFAR_BLOCKS


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_mobilenetv2_cifar_parameter_count_matches_paper() -> None:
    assert _count(build_backbone("mobilenetv2_cifar")) == 1_388_288


def test_mobilenetv2_cifar_layout_width_one_is_the_table() -> None:
    backbone = build_backbone("mobilenetv2_cifar")
    shapes = backbone.block_shapes(32)
    expected = [(c, 32 // (1 if i < 5 else 2 if i < 9 else 4)) for i, (c, _, _, _) in enumerate(MOBILENETV2_CIFAR_BLOCKS)]
    assert [(c, h) for c, h, _ in shapes] == expected
    kernels = [block.depthwise[0].kernel_size[0] for block in backbone.blocks]
    assert kernels == [3] * 7 + [7] * 5
    assert backbone.blocks[0].expand is None and backbone.blocks[1].expand is not None


def test_resnet_parameter_counts_follow_he_et_al() -> None:
    # Option A shortcuts: 0.27 M / 0.46 M / 0.85 M including the 64 -> 10 classifier (650 parameters).
    assert _count(build_backbone("resnet20")) + 650 == pytest.approx(0.27e6, rel=0.01)
    assert _count(build_backbone("resnet32")) + 650 == pytest.approx(0.46e6, rel=0.01)
    assert _count(build_backbone("resnet56")) + 650 == pytest.approx(0.85e6, rel=0.01)
    assert _count(build_backbone("resnet20", shortcut="B")) > _count(build_backbone("resnet20"))


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_block_shapes_and_heads_at_every_mounting_point(name: str) -> None:
    backbone_blocks = BACKBONES[name].num_blocks
    spec = EENNSpec(
        backbone=name,
        width=0.5,
        candidates=list(range(backbone_blocks - 1)),
        head_types=["pool4_fc1", "pool4_fc2", "gap_fc"],
    )
    model = build_eenn(spec).eval()
    seen: list[tuple[int, ...]] = []
    hooks = [b.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape[1:]))) for b in model.backbone.blocks]
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    for hook in hooks:
        hook.remove()
    assert seen == [tuple(s) for s in model.backbone.block_shapes(32)]
    assert out.shape == (2, 3 * backbone_blocks, 10)
    assert len(model.head_keys) == len(model.head_blocks) == 3 * backbone_blocks
    assert model.head_blocks[-1] == backbone_blocks - 1


def test_default_paper_labels_and_keys() -> None:
    spec = EENNSpec()
    assert [label for label, _ in spec.exits] == list("ABCDEFGHIJK")
    assert [block for _, block in spec.exits] == [*range(10), 11]
    assert spec.head_keys[:2] == ["A:pool4_fc1", "A:pool4_fc2"]
    assert spec.head_keys[-1] == "K:pool4_fc2" and spec.head_blocks[-1] == 11
    subset = EENNSpec(candidates=[5, 2])
    assert subset.exits == [("A", 2), ("B", 5), ("C", 11)]
    assert [exit_label(i) for i in (0, 25, 26, 27)] == ["A", "Z", "AA", "AB"]


def test_fashion_mnist_single_channel_28px() -> None:
    model = build_eenn(in_channels=1, input_size=28, width=0.25, candidates=[8, 9]).eval()
    with torch.no_grad():
        out = model(torch.randn(3, 1, 28, 28))
    assert out.shape == (3, len(model.head_keys), 10)
    # Block 9 output is 7x7: ceil-mode pool with kernel 2 gives 4x4.
    head = model.heads["B_pool4_fc1"]
    assert head.fc1.in_features == model.backbone.block_infos[9].out_channels * 16


def test_pool4_head_shapes() -> None:
    assert pooled_size(32) == (8, 4)
    assert pooled_size(16) == (4, 4)
    assert pooled_size(7) == (2, 4)
    assert pooled_size(4) == (1, 4)
    assert pooled_size(2) == (1, 2)
    head = build_head("pool4_fc2", 96, 16, 16, 10)
    assert (head.fc1.in_features, head.fc1.out_features, head.fc2.out_features) == (96 * 16, 96 * 8, 10)
    assert build_head("pool4_fc1", 8, 2, 2, 10)(torch.randn(1, 8, 2, 2)).shape == (1, 10)
    assert build_head("gap_fc", 8, 5, 5, 7)(torch.randn(4, 8, 5, 5)).shape == (4, 7)


def test_plain_net_is_backbone_plus_final_head() -> None:
    net = build_plain({"backbone": "small_cnn"}, head_type="gap_fc").eval()
    assert net.head_key == "D:gap_fc"
    with torch.no_grad():
        assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_width_multiplier_rounds_to_multiples_of_eight() -> None:
    assert [round_channels(c * 0.5) for c in (32, 16, 24, 96, 160, 320)] == [16, 8, 16, 48, 80, 160]
    assert all(info.out_channels % 8 == 0 for info in build_backbone("mobilenetv2_cifar", width=0.35).block_infos)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"backbone": "vgg"}, "model.backbone: backbone 'vgg': unknown"),
        ({"head_types": ["pool2_fc"]}, "model.head_types: head type 'pool2_fc': unknown"),
        ({"final_head_types": ["gap"]}, "model.final_head_types: head type 'gap': unknown"),
        ({"candidates": [11]}, "model.candidates: block 11 is out of range"),
        ({"candidates": [-1]}, "out of range"),
        ({"candidates": [1, 1]}, "lists a block twice"),
        ({"width": 0}, "model.width"),
        ({"colour": "red"}, "model.colour"),
        ({"backbone": "resnet20", "candidates": [8]}, "0..7"),
    ],
)
def test_spec_validation_errors_are_one_line(data: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        EENNSpec.parse(data)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_unknown_backbone_option_is_a_user_error() -> None:
    with pytest.raises(ExitspaceError, match="unknown option"):
        build_backbone("small_cnn", depth=3)
    with pytest.raises(ExitspaceError, match="shortcut"):
        build_backbone("resnet20", shortcut="C")


def test_subnet_shares_weights_and_keeps_paper_letters() -> None:
    supernet = build_eenn(width=0.25).eval()
    design = supernet.subnet(["I:pool4_fc2", "D:pool4_fc1", "K:pool4_fc1"])
    assert design.head_keys == ["D:pool4_fc1", "I:pool4_fc2", "K:pool4_fc1"]
    assert design.head_blocks == [3, 8, 11]
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        full, part = supernet(x), design(x)
    columns = [supernet.head_keys.index(key) for key in design.head_keys]
    assert torch.allclose(part, full[:, columns])
    assert design.heads["D_pool4_fc1"] is supernet.heads["D_pool4_fc1"]
    early = supernet.subnet(["B:pool4_fc1"])
    assert early(x).shape == (2, 1, 10)
    assert supernet.final_exit().head_keys == ["K:pool4_fc1", "K:pool4_fc2"]  # every head type at the last block
    with pytest.raises(ConfigError, match="Z:pool4_fc1"):
        supernet.subnet(["Z:pool4_fc1"])


def test_shared_pooling_changes_nothing_but_speed() -> None:
    torch.manual_seed(0)
    model = build_eenn(backbone="resnet20", head_types=["pool4_fc1", "pool4_fc2", "gap_fc"])
    x = torch.randn(2, 3, 32, 32)
    results = []
    for share in (False, True):
        model.zero_grad()
        model.share_pooling = share
        out = model(x)
        out.square().sum().backward()
        results.append((out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (out_a, grads_a), (out_b, grads_b) = results
    assert torch.equal(out_a, out_b)
    for name, grad in grads_a.items():  # equal up to summation order
        assert (grad - grads_b[name]).abs().max() <= 1e-5 * max(1.0, grad.abs().max().item()), name


def test_traced_workload_keeps_one_pool_per_head() -> None:
    from exitspace.workload.from_torch import workload_from_torch

    model = build_eenn(backbone="resnet20", head_types=["pool4_fc1", "pool4_fc2"], candidates=[0])
    layers = workload_from_torch(model, torch.randn(1, 3, 32, 32)).layers
    pools = sorted(layer.exit for layer in layers if layer.name.endswith(".pool"))
    assert pools == ["A:pool4_fc1", "A:pool4_fc2", "B:pool4_fc1", "B:pool4_fc2"]  # sharing is off by default


def test_depthwise_convs_kept_in_float_under_autocast() -> None:
    from exitspace.models.common import keep_depthwise_in_float

    torch.manual_seed(0)
    model = build_eenn(backbone="mobilenetv2_cifar", width=0.25, head_types=["pool4_fc1"], candidates=[]).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before = model(x)
        patched = keep_depthwise_in_float(model)
        assert patched == model.backbone.num_blocks  # one depthwise conv per inverted-residual block
        assert torch.equal(model(x), before)  # float32 without autocast: the very same computation
        depthwise = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert depthwise(torch.randn(1, depthwise.in_channels, 8, 8)).dtype == torch.float32
