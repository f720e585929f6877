"""``exitspace sweep`` (alignment sweeps of one layer dimension) and ``exitspace profile`` (per-layer cost)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table
from typing_extensions import Annotated

from exitspace.cli.app import app, console, console_at_least, err_console, user_errors
from exitspace.errors import ConfigError
from exitspace.flow.profile import check_bits, load_model, profile_rows

HARDWARE_HELP = "a preset name (see `exitspace hardware list`) or a hardware file (ZigZag core / Stream system YAML)"


def _parse_sizes(text: str | None) -> dict[str, int]:
    """``"K=64,C=32,OX=8"`` -> sizes for the template layer."""
    sizes: dict[str, int] = {}
    if not text:
        return sizes
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in ("K", "C", "OX", "OY", "FX", "FY", "kernel"):
            raise ConfigError(f"--sizes: {part!r} is not DIM=VALUE with DIM one of K, C, OX, OY, FX, FY, kernel")
        try:
            sizes[key] = int(value)
        except ValueError:
            raise ConfigError(f"--sizes: {part!r}: the value must be an integer") from None
    return sizes


@app.command()
@user_errors
def sweep(
    dim: Annotated[str, typer.Option(help="dimension to vary: K, C, OX, OY, kernel, bits")] = "K",
    range_: Annotated[str, typer.Option("--range", help="values: START:STOP[:STEP] (inclusive) or a comma list")] = "24:40",
    core: Annotated[str, typer.Option(help="core preset or file (" + HARDWARE_HELP + ")")] = "edge_tpu_like",
    core_id: Annotated[Optional[int], typer.Option("--core-id", help="core id when --core names a system")] = None,
    layer: Annotated[str, typer.Option(help="template layer: conv (3x3), dw (3x3 depthwise), pw (1x1), fc")] = "conv",
    sizes: Annotated[Optional[str], typer.Option(help="template sizes, e.g. 'K=64,C=32,OX=8,OY=8'")] = None,
    bits: Annotated[int, typer.Option(help="weight/activation bit width (partial sums twice)")] = 8,
    backend: Annotated[str, typer.Option(help="cost backend: analytical or zigzag")] = "analytical",
    out: Annotated[Path, typer.Option(help="directory for the CSV, JSON and PNG")] = Path("runs/sweeps"),
    as_json: Annotated[bool, typer.Option("--json", help="print the sweep as JSON instead of the table")] = False,
) -> None:
    """Vary one layer dimension on one core: latency, energy and utilization per value, with the steps where
    compute jumps because a dimension no longer divides the array (the alignment staircase)."""
    from exitspace.cost.registry import get_backend
    from exitspace.cost.sweep import parse_range, sweep as run_sweep, steps, template_layer, write_outputs
    from exitspace.hardware.loader import load_core

    if dim not in ("K", "C", "OX", "OY", "kernel", "bits"):
        raise ConfigError(f"--dim: unknown dimension {dim!r}; use one of K, C, OX, OY, kernel, bits")
    values = parse_range(range_)
    check_bits(bits, "--bits")
    if dim == "bits":
        for v in values:
            check_bits(v, "--range")
    target = load_core(core, core_id)
    template = template_layer(layer, _parse_sizes(sizes), bits)
    cost_backend = get_backend(backend)
    started = time.perf_counter()
    rows = run_sweep(cost_backend, target, template, dim, values)
    seconds = time.perf_counter() - started
    meta = {"layer": layer, "core": target.name, "backend": cost_backend.name, "backend_version": cost_backend.version,
            "bits": bits, "template": template.to_dict(), "seconds": seconds}
    paths = write_outputs(rows, dim, meta, out)
    if as_json:
        print(json.dumps({**meta, "dim": dim, "steps": steps(rows, dim), "rows": rows,
                          "files": {k: str(v) for k, v in paths.items()}}))
        return
    table = Table(title=f"{layer} layer, sweep of {dim} on {target.name} ({cost_backend.name}, {bits} bit)")
    for column in (dim, "MACs", "latency", "compute", "stall", "on", "off", "energy pJ", "lat/MAC", "pJ/MAC",
                   "spat. util", "util", "step"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            str(row[dim]), f"{row['macs']:,}", f"{row['latency_cycles']:,.0f}", f"{row['compute_cycles']:,.0f}",
            f"{row['stall_cycles']:,.0f}", f"{row['onload_cycles']:,.0f}", f"{row['offload_cycles']:,.0f}",
            f"{row['energy_pj']:,.0f}", f"{row['latency_per_mac']:.5f}", f"{row['energy_per_mac_pj']:.3f}",
            f"{row['spatial_utilization']:.3f}", f"{row['utilization']:.3f}", "step" if row["step"] else "",
        )
    console_at_least(140).print(table)
    console.print(f"steps at {dim} = {steps(rows, dim)}; wrote {paths['csv']}, {paths['json']}, {paths['png']}")


@app.command()
@user_errors
def profile(
    model: Annotated[str, typer.Argument(help="workload JSON file, ONNX file, or a backbone name (mobilenetv2_cifar, resnet20, ...)")],
    hardware: Annotated[str, typer.Option(help=HARDWARE_HELP)] = "edge_tpu_like",
    core: Annotated[Optional[int], typer.Option("--core", help="run every layer it supports on this core id")] = None,
    bits: Annotated[int, typer.Option(help="backbone bit width (partial sums twice)")] = 8,
    exit_bits: Annotated[Optional[int], typer.Option(help="exit-head bit width; default --bits")] = None,
    heads: Annotated[str, typer.Option(help="head types at every exit (backbone names only)")] = "pool4_fc1,pool4_fc2",
    backend: Annotated[str, typer.Option(help="cost backend: analytical or zigzag")] = "analytical",
    exit_: Annotated[Optional[str], typer.Option("--exit", help="only the backbone plus this exit's head layers")] = None,
    cache: Annotated[Optional[Path], typer.Option(help="persistent cost cache (SQLite file)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON (rows and totals)")] = False,
) -> None:
    """Cost a whole workload layer by layer on a core or system (each layer on the first core that can run it;
    the real allocation belongs to the mapping stage) and print the per-layer table with totals."""
    from exitspace.hardware.loader import load_system

    workload = load_model(model, heads, bits, exit_bits)
    if exit_ is not None:
        known = workload.exits
        matching = [e for e in known if e == exit_ or e.split(":")[0] == exit_]
        if not matching:
            raise ConfigError(f"--exit: {exit_!r} is not an exit of {workload.name}; known: {known}")
        workload = workload.select(l for l in workload.layers if l.exit is None or l.exit == matching[0])
    system = load_system(hardware)
    if not as_json and backend == "zigzag":
        err_console.print(f"costing {len(workload)} layers with ZigZag (seconds per layer) ...")
    rows, totals = profile_rows(workload, system, backend, core, cache)
    if as_json:
        print(json.dumps({"model": workload.name, "hardware": system.name, "rows": rows, "totals": totals}))
        return
    table = Table(title=f"{workload.name} on {system.name} ({totals['backend']} {totals['backend_version']})")
    for column in ("layer", "op", "MACs", "core", "latency", "energy pJ", "spat. util", "util", "dominant memory"):
        table.add_column(column, justify="left" if column in ("layer", "op", "core", "dominant memory") else "right")
    for r in rows:
        table.add_row(r["layer"], r["op"], f"{r['macs']:,}", f"{r['core']}#{r['core_id']}", f"{r['latency_cycles']:,.0f}",
                      f"{r['energy_pj']:,.0f}", f"{r['spatial_utilization']:.3f}", f"{r['utilization']:.3f}",
                      r["dominant_memory"])
    table.add_row("total", "", f"{totals['macs']:,}", "", f"{totals['latency_cycles']:,.0f}", f"{totals['energy_pj']:,.0f}",
                  "", "", "", end_section=True)
    console_at_least(130).print(table)
