"""workload_from_torch: layer conventions, fusion, dependency graph, EENN tags, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from exitspace.errors import ConfigError
from exitspace.models import build_eenn
from exitspace.workload.from_torch import workload_from_torch
from exitspace.workload.layer import OpType, Precision


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.dw = nn.Conv2d(8, 8, 5, stride=2, padding=2, groups=8)
        self.pw = nn.Conv2d(8, 8, 1)
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(8 * 4 * 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn(self.conv(x)))
        y = F.relu6(self.pw(self.dw(x)))
        z = y + F.max_pool2d(x, 2)
        return self.fc(torch.flatten(self.pool(z), 1))


def test_layer_conventions_and_fusion() -> None:
    workload = workload_from_torch(Tiny(), torch.zeros(2, 3, 16, 16), precision=4, name="tiny")
    by_name = {layer.name: layer for layer in workload}
    assert [layer.op for layer in workload] == [
        OpType.CONV, OpType.DEPTHWISE, OpType.POINTWISE, OpType.POOL, OpType.ADD, OpType.POOL, OpType.FC,
    ]
    conv, dw, pw = by_name["conv"], by_name["dw"], by_name["pw"]
    assert (conv.K, conv.C, conv.OY, conv.FY, conv.B, conv.padding) == (8, 3, 16, 3, 2, (1, 1))
    assert (dw.K, dw.C, dw.groups, dw.FY, dw.stride, dw.OY) == (8, 8, 8, 5, (2, 2), 8)
    assert dw.macs == 2 * 8 * 8 * 8 * 25
    assert dw.inputs == ("conv",)  # BatchNorm folded, ReLU fused
    add = next(layer for layer in workload if layer.op is OpType.ADD)
    assert add.name == "add" and add.inputs == ("pw", "max_pool2d")
    assert (add.K, add.C, add.groups, add.OY) == (8, 8, 8, 8)
    fc = by_name["fc"]
    assert (fc.K, fc.C, fc.OY, fc.FY, fc.B) == (5, 128, 1, 1, 2)
    assert fc.inputs == ("pool",)  # flatten is free
    assert all(layer.precision == Precision.uniform(4) for layer in workload)
    assert workload.name == "tiny"


def test_keep_activations_as_act_layers() -> None:
    workload = workload_from_torch(Tiny(), torch.zeros(1, 3, 16, 16), fuse_activations=False)
    acts = [layer for layer in workload if layer.op is OpType.ACT]
    assert [layer.name for layer in acts] == ["relu", "relu6"]
    assert acts[0].inputs == ("conv",) and workload["dw"].inputs == (acts[0].name,)
    assert acts[0].macs == 8 * 16 * 16


def test_training_mode_is_restored_and_bn_stats_untouched() -> None:
    model = Tiny().train()
    before = model.bn.running_mean.clone()
    workload_from_torch(model, torch.randn(1, 3, 16, 16))
    assert model.training and model.bn.training
    assert torch.equal(before, model.bn.running_mean)


def test_eenn_tags_come_from_the_module_structure() -> None:
    model = build_eenn(backbone="resnet20", width=0.5, candidates=[2, 5], head_types=["pool4_fc2", "gap_fc"])
    workload = workload_from_torch(model, torch.zeros(1, 3, 32, 32))
    assert workload.exits == model.head_keys
    block_of = dict(zip(model.head_keys, model.head_blocks))
    for key in workload.exits:
        assert {layer.block for layer in workload.head(key)} == {f"b{block_of[key]}"}
    assert [layer.block for layer in workload.backbone()][0] == "stem"
    assert {layer.block for layer in workload.backbone()} == {"stem", *(f"b{i}" for i in range(9))}
    # Option-A shortcut of the first down-sampling block: slicing and zero-padding are free, the add
    # reads the conv branch and the block input.
    add = workload["b3.add"]
    assert add.inputs == ("b3.conv2.0", "b2.add")
    assert all(layer.op is not OpType.ACT for layer in workload)
    gap = workload.head("C:gap_fc")[0]
    assert gap.op is OpType.POOL and (gap.FY, gap.FX, gap.OY) == (8, 8, 1)


def test_unsupported_module_and_bad_input_are_one_line_errors() -> None:
    lstm = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Upsample(scale_factor=2))
    with pytest.raises(ConfigError, match=r"Upsample.*not supported") as info:
        workload_from_torch(lstm, torch.zeros(1, 3, 8, 8))
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="example_input"):
        workload_from_torch(Tiny(), torch.zeros(1, 5, 16, 16))

    class Dynamic(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2 if x.sum() > 0 else x

    with pytest.raises(ConfigError, match="cannot trace"):
        workload_from_torch(Dynamic(), torch.zeros(1, 3, 4, 4))


def test_plain_net_workload_has_one_final_head() -> None:
    from exitspace.models import build_plain

    net = build_plain({"backbone": "small_cnn"}, head_type="pool4_fc2")
    workload = workload_from_torch(net, torch.zeros(1, 3, 32, 32))
    assert workload.exits == ["D:pool4_fc2"]
    assert {layer.block for layer in workload.head("D:pool4_fc2")} == {"b3"}
    assert [layer.op for layer in workload.head("D:pool4_fc2")] == [OpType.POOL, OpType.FC, OpType.FC]


def test_subnet_workload_stops_at_its_deepest_head() -> None:
    supernet = build_eenn(width=0.25)
    design = supernet.subnet(["C:pool4_fc1", "F:pool4_fc2"])
    workload = workload_from_torch(design, torch.zeros(1, 3, 32, 32))
    assert workload.exits == ["C:pool4_fc1", "F:pool4_fc2"]
    assert [layer.block for layer in workload.backbone()][-1] == "b5"
    assert {layer.block for layer in workload.head("F:pool4_fc2")} == {"b5"}
