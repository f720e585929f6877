"""``exitspace evaluate``: one EENN design on one system: per-stage costs on one allocation, dynamic metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import numpy as np
import typer
from rich import box
from rich.console import Console
from rich.table import Table

from exitspace.cli.app import app, console, err_console, user_errors
from exitspace.errors import ConfigError
from exitspace.workload.layer import Precision, Workload


def _floats(text: str, option: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"{option}: {text!r} is not a comma-separated list of numbers, e.g. .25,.15,.3,.3") from None


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_bits(text: str) -> tuple[int, int]:
    """``"8/8"`` (backbone/exits), ``"8"`` or ``"fp32/8"`` -> (backbone bits, exit bits); 32 = float."""
    parts = text.lower().replace("fp32", "32").replace("float", "32").split("/")
    try:
        values = [int(part) for part in parts]
    except ValueError:
        raise ConfigError(f"--bits: {text!r} is not BACKBONE/EXITS bit widths, e.g. 8/8 or 4/8") from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1 or max(values) > 32:
        raise ConfigError(f"--bits: {text!r} must be two bit widths in 1..32, e.g. 8/8")
    return values[0], values[1]


def _workload(
    model: str | None,
    workload_file: Path | None,
    width: float,
    heads: list[str],
    bits: str | None,
    table_meta: dict[str, Any] | None = None,
) -> Workload:
    """The workload from --workload, or built from --model; with an exit table, its model spec (input
    size, candidates, ...) and precision pair are used, and a different --model or --bits is an error."""
    spec_hint = (table_meta or {}).get("model_spec")
    pair = (table_meta or {}).get("precision_pair")
    if pair is not None:
        if bits is not None and parse_bits(bits) != (int(pair[0]), int(pair[1])):
            raise ConfigError(f"--bits {bits}: the exit table is for {pair[0]}/{pair[1]}; give --bits {pair[0]}/{pair[1]}")
        bits = bits or f"{pair[0]}/{pair[1]}"
    if model is None and workload_file is None and spec_hint:
        model = spec_hint.get("backbone")
    if (model is None) == (workload_file is None):
        raise ConfigError("--model / --workload: give exactly one (e.g. --model mobilenetv2_cifar)")
    if workload_file is not None:
        result = Workload.from_json(workload_file)
        if bits is not None:
            backbone, exits = parse_bits(bits)
            result = result.with_precision(Precision.uniform(backbone), Precision.uniform(exits))
        return result
    backbone, exits = parse_bits(bits or "8/8")
    from exitspace.models.eenn import EENNSpec
    from exitspace.workload.paper import eenn_workload

    data: dict[str, Any] = {"backbone": model, "width": width, "head_types": sorted(set(heads))}
    if spec_hint:
        if spec_hint.get("backbone") != model:
            raise ConfigError(
                f"--model {model}: the exit table is for {spec_hint.get('backbone')!r}; give that model or another table"
            )
        data = {**spec_hint, "head_types": sorted(set(spec_hint.get("head_types") or []) | set(heads))}
    spec = EENNSpec.parse(data)
    return eenn_workload(spec, precision_backbone=backbone, precision_exits=exits)


def _cost_per_exit(cum_e: np.ndarray, cum_l: np.ndarray, objective: str) -> np.ndarray:
    if objective == "energy":
        return cum_e
    if objective == "latency":
        return cum_l
    return cum_e * cum_l


def _fmt(value: float | None, scale: float = 1.0, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value / scale:,.{digits}f}"


def _print(result: dict[str, Any]) -> None:
    out = console if console.width >= 150 else Console(width=150)  # never squash the table when piped
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
    out.print(table)
    static = metrics["static"]
    summary = Table(box=box.SIMPLE_HEAD, show_header=True)
    summary.add_column("metric")
    summary.add_column("EENN", justify="right")
    summary.add_column("static", justify="right")
    summary.add_column("reduction", justify="right")

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}%"

    if metrics["accuracy"] is not None:
        summary.add_row("accuracy", f"{100 * metrics['accuracy']:.2f}%", "", "")
    summary.add_row("E_avg (uJ)", _fmt(metrics["energy_avg_pj"], 1e6), _fmt(static["energy_pj"], 1e6), pct(metrics["reduction_energy"]))
    summary.add_row(
        "L_avg (kcycles)", _fmt(metrics["latency_avg_cycles"], 1e3, 1), _fmt(static["latency_cycles"], 1e3, 1),
        pct(metrics["reduction_latency"]),
    )
    summary.add_row(
        "avg product sum_i r_i E_cum,i L_cum,i (uJ*Mcycles)", _fmt(metrics["avg_product"], 1e12),
        _fmt(static["product"], 1e12), pct(metrics["reduction_avg_product"]),
    )
    summary.add_row(
        "product of averages E_avg*L_avg (uJ*Mcycles)", _fmt(metrics["product_of_averages"], 1e12),
        _fmt(static["product"], 1e12), pct(metrics["reduction_product_of_averages"]),
    )
    summary.add_row(
        "exit overhead energy (uJ, share of E_avg)",
        f"{_fmt(metrics['overhead_energy_pj'], 1e6)} ({pct(metrics['overhead_energy_share'])})", "", "",
    )
    summary.add_row("  of which wasted overlap work (uJ)", _fmt(metrics["wasted_energy_pj"], 1e6), "", "")
    summary.add_row(
        "exit overhead latency (kcycles, share of L_avg)",
        f"{_fmt(metrics['overhead_latency_cycles'], 1e3, 1)} ({pct(metrics['overhead_latency_share'])})", "", "",
    )
    perc = metrics["latency_percentiles"]
    summary.add_row(
        "latency p50 / p95 / p99 (kcycles)",
        " / ".join(_fmt(perc[k], 1e3, 1) for k in ("p50", "p95", "p99")), _fmt(static["latency_cycles"], 1e3, 1), "",
    )
    out.print(summary)
    per_core: dict[int, int] = {}
    for core in result["schedule"]["allocation"]["cores"].values():
        per_core[core] = per_core.get(core, 0) + 1
    out.print(
        "layers per core: " + ", ".join(f"core {c}: {n}" for c, n in sorted(per_core.items()))
        + f"  (static baseline: own {static['allocation_strategy']} allocation)"
    )
    if result.get("paper_style"):
        paper = result["paper_style"]
        out.print(
            f"paper's computation (each stage on its own allocation; static = backbone latency with every head's "
            f"energy): avg product {_fmt(paper['avg_product'], 1e12)} vs static {_fmt(paper['static_product'], 1e12)} "
            f"uJ*Mcycles, reduction {100 * paper['reduction_avg_product']:.1f}% (one deployable allocation above: "
            f"{100 * metrics['reduction_avg_product']:.1f}%)"
        )
    if result.get("calibration"):
        cal = result["calibration"]
        thresholds = ", ".join("never" if t is None else f"{t:.4f}" for t in cal["thresholds"])
        out.print(
            f"thresholds ({cal['target']} {cal['target_value']}): {thresholds}; val accuracy "
            f"{100 * cal['val']['accuracy']:.2f}% (final-only {100 * cal['reference_accuracy']:.2f}%), reported on "
            f"{result['ratios_from']}"
        )


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
    policy: Annotated[str, typer.Option(help="exit confidence: max_softmax, entropy, margin")] = "max_softmax",
    overlap: Annotated[bool, typer.Option("--overlap", help="run the next segment while a head decides")] = False,
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
) -> None:
    """Cost of an EENN on a multi-core system: per-stage table from ONE allocation, E_avg, L_avg, both
    energy-latency products, the static baseline and the reduction, exit overhead, latency percentiles."""
    from exitspace.cost.registry import get_backend
    from exitspace.dynamic import ExitScorer, calibrate, evaluate_design, parse_thresholds
    from exitspace.dynamic.confidence import check_confidence
    from exitspace.hardware.loader import load_system
    from exitspace.mapping import Allocation, Mapper, resolve_exits
    from exitspace.mapping.optimise import STRATEGIES
    from exitspace.mapping.schedule import check_objective
    from exitspace.train.exit_table import ExitTable

    policy_name = "overlap" if overlap else "wait"
    check_objective(objective)
    check_confidence(policy)
    exit_labels = _names(exits)
    head_types = _names(heads)
    if not head_types:
        raise ConfigError("--heads: empty; give a head type such as pool4_fc1")
    if (ratios is None) == (exit_table is None):
        raise ConfigError("--ratios / --exit-table: give exactly one (exit ratios directly, or an exit table to derive them)")
    if exit_table is None and (thresholds or target_drop is not None or max_cost_ratio is not None):
        raise ConfigError("--thresholds/--target-drop/--max-cost-ratio need --exit-table")
    given: Allocation | None = None
    if allocation not in STRATEGIES:
        path = Path(allocation)
        if not path.suffix.lower() == ".json":
            raise ConfigError(f"--allocation: unknown strategy {allocation!r}; use one of {list(STRATEGIES)} or a .json file")
        given = Allocation.load(path)

    table = ExitTable.load(exit_table) if exit_table is not None else None
    with err_console.status("building workload, system and per-layer costs"):
        workload = _workload(model, workload_file, width, head_types, bits, None if table is None else table.meta)
        system = load_system(hardware)
        mapper = Mapper(workload, system, get_backend(backend))
    keys = resolve_exits(workload, exit_labels, head_types)
    net = mapper.network(keys)

    calibration = None
    alloc_ratios: list[float] | None = None
    accuracies: list[float | None] | None = None
    ratios_from = "given ratios"
    if ratios is not None:
        report_ratios = _floats(ratios, "--ratios")
        if exit_accuracy is not None:
            accuracies = list(_floats(exit_accuracy, "--exit-accuracy"))
    else:
        assert table is not None
        val = ExitScorer.from_exit_table(table, "val", keys, policy)
        test = ExitScorer.from_exit_table(table, "test", keys, policy) if "test" in table.logits else None
        chosen = (target_drop is not None) + (max_cost_ratio is not None) + (thresholds is not None)
        if chosen != 1:
            raise ConfigError("--exit-table: give exactly one of --thresholds, --target-drop, --max-cost-ratio")
        if thresholds is not None:
            vector = parse_thresholds(_floats(thresholds, "--thresholds"), len(keys))
            val_out = val.outcome(vector)
            report = test.outcome(vector) if test is not None else val_out
        else:
            current = np.full(len(keys), 1.0 / len(keys))
            previous: list[float] | None = None
            with err_console.status("calibrating thresholds on val"):
                for _ in range(3):
                    found = given or mapper.allocate(net, allocation, current, objective, policy_name, seed)
                    schedule = mapper.schedule(net, found, policy_name)
                    cost = _cost_per_exit(schedule.cum_energy, schedule.cum_latency, objective)
                    calibration = calibrate(
                        val, cost, target_drop=target_drop,
                        max_cost=None if max_cost_ratio is None else max_cost_ratio * float(cost[-1]), test=test,
                    )
                    current = np.asarray(calibration.val.ratios)
                    if calibration.thresholds == previous:
                        break
                    previous = calibration.thresholds
            val_out = calibration.val  # type: ignore[union-attr]
            report = calibration.test or val_out  # type: ignore[union-attr]
        alloc_ratios = list(val_out.ratios)
        report_ratios = list(report.ratios)
        accuracies = list(report.exit_accuracy)
        ratios_from = f"{report.split} split ({report.samples} samples)"

    with err_console.status(f"allocating ({allocation})"):
        evaluation = evaluate_design(
            mapper, keys, report_ratios, accuracies, strategy=allocation if given is None else "greedy",
            policy=policy_name, objective=objective, seed=seed, allocation=given, allocation_ratios=alloc_ratios,
        )
    evaluation.calibration = calibration
    paper = None
    if paper_style:
        from exitspace.dynamic.paper_style import paper_style_metrics

        with err_console.status("paper-style per-stage allocations"):
            strategy = allocation if given is None else "greedy"
            paper = paper_style_metrics(mapper, net, report_ratios, strategy, seed).to_dict()
    backbone_bits = next(iter(workload.backbone())).precision.weight
    exit_bits = next((layer.precision.weight for layer in workload if layer.exit), backbone_bits)
    result = {
        "network": workload.name,
        "exits": keys,
        "bits": f"{backbone_bits}/{exit_bits}",
        "hardware": system.name,
        "backend": backend,
        "ratios_from": ratios_from,
        **evaluation.to_dict(),
        "paper_style": paper,
    }
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1))
    if save_allocation is not None:
        save_allocation.parent.mkdir(parents=True, exist_ok=True)
        save_allocation.write_text(json.dumps(evaluation.schedule.allocation.to_dict(), indent=1))
    if as_json:
        print(json.dumps(result))
    else:
        _print(result)
