"""``exitspace evaluate``: parse the options, run :func:`~exitspace.flow.evaluate.evaluate_request`, print the tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich import box
from rich.status import Status
from rich.table import Table

from exitspace.cli.app import app, console, console_at_least, err_console, user_errors
from exitspace.errors import ConfigError
from exitspace.flow.evaluate import EvaluateRequest, evaluate_request, write_outputs
from exitspace.flow.phases import Phases


def _floats(text: str, option: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"{option}: {text!r} is not a comma-separated list of numbers, e.g. .25,.15,.3,.3") from None


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _fmt(value: float | None, scale: float = 1.0, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value / scale:,.{digits}f}"


def _pct(value: float | None) -> str:
    """A share as a percentage with one decimal; "-" for None."""
    return "-" if value is None else f"{100 * value:.1f}%"


def _print(result: dict[str, Any]) -> None:
    """Print an evaluation result: the per-stage table, the summary table and the notes under them."""
    out = console_at_least(150)
    out.print(_stage_table(result))
    out.print(_summary_table(result["metrics"]))
    for line in _notes(result):
        out.print(line)


def _stage_table(result: dict[str, Any]) -> Table:
    """One row per exit stage: ratio, accuracy, stage and cumulative costs."""
    metrics = result["metrics"]
    stages = result["schedule"]["stages"]
    accuracy = metrics["exit_accuracy"] or [None] * len(stages)
    table = Table(
        title=f"{result['network']} on {result['hardware']} ({result['bits']}, {result['backend']}, "
        f"allocation {result['schedule']['allocation']['strategy']}, policy {metrics['policy']})",
        box=box.SIMPLE_HEAD,
        caption="energy in uJ, latency in kcycles, E*L in uJ*Mcycles; stage = increment over the exit before; "
        "cum = a sample that leaves at this exit",
    )
    for column in (
        "exit", "after", "ratio", "acc", "E stage", "L stage", "E heads", "E xfer", "E offchip", "E wasted",
        "E cum", "L cum", "E*L cum",
    ):
        table.add_column(column, justify="left" if column in ("exit", "after") else "right", no_wrap=True)
    for stage, ratio, acc in zip(stages, metrics["ratios"], accuracy):
        table.add_row(
            stage["exit"], stage["block"], f"{ratio:.4f}", "-" if acc is None else f"{acc:.3f}",
            _fmt(stage["energy_pj"], 1e6), _fmt(stage["latency_cycles"], 1e3, 1), _fmt(stage["head_energy_pj"], 1e6),
            _fmt(stage["transfer_energy_pj"], 1e6), _fmt(stage["offchip_energy_pj"], 1e6),
            _fmt(stage["wasted_energy_pj"], 1e6), _fmt(stage["cum_energy_pj"], 1e6),
            _fmt(stage["cum_latency_cycles"], 1e3, 1), _fmt(stage["cum_product"], 1e12),
        )
    return table


def _summary_table(metrics: dict[str, Any]) -> Table:
    """The EENN's averages and products against the static baseline, exit overhead, latency percentiles."""
    static = metrics["static"]
    summary = Table(box=box.SIMPLE_HEAD, show_header=True)
    summary.add_column("metric")
    summary.add_column("EENN", justify="right")
    summary.add_column("static", justify="right")
    summary.add_column("reduction", justify="right")
    if metrics["accuracy"] is not None:
        summary.add_row("accuracy", f"{100 * metrics['accuracy']:.2f}%", "", "")
    summary.add_row(
        "E_avg (uJ)", _fmt(metrics["energy_avg_pj"], 1e6), _fmt(static["energy_pj"], 1e6),
        _pct(metrics["reduction_energy"]),
    )
    summary.add_row(
        "L_avg (kcycles)", _fmt(metrics["latency_avg_cycles"], 1e3, 1), _fmt(static["latency_cycles"], 1e3, 1),
        _pct(metrics["reduction_latency"]),
    )
    summary.add_row(
        "avg product sum_i r_i E_cum,i L_cum,i (uJ*Mcycles)", _fmt(metrics["avg_product"], 1e12),
        _fmt(static["product"], 1e12), _pct(metrics["reduction_avg_product"]),
    )
    summary.add_row(
        "product of averages E_avg*L_avg (uJ*Mcycles)", _fmt(metrics["product_of_averages"], 1e12),
        _fmt(static["product"], 1e12), _pct(metrics["reduction_product_of_averages"]),
    )
    summary.add_row(
        "exit overhead energy (uJ, share of E_avg)",
        f"{_fmt(metrics['overhead_energy_pj'], 1e6)} ({_pct(metrics['overhead_energy_share'])})", "", "",
    )
    summary.add_row("  of which wasted overlap work (uJ)", _fmt(metrics["wasted_energy_pj"], 1e6), "", "")
    summary.add_row(
        "exit overhead latency (kcycles, share of L_avg)",
        f"{_fmt(metrics['overhead_latency_cycles'], 1e3, 1)} ({_pct(metrics['overhead_latency_share'])})", "", "",
    )
    perc = metrics["latency_percentiles"]
    summary.add_row(
        "latency p50 / p95 / p99 (kcycles)",
        " / ".join(_fmt(perc[k], 1e3, 1) for k in ("p50", "p95", "p99")), _fmt(static["latency_cycles"], 1e3, 1), "",
    )
    return summary


def _notes(result: dict[str, Any]) -> list[str]:
    """Lines under the tables: layers per core, the paper-style figures and the calibrated thresholds."""
    metrics = result["metrics"]
    static = metrics["static"]
    per_core: dict[int, int] = {}
    for core in result["schedule"]["allocation"]["cores"].values():
        per_core[core] = per_core.get(core, 0) + 1
    lines = [
        "layers per core: " + ", ".join(f"core {c}: {n}" for c, n in sorted(per_core.items()))
        + f"  (static baseline: own {static['allocation_strategy']} allocation)"
    ]
    if result.get("paper_style"):
        paper = result["paper_style"]
        lines.append(
            f"paper's computation (each stage on its own allocation; static = backbone latency with every head's "
            f"energy): avg product {_fmt(paper['avg_product'], 1e12)} vs static {_fmt(paper['static_product'], 1e12)} "
            f"uJ*Mcycles, reduction {100 * paper['reduction_avg_product']:.1f}% (one deployable allocation above: "
            f"{100 * metrics['reduction_avg_product']:.1f}%)"
        )
    if result.get("calibration"):
        cal = result["calibration"]
        thresholds = ", ".join("never" if t is None else f"{t:.4f}" for t in cal["thresholds"])
        lines.append(
            f"thresholds ({cal['target']} {cal['target_value']}): {thresholds}; val accuracy "
            f"{100 * cal['val']['accuracy']:.2f}% (final-only {100 * cal['reference_accuracy']:.2f}%), reported on "
            f"{result['ratios_from']}"
        )
    return lines


@app.command()
@user_errors
def evaluate(
    exits: Annotated[str, typer.Option(help="comma-separated exit labels in network order, final last, e.g. D,F,I,K")],
    model: Annotated[
        Optional[str], typer.Option(help="backbone name, e.g. mobilenetv2_cifar (default with --exit-table: the table's)")
    ] = None,
    workload_file: Annotated[
        Optional[Path], typer.Option("--workload", help="workload JSON (from `exitspace workload --out`) instead of --model")
    ] = None,
    width: Annotated[float, typer.Option(help="channel width multiplier of --model")] = 1.0,
    heads: Annotated[str, typer.Option(help="head type for every exit, or one per exit (comma-separated)")] = "pool4_fc1",
    bits: Annotated[Optional[str], typer.Option(help="precision pair BACKBONE/EXITS, e.g. 8/8, 4/8, fp32/fp32")] = None,
    hardware: Annotated[str, typer.Option(help="system preset or Stream/exitspace system file")] = "edge_tpu_quad",
    backend: Annotated[str, typer.Option(help="cost backend: analytical or zigzag")] = "analytical",
    allocation: Annotated[
        str, typer.Option(help="single, round_robin, greedy, ga, or an allocation JSON file {layer: core id}")
    ] = "greedy",
    objective: Annotated[
        str, typer.Option(help="allocation objective: avg_product, product_of_averages, energy, latency")
    ] = "avg_product",
    ratios: Annotated[Optional[str], typer.Option(help="exit ratios, one per exit, summing to 1")] = None,
    exit_accuracy: Annotated[Optional[str], typer.Option(help="accuracy of the samples leaving at each exit")] = None,
    exit_table: Annotated[Optional[Path], typer.Option(help="exit table .npz (val/test logits of every head)")] = None,
    thresholds: Annotated[Optional[str], typer.Option(help="with --exit-table: one threshold, or one per early exit")] = None,
    target_drop: Annotated[
        Optional[float], typer.Option(help="with --exit-table: calibrate thresholds on val for this accuracy drop (points)")
    ] = None,
    max_cost_ratio: Annotated[
        Optional[float],
        typer.Option(help="with --exit-table: calibrate for the most accurate thresholds whose expected cost is at most "
                     "this fraction of running every sample to the final exit"),
    ] = None,
    confidence: Annotated[str, typer.Option(help="confidence measure of the exit heads: max_softmax, entropy, margin")] = "max_softmax",
    policy: Annotated[
        str, typer.Option(help="exit-head policy: wait (for each head's decision) or overlap (run the next segment meanwhile)")
    ] = "wait",
    seed: Annotated[int, typer.Option(help="seed of the genetic algorithm")] = 0,
    paper_style: Annotated[
        bool,
        typer.Option("--paper-style", help="also compute the paper's figures (per-stage allocations, heads in the static energy)"),
    ] = False,
    out: Annotated[Optional[Path], typer.Option(help="also write the full result JSON here")] = None,
    save_allocation: Annotated[
        Optional[Path], typer.Option(help="write the allocation JSON here (reusable with --allocation FILE)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
    profile: Annotated[
        str,
        typer.Option(help="cost profile: exitspace (its own accounting) or stream (the paper's Stream fork's, to "
                     "reproduce its figures; see docs/stream-profile.md)"),
    ] = "exitspace",
) -> None:
    """Cost of an EENN on a multi-core system: per-stage table from ONE allocation, E_avg, L_avg, both
    energy-latency products, the static baseline and the reduction, exit overhead, latency percentiles."""
    request = EvaluateRequest(
        exits=_names(exits), heads=_names(heads), model=model, workload_file=workload_file, width=width, bits=bits,
        hardware=hardware, backend=backend, allocation=allocation, objective=objective, confidence=confidence,
        policy=policy, seed=seed, paper_style=paper_style,
        ratios=None if ratios is None else _floats(ratios, "--ratios"),
        exit_accuracy=None if exit_accuracy is None else _floats(exit_accuracy, "--exit-accuracy"),
        exit_table=exit_table, thresholds=None if thresholds is None else _floats(thresholds, "--thresholds"),
        target_drop=target_drop, max_cost_ratio=max_cost_ratio,
    )
    if profile not in PROFILES:
        raise ConfigError(f"--profile: unknown cost profile {profile!r}; use one of {list(PROFILES)}")
    if profile == "stream":
        _stream_profile(request, out, as_json)
        return
    phases = StatusPhases()
    try:
        result, found = evaluate_request(request, phases)
    finally:
        phases.done("")  # a phase an error ended leaves no spinner behind
    write_outputs(result, found, out, save_allocation)
    if as_json:
        print(json.dumps(result))
    else:
        _print(result)


PROFILES = ("exitspace", "stream")


def _stream_profile(request: EvaluateRequest, out: Path | None, as_json: bool) -> None:
    """Print (and write) the stream profile's figures: the paper's Stream accounting, per stage and averaged."""
    from exitspace.flow.evaluate import build_workload
    from exitspace.hardware.loader import load_system
    from exitspace.mapping import resolve_exits
    from exitspace.mapping.stream_profile import stream_figures

    if request.ratios is None:
        raise ConfigError("--profile stream: give the exit ratios with --ratios (exit tables are not read by this profile)")
    with err_console.status("stream profile: per-layer costs and the layer-by-layer schedule"):
        workload = build_workload(request.model, request.workload_file, request.width, request.heads, request.bits)
        system = load_system(request.hardware)
        keys = resolve_exits(workload, request.exits, request.heads)
        figures = stream_figures(workload, keys, system, list(request.ratios)).to_dict()
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(figures, indent=1))
    if as_json:
        print(json.dumps(figures))
        return
    grid = Table(title=f"stream profile (the paper's Stream accounting) on {system.name}")
    for name in ("exit", "ratio", "block cycles", "head cycles", "stage cycles", "stage energy uJ"):
        grid.add_column(name, justify="right")
    for ratio, stage in zip(figures["ratios"], figures["stages"]):
        grid.add_row(stage["exit"], f"{ratio:.4f}", f"{stage['block_latency_cycles']:,.0f}",
                     f"{stage['head_latency_cycles']:,.0f}", f"{stage['stage_latency_cycles']:,.0f}",
                     f"{stage['stage_energy_pj'] / 1e6:,.2f}")
    console.print(grid)
    console.print(
        f"avg ET {figures['avg_et_j_cycles']:.2f} J*cycles   avg latency {figures['avg_latency_cycles']:,.0f} cycles   "
        f"avg energy {figures['avg_energy_j'] * 1e6:.1f} uJ   reduction vs static {figures['et_reduction_vs_static']:.3f}x   "
        f"head share of latency {figures['head_latency_share']:.1%}"
    )
    console.print(f"[dim]{figures['note']}[/dim]")


class StatusPhases(Phases):
    """A spinner on stderr while a phase of the evaluation runs."""

    def __init__(self) -> None:
        self.current: Status | None = None

    def start(self, name: str, total: int | None = None) -> None:
        self.current = err_console.status(name)
        self.current.start()

    def done(self, name: str, message: str = "") -> None:
        if self.current is not None:
            self.current.stop()
            self.current = None
