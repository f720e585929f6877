"""Ready-made workloads: any EENN spec, the paper's MobileNetV2-CIFAR with exits A-K, ResNet-20.

Built from the torch supernet through :func:`workload_from_torch` (weights do not matter: the model is
built on the meta device, so even the 22 M-parameter supernet costs no memory).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from exitspace.models.eenn import EENN, EENNSpec
from exitspace.workload.builder import as_precision
from exitspace.workload.from_torch import workload_from_torch
from exitspace.workload.layer import Precision, Workload

PAPER_HEAD_TYPES = ("pool4_fc1", "pool4_fc2")


def eenn_workload(
    spec: EENNSpec,
    input_shape: Sequence[int] | None = None,
    precision_backbone: Precision | int | None = 8,
    precision_exits: Precision | int | None = None,
    name: str | None = None,
    fuse_activations: bool = True,
) -> Workload:
    """The workload of the supernet ``spec`` for one input of ``input_shape`` = (C, H, W).

    ``input_shape`` defaults to (spec.in_channels, spec.input_size, spec.input_size); exit precision
    defaults to the backbone's. Every head of the supernet is in it (exit = head key).
    """
    shape = tuple(input_shape) if input_shape is not None else (spec.in_channels, spec.input_size, spec.input_size)
    backbone_precision = as_precision(precision_backbone)
    exit_precision = as_precision(precision_exits) if precision_exits is not None else backbone_precision
    with torch.device("meta"):
        model = EENN(spec)
        example = torch.empty(1, *shape)
    workload = workload_from_torch(
        model, example, precision=backbone_precision, name=name or spec.backbone, fuse_activations=fuse_activations
    )
    return workload.with_precision(backbone_precision, exit_precision)


def paper_mobilenetv2_workload(
    width: float = 1.0,
    head_types: Sequence[str] = PAPER_HEAD_TYPES,
    precision: Precision | int | None = 8,
    precision_exits: Precision | int | None = None,
) -> Workload:
    """The paper's MobileNetV2-CIFAR with candidate exits A-J (after blocks 0-9) and final exit K (after
    block 11), each with one head of every type in ``head_types``."""
    spec = EENNSpec(backbone="mobilenetv2_cifar", width=width, head_types=list(head_types))
    return eenn_workload(spec, precision_backbone=precision, precision_exits=precision_exits, name="mobilenetv2_cifar")


def resnet20_workload(
    width: float = 1.0,
    head_types: Sequence[str] = PAPER_HEAD_TYPES,
    precision: Precision | int | None = 8,
    precision_exits: Precision | int | None = None,
) -> Workload:
    """ResNet-20 (option-A shortcuts) with candidate exits after blocks 0-7 and the final exit after block 8."""
    spec = EENNSpec(backbone="resnet20", width=width, head_types=list(head_types))
    return eenn_workload(spec, precision_backbone=precision, precision_exits=precision_exits, name="resnet20")


def cumulative_block_macs(workload: Workload) -> list[tuple[str, int]]:
    """(block, backbone MACs up to and including that block) in network order (exit heads excluded)."""
    rows: list[tuple[str, int]] = []
    total = 0
    for layer in workload.backbone():
        if layer.op.is_mac:
            total += layer.macs
        if rows and rows[-1][0] == layer.block:
            rows[-1] = (layer.block, total)
        else:
            rows.append((layer.block, total))
    return rows
