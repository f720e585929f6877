"""``exitspace workload``: build an EENN's (or an ONNX file's) workload, print it per layer or write JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.table import Table

from exitspace.cli.app import app, console, console_at_least, user_errors
from exitspace.errors import ConfigError
from exitspace.precision import check_bits
from exitspace.workload.layer import Precision, Workload


def _int_list(text: str, option: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"{option}: {text!r} is not a comma-separated list of block indices, e.g. 0,3,5") from None


def _precision(bits: int, option: str) -> Precision:
    return Precision.uniform(check_bits(bits, option))


def _table(workload: Workload) -> Table:
    table = Table(title=f"workload {workload.name}: {len(workload)} layers", box=box.SIMPLE_HEAD)
    for column in ("name", "op", "K", "C", "OY", "OX", "FY", "FX", "groups", "stride", "MACs", "block", "exit"):
        table.add_column(column, justify="left" if column in ("name", "op", "block", "exit") else "right", no_wrap=True)
    for layer in workload:
        table.add_row(
            layer.name, layer.op.value, str(layer.K), str(layer.C), str(layer.OY), str(layer.OX), str(layer.FY),
            str(layer.FX), str(layer.groups), f"{layer.stride[0]}x{layer.stride[1]}", f"{layer.macs:,}",
            layer.block, layer.exit or "",
        )
    backbone = sum(layer.macs for layer in workload.backbone() if layer.op.is_mac)
    table.add_section()
    table.add_row("backbone MACs", *[""] * 9, f"{backbone:,}", "", "")
    table.add_row("head MACs", *[""] * 9, f"{workload.macs - backbone:,}", "", f"{len(workload.exits)} heads")
    table.add_row("total MACs", *[""] * 9, f"{workload.macs:,}", "", "")
    return table


@app.command()
@user_errors
def workload(
    model: Annotated[
        Optional[str], typer.Argument(help="backbone name: mobilenetv2_cifar, resnet20, resnet32, resnet56, small_cnn")
    ] = None,
    width: Annotated[float, typer.Option(help="channel width multiplier")] = 1.0,
    heads: Annotated[str, typer.Option(help="comma-separated head types at every exit")] = "pool4_fc1,pool4_fc2",
    candidates: Annotated[
        Optional[str], typer.Option(help="comma-separated candidate blocks ('' for none); default: the backbone's")
    ] = None,
    bits: Annotated[int, typer.Option(help="backbone bit width (weights, activations; psums twice)")] = 8,
    exit_bits: Annotated[Optional[int], typer.Option(help="exit-head bit width; default --bits")] = None,
    in_channels: Annotated[int, typer.Option(help="input channels (1 for Fashion-MNIST)")] = 3,
    input_size: Annotated[int, typer.Option(help="input height = width in pixels")] = 32,
    num_classes: Annotated[int, typer.Option(help="classes")] = 10,
    onnx: Annotated[Optional[Path], typer.Option("--onnx", help="read the workload from this ONNX file instead")] = None,
    keep_activations: Annotated[bool, typer.Option(help="emit activations as ACT layers instead of fusing them")] = False,
    out: Annotated[Optional[Path], typer.Option(help="write the workload JSON here")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the workload JSON instead of the table")] = False,
) -> None:
    """Print a network's layers (loop sizes, MACs, block and exit tags) or write them as workload JSON."""
    backbone_precision = _precision(bits, "--bits")
    exit_precision = _precision(exit_bits, "--exit-bits") if exit_bits is not None else backbone_precision
    if onnx is not None:
        from exitspace.workload.from_onnx import workload_from_onnx

        result = workload_from_onnx(onnx, precision=backbone_precision, fuse_activations=not keep_activations)
        result = result.with_precision(backbone_precision, exit_precision)
    else:
        if model is None:
            raise ConfigError("MODEL: missing; give a backbone name (e.g. mobilenetv2_cifar) or --onnx FILE")
        from exitspace.models.eenn import EENNSpec
        from exitspace.workload.paper import eenn_workload

        spec = EENNSpec.parse(
            {
                "backbone": model,
                "width": width,
                "head_types": [part.strip() for part in heads.split(",") if part.strip()],
                "candidates": None if candidates is None else _int_list(candidates, "--candidates"),
                "in_channels": in_channels,
                "input_size": input_size,
                "num_classes": num_classes,
            }
        )
        result = eenn_workload(
            spec, precision_backbone=backbone_precision, precision_exits=exit_precision,
            fuse_activations=not keep_activations,
        )
    if out is not None:
        result.to_json(out)
    if as_json:
        print(json.dumps({"format": "exitspace.workload", "name": result.name, "layers": [l.to_dict() for l in result]}))
    elif out is not None:
        console.print(f"wrote {len(result)} layers ({result.macs:,} MACs) to {out}")
    else:
        # Thirteen columns need about 150 characters; never squash them to a narrower (or piped) console.
        console_at_least(150).print(_table(result))
