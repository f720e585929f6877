"""The paper's MobileNetV2-CIFAR workload against paper-setup.md section 1, plus JSON round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from exitspace.errors import ConfigError
from exitspace.models import EENNSpec
from exitspace.workload.layer import Layer, OpType, Precision, Workload
from exitspace.workload.paper import (
    cumulative_block_macs,
    eenn_workload,
    paper_mobilenetv2_workload,
    resnet20_workload,
)

# paper-setup.md section 1: cumulative backbone MACs (millions) after the stem and each block.
PAPER_CUMULATIVE_MMACS = {
    "stem": 0.885, "b0": 1.70, "b1": 6.52, "b2": 14.93, "b3": 24.51, "b4": 38.86, "b5": 48.74,
    "b6": 62.21, "b7": 82.76, "b8": 118.29, "b9": 140.15, "b10": 162.82, "b11": 195.33,
}
PAPER_SHAPES = {  # block: (out channels, out H)
    "b0": (16, 32), "b1": (24, 32), "b2": (24, 32), "b3": (32, 32), "b4": (32, 32), "b5": (64, 16),
    "b6": (64, 16), "b7": (96, 16), "b8": (96, 16), "b9": (160, 8), "b10": (160, 8), "b11": (320, 8),
}


@pytest.fixture(scope="module")
def paper() -> Workload:
    return paper_mobilenetv2_workload()


def test_cumulative_macs_match_the_paper_table(paper: Workload) -> None:
    measured = dict(cumulative_block_macs(paper))
    assert list(measured) == list(PAPER_CUMULATIVE_MMACS)
    for block, expected in PAPER_CUMULATIVE_MMACS.items():
        assert measured[block] / 1e6 == pytest.approx(expected, rel=0.005), block
    assert sum(layer.macs for layer in paper.backbone() if layer.op.is_mac) == pytest.approx(195.33e6, rel=1e-4)


def test_block_output_shapes_and_kernels(paper: Workload) -> None:
    for block, (channels, height) in PAPER_SHAPES.items():
        last_conv = [layer for layer in paper.backbone() if layer.block == block and layer.op.is_mac][-1]
        assert (last_conv.K, last_conv.OY, last_conv.OX) == (channels, height, height), block
        depthwise = [layer for layer in paper.backbone() if layer.block == block and layer.op is OpType.DEPTHWISE]
        assert len(depthwise) == 1 and depthwise[0].FY == (3 if int(block[1:]) <= 6 else 7)
        assert depthwise[0].K == depthwise[0].C == depthwise[0].groups
    adds = [layer.block for layer in paper if layer.op is OpType.ADD]
    assert adds == ["b2", "b4", "b6", "b8", "b10"]
    assert not [layer for layer in paper if layer.op is OpType.ACT]  # fused by default


def test_exits_heads_and_their_layers(paper: Workload) -> None:
    labels = "ABCDEFGHIJK"
    assert paper.exits == [f"{label}:{kind}" for label in labels for kind in ("pool4_fc1", "pool4_fc2")]
    mount = {label: f"b{block}" for label, block in zip(labels, [*range(10), 11])}
    for key in paper.exits:
        layers = paper.head(key)
        assert {layer.block for layer in layers} == {mount[key[0]]}
        pool, *fcs = layers
        assert pool.op is OpType.POOL and (pool.OY, pool.OX) == (4, 4) and pool.FY == pool.stride[0]
        assert all(layer.op is OpType.FC for layer in fcs) and len(fcs) == (1 if key.endswith("fc1") else 2)
        assert fcs[0].C == pool.K * 16 and fcs[-1].K == 10
        if len(fcs) == 2:
            assert fcs[0].K == pool.K * 8 == fcs[1].C
    j2 = paper.head("J:pool4_fc2")
    assert [layer.macs for layer in j2] == [160 * 16 * 4, 2560 * 1280, 1280 * 10]
    a1 = paper.head("A:pool4_fc1")
    assert (a1[0].FY, a1[0].macs, a1[1].macs) == (8, 16 * 16 * 64, 256 * 10)


def test_precisions_backbone_and_exits() -> None:
    workload = paper_mobilenetv2_workload(width=0.5, head_types=("pool4_fc1",), precision=4, precision_exits=8)
    assert {layer.precision for layer in workload.backbone()} == {Precision.uniform(4)}
    assert {layer.precision for layer in workload if layer.exit} == {Precision.uniform(8)}
    assert workload.backbone()[-1].K == 160  # width 0.5 halves the 320 channels


def test_resnet20_and_generic_spec() -> None:
    workload = resnet20_workload(head_types=("gap_fc",))
    backbone_macs = sum(layer.macs for layer in workload.backbone() if layer.op.is_mac)
    assert backbone_macs == pytest.approx(40.55e6, rel=0.005)  # the commonly quoted ResNet-20 figure, less its FC
    assert [layer.block for layer in workload.backbone()][-1] == "b8"
    assert len(workload.exits) == 9
    fashion = eenn_workload(EENNSpec(backbone="small_cnn", in_channels=1, input_size=28, head_types=["pool4_fc1"]))
    assert fashion.layers[0].C == 1 and fashion.layers[0].OY == 28


def test_workload_json_round_trip(tmp_path: Path, paper: Workload) -> None:
    path = tmp_path / "paper.json"
    paper.to_json(path)
    again = Workload.from_json(path)
    assert again.layers == paper.layers and again.name == paper.name


def test_unknown_layer_type_is_a_one_line_error(tmp_path: Path) -> None:
    good = paper_mobilenetv2_workload(width=0.25, head_types=("pool4_fc1",)).layers[0].to_dict()
    with pytest.raises(ConfigError, match="unknown layer type 'lstm'"):
        Layer.from_dict({**good, "op": "lstm"})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        Workload.from_json(bad)
