"""``exitspace hardware``: list presets, show, export and validate accelerator descriptions."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from exitspace.cli.app import app, console, user_errors
from exitspace.errors import ConfigError
from exitspace.files import atomic_write_text, safe_file_name, writable_folder
from exitspace.hardware.loader import dump_native, load_system
from exitspace.hardware.model import System
from exitspace.hardware.presets import CORE_PRESETS, SYSTEM_PRESETS
from exitspace.hardware.stream_yaml import dump_stream_system
from exitspace.hardware.summary import system_summary
from exitspace.hardware.zigzag_yaml import dump_zigzag_core

hardware_app = typer.Typer(
    help="Accelerator descriptions: presets, ZigZag core / Stream system YAML, validation.",
    no_args_is_help=True,
)
app.add_typer(hardware_app, name="hardware")

SPEC_HELP = "a preset name (see `exitspace hardware list`) or a file: ZigZag core YAML, Stream system YAML, or exitspace YAML/JSON"


class ExportFormat(str, Enum):
    zigzag = "zigzag"
    stream = "stream"
    exitspace = "exitspace"


@hardware_app.command("list")
@user_errors
def list_presets(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List the hardware presets."""
    rows = [("system", name, text) for name, text in SYSTEM_PRESETS.items()]
    rows += [("core", name, text) for name, text in CORE_PRESETS.items()]
    if as_json:
        print(json.dumps([{"type": kind, "name": name, "description": text} for kind, name, text in rows], indent=2))
        return
    table = Table(title="hardware presets (every core preset is also a single-core system)")
    for column in ("type", "name", "description"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console.print(table)


@hardware_app.command("show")
@user_errors
def show(
    spec: str = typer.Argument(..., help=SPEC_HELP),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Summarise cores, arrays, memories (sizes, port widths, energies) and links."""
    system = load_system(spec)
    summary = system_summary(system)
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    console.print(f"{system.name}: {len(system.cores)} core(s), {len(system.links)} link(s)", markup=False)
    for ids, core in _identical_cores(summary["cores"]):
        console.print(_core_table(ids, core))
    console.print(
        "size per copy; bw = port width and min = smallest access, bits (per cycle); pJ per access; "
        "serves = array dimensions one copy is shared over"
    )
    if summary["links"]:
        console.print(_links_table(summary["links"]))


def _identical_cores(cores: list[dict[str, Any]]) -> list[tuple[list[int], dict[str, Any]]]:
    """Cores grouped by identical description (all but the id), in order of first appearance."""
    groups: list[tuple[list[int], dict[str, Any]]] = []
    for core in cores:
        same = {key: value for key, value in core.items() if key != "id"}
        for ids, other in groups:
            if other == same:
                ids.append(core["id"])
                break
        else:
            groups.append(([core["id"]], same))
    return groups


def _core_table(ids: list[int], core: dict[str, Any]) -> Table:
    """One core type: array, dataflow and a row per memory."""
    all_dims = set(core["array"])
    array = " x ".join(f"{dim}={size}" for dim, size in core["array"].items())
    dataflow = ", ".join(f"{dim}:{'+'.join(loops)}" for dim, loops in core["dataflow"].items()) or "-"
    title = (
        f"core{'s' if len(ids) > 1 else ''} {','.join(map(str, ids))}: {core['name']} ({core['kind']}): {array} = {core['units']} units at "
        f"{core['unit_energy_pj']:g} pJ; dataflow {dataflow}"
    )
    table = Table(title=escape(title), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("memory", overflow="fold")
    for column in ("holds", "size", "copies", "r/w bw", "min", "r/w pJ", "serves"):
        table.add_column(column, no_wrap=True)
    for mem in core["memories"]:
        table.add_row(
            mem["name"],
            ",".join(mem["operands"]),
            mem["size"],
            str(mem["instances"]),
            f"{mem['r_bw']}/{mem['w_bw']}",
            f"{mem['min_r_granularity'] or mem['r_bw']}/{mem['min_w_granularity'] or mem['w_bw']}",
            f"{mem['r_cost_pj']:g}/{mem['w_cost_pj']:g}",
            "all" if set(mem["served_dimensions"]) == all_dims else ",".join(mem["served_dimensions"]) or "-",
        )
    return table


def _links_table(links: list[dict[str, Any]]) -> Table:
    """Point-to-point links one row each; a bus one row listing every core on it."""
    table = Table(title="links (a bus is one medium shared by all its cores)", title_justify="left")
    for column in ("cores", "bits/cycle", "pJ/bit", "kind"):
        table.add_column(column)
    buses: dict[str, list[int]] = {}
    rows: list[tuple[str, str, str, str]] = []
    for link in links:
        if link["bus"] is None:
            rows.append((f"{link['a']} - {link['b']}", str(link["bandwidth"]), f"{link['energy_per_bit_pj']:g}", "link"))
            continue
        if link["bus"] not in buses:
            buses[link["bus"]] = []
            rows.append((link["bus"], str(link["bandwidth"]), f"{link['energy_per_bit_pj']:g}", "bus"))
        buses[link["bus"]] += [end for end in (link["a"], link["b"]) if end not in buses[link["bus"]]]
    for cores, bandwidth, energy, kind in rows:
        label = ", ".join(map(str, buses[cores])) if kind == "bus" else cores
        table.add_row(label, bandwidth, energy, kind if kind == "link" else f"bus ({cores})")
    return table


@hardware_app.command("export")
@user_errors
def export(
    spec: str = typer.Argument(..., help=SPEC_HELP),
    fmt: ExportFormat = typer.Option(ExportFormat.stream, "--format", help="zigzag: one core file per distinct core; stream: system + cores/; exitspace: our YAML"),
    out: Path = typer.Option(..., "--out", help="output folder (created)"),
) -> None:
    """Write a preset or file in ZigZag, Stream or exitspace schema."""
    system = load_system(spec)
    written = export_system(system, fmt.value, out)
    for path in written:
        console.print(f"wrote {path}")


def export_system(system: System, fmt: str, out: Path) -> list[Path]:
    """Write ``system`` to ``out`` in ``fmt``; returns the files written."""
    writable_folder(out, "--out")
    if fmt == "stream":
        target = dump_stream_system(system, out)
        return [target, *sorted((out / "cores").glob("*.yaml"))]
    if fmt == "exitspace":
        target = out / f"{safe_file_name(system.name) or 'system'}.yaml"
        dump_native(system, target)
        return [target]
    written: dict[str, Path] = {}
    for core in system.cores:
        text = dump_zigzag_core(core)
        stem = safe_file_name(core.name) or "core"  # a core named "../../x" stays inside --out
        name, suffix = stem, 1
        while name in written and written[name].read_text(encoding="utf-8") != text:
            suffix += 1
            name = f"{stem}_{suffix}"
        if name not in written:
            written[name] = out / f"{name}.yaml"
            atomic_write_text(written[name], text)
    return list(written.values())


@hardware_app.command("validate")
@user_errors
def validate(
    path: Path = typer.Argument(..., help="a ZigZag core YAML, Stream system YAML, or exitspace YAML/JSON file"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Check a hardware file; prints one line naming the field on error (exit code 2)."""
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    system = load_system(path)
    kinds = sorted({core.kind.value for core in system.cores})
    if as_json:
        print(json.dumps({"valid": True, "name": system.name, "cores": len(system.cores), "links": len(system.links), "kinds": kinds}))
        return
    console.print(
        f"{path}: valid ({system.name}: {len(system.cores)} core(s) of kind {', '.join(kinds)}, {len(system.links)} link(s))",
        markup=False,
    )
