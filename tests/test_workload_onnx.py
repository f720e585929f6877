"""workload_from_onnx: agreement with the torch tracer on exported EENNs, and its errors.

The ONNX files are exported in the test with torch.onnx.export(dynamo=False) (the TorchScript exporter;
the dynamo exporter needs onnxscript, which is not a dependency). The unsupported-op case is built
with onnx.helper.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import onnx
import pytest
import torch
from onnx import TensorProto, helper

from exitspace.errors import ConfigError
from exitspace.models import build_eenn
from exitspace.workload.from_onnx import module_path, workload_from_onnx
from exitspace.workload.from_torch import workload_from_torch
from exitspace.workload.layer import OpType


def _export(model: torch.nn.Module, path: Path, size: int = 32, channels: int = 3) -> torch.Tensor:
    example = torch.zeros(1, channels, size, size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), example, str(path), dynamo=False)
    return example


@pytest.mark.parametrize(
    "spec",
    [
        {"backbone": "resnet20", "width": 0.5, "candidates": [2, 6], "head_types": ["pool4_fc2", "gap_fc"]},
        {"backbone": "resnet20", "width": 0.5, "candidates": [3], "backbone_options": {"shortcut": "B"}},
        {"backbone": "mobilenetv2_cifar", "width": 0.25, "head_types": ["pool4_fc2"], "final_head_types": ["gap_fc"]},
        {"backbone": "small_cnn", "in_channels": 1, "input_size": 28, "head_types": ["pool4_fc1"]},
    ],
    ids=["resnet20-A", "resnet20-B", "mobilenetv2", "small_cnn-28px"],
)
def test_onnx_matches_torch_layer_by_layer(tmp_path: Path, spec: dict) -> None:
    model = build_eenn(**spec)
    path = tmp_path / "model.onnx"
    example = _export(model, path, spec.get("input_size", 32), spec.get("in_channels", 3))
    traced = workload_from_torch(model, example, precision=8)
    read = workload_from_onnx(path, precision=8)
    assert len(read) == len(traced)
    for ours, theirs in zip(traced, read):
        assert dataclasses.asdict(ours) == dataclasses.asdict(theirs), ours.name
    assert read.exits == model.head_keys


def test_keep_activations_from_onnx(tmp_path: Path) -> None:
    model = build_eenn(backbone="small_cnn", candidates=[], head_types=["pool4_fc2"])
    path = tmp_path / "small.onnx"
    example = _export(model, path)
    traced = workload_from_torch(model, example, fuse_activations=False)
    read = workload_from_onnx(path, fuse_activations=False)
    assert [(l.name, l.op, l.inputs) for l in read] == [(l.name, l.op, l.inputs) for l in traced]
    assert sum(layer.op is OpType.ACT for layer in read) == 6  # stem, 4 blocks, head ReLU6


def test_module_path_from_exported_names() -> None:
    assert module_path("/blocks.0/conv1/conv1.0/Conv") == "blocks.0.conv1.0"
    assert module_path("/A_pool4_fc1/fc1/Gemm") == "A_pool4_fc1.fc1"
    assert module_path("Conv_12") == ""


def test_missing_malformed_and_unsupported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        workload_from_onnx(tmp_path / "absent.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00\x01 definitely not protobuf \xff" * 10)
    with pytest.raises(ConfigError, match="not a readable ONNX model|shape inference failed"):
        workload_from_onnx(junk)

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 16, 16])
    scales = helper.make_tensor("scales", TensorProto.FLOAT, [4], [1.0, 1.0, 2.0, 2.0])
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], name="up1", mode="nearest")
    graph = helper.make_graph([node], "g", [x], [y], initializer=[scales])
    path = tmp_path / "resize.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    with pytest.raises(ConfigError, match=r"ONNX node 'up1': op type 'Resize' is not supported; supported: .*Conv") as info:
        workload_from_onnx(path)
    assert "\n" not in str(info.value)


def test_dynamic_batch_is_read_as_one(tmp_path: Path) -> None:
    model = build_eenn(backbone="small_cnn", candidates=[1], head_types=["gap_fc"]).eval()
    path = tmp_path / "dyn.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, torch.zeros(2, 3, 32, 32), str(path), dynamo=False,
            input_names=["x"], dynamic_axes={"x": {0: "batch"}},
        )
    read = workload_from_onnx(path)
    assert {layer.B for layer in read} == {1}
    assert read.exits == ["A:gap_fc", "B:gap_fc"]
    assert read.macs == workload_from_torch(model, torch.zeros(1, 3, 32, 32)).macs
