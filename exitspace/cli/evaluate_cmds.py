"""``exitspace evaluate``: one EENN design on one system: per-stage costs on one allocation, dynamic metrics."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import numpy as np
import typer
from rich import box
from rich.console import Console
from rich.table import Table

from exitspace.cli.app import app, console, err_console, user_errors
from exitspace.errors import ConfigError
from exitspace.workload.layer import Precision, Workload

if TYPE_CHECKING:
    from exitspace.dynamic import Calibration, Evaluation, ExitScorer
    from exitspace.mapping import Allocation, Mapper, StagedNetwork
    from exitspace.train.exit_table import ExitTable


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


def _pct(value: float | None) -> str:
    """A share as a percentage with one decimal; "-" for None."""
    return "-" if value is None else f"{100 * value:.1f}%"


def _print(result: dict[str, Any]) -> None:
    """Print an evaluation result: the per-stage table, the summary table and the notes under them."""
    out = console if console.width >= 150 else Console(width=150)  # never squash the table when piped
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
    from exitspace.hardware.loader import load_system
    from exitspace.mapping import Mapper, resolve_exits
    from exitspace.train.exit_table import ExitTable

    options = _RatioOptions(ratios, exit_accuracy, exit_table, thresholds, target_drop, max_cost_ratio)
    exit_labels, head_types = _names(exits), _names(heads)
    _check_option_combination(objective, policy, head_types, options)
    given = _allocation_file(allocation)

    table = ExitTable.load(exit_table) if exit_table is not None else None
    with err_console.status("building workload, system and per-layer costs"):
        workload = _workload(model, workload_file, width, head_types, bits, None if table is None else table.meta)
        system = load_system(hardware)
        mapper = Mapper(workload, system, get_backend(backend))
    keys = resolve_exits(workload, exit_labels, head_types)
    policy_name = "overlap" if overlap else "wait"
    design = _Design(mapper, keys, mapper.network(keys), given, allocation, objective, policy_name, seed)
    if ratios is not None:
        derived = _given_ratios(ratios, exit_accuracy)
    else:
        assert table is not None
        derived = _table_ratios(table, policy, options, design)

    evaluation = design.evaluate(derived)
    paper = design.paper_style(derived.report) if paper_style else None
    result = _result(design, backend, derived.source, evaluation, paper)
    _write_outputs(result, evaluation.schedule.allocation, out, save_allocation)
    if as_json:
        print(json.dumps(result))
    else:
        _print(result)


@dataclass(frozen=True)
class _RatioOptions:
    """Where the exit ratios come from: --ratios (with --exit-accuracy), or --exit-table with one of
    --thresholds, --target-drop, --max-cost-ratio."""

    ratios: str | None
    exit_accuracy: str | None
    exit_table: Path | None
    thresholds: str | None
    target_drop: float | None
    max_cost_ratio: float | None


@dataclass(frozen=True)
class _Ratios:
    """Exit ratios and accuracies to report, the ratios to allocate for (None: the reported ones), where
    they come from, and the threshold calibration where thresholds were calibrated."""

    report: list[float]
    accuracies: list[float | None] | None
    allocation: list[float] | None = None
    source: str = "given ratios"
    calibration: Calibration | None = None


@dataclass(frozen=True)
class _Design:
    """One EENN design on one system: the mapper, the exits (head keys) and their staged network, and how
    to allocate it (a given allocation or a strategy, objective, ``wait``/``overlap`` policy, GA seed)."""

    mapper: Mapper
    keys: list[str]
    net: StagedNetwork
    given: Allocation | None
    strategy: str
    objective: str
    policy_name: str
    seed: int

    @property
    def computed_strategy(self) -> str:
        """Strategy of the allocations computed here: --allocation, or greedy where that is a file."""
        return self.strategy if self.given is None else "greedy"

    def cost_per_exit(self, ratios: np.ndarray) -> np.ndarray:
        """The objective's cost of leaving at each exit, on the allocation for ``ratios`` (or the given one)."""
        mapper, net = self.mapper, self.net
        found = self.given or mapper.allocate(net, self.strategy, ratios, self.objective, self.policy_name, self.seed)
        schedule = mapper.schedule(net, found, self.policy_name)
        return _cost_per_exit(schedule.cum_energy, schedule.cum_latency, self.objective)

    def evaluate(self, ratios: _Ratios) -> Evaluation:
        """Allocate (unless given), schedule and score the design on ``ratios``, with their calibration."""
        from exitspace.dynamic import evaluate_design

        with err_console.status(f"allocating ({self.strategy})"):
            evaluation = evaluate_design(
                self.mapper, self.keys, ratios.report, ratios.accuracies, strategy=self.computed_strategy,
                policy=self.policy_name, objective=self.objective, seed=self.seed, allocation=self.given,
                allocation_ratios=ratios.allocation,
            )
        evaluation.calibration = ratios.calibration
        return evaluation

    def paper_style(self, ratios: list[float]) -> dict[str, Any]:
        """The paper's figures (per-stage allocations, heads in the static energy) for ``ratios``."""
        from exitspace.dynamic.paper_style import paper_style_metrics

        with err_console.status("paper-style per-stage allocations"):
            return paper_style_metrics(self.mapper, self.net, ratios, self.computed_strategy, self.seed).to_dict()


def _check_option_combination(objective: str, confidence: str, head_types: list[str], options: _RatioOptions) -> None:
    """One-line errors for an unknown objective or confidence, no head type, or ratio options that do not
    say where the exit ratios come from."""
    from exitspace.dynamic.confidence import check_confidence
    from exitspace.mapping.schedule import check_objective

    check_objective(objective)
    check_confidence(confidence)
    if not head_types:
        raise ConfigError("--heads: empty; give a head type such as pool4_fc1")
    if (options.ratios is None) == (options.exit_table is None):
        raise ConfigError("--ratios / --exit-table: give exactly one (exit ratios directly, or an exit table to derive them)")
    if options.exit_table is None and (
        options.thresholds or options.target_drop is not None or options.max_cost_ratio is not None
    ):
        raise ConfigError("--thresholds/--target-drop/--max-cost-ratio need --exit-table")


def _allocation_file(allocation: str) -> Allocation | None:
    """The allocation of ``--allocation FILE.json``; None where it names a strategy."""
    from exitspace.mapping import Allocation
    from exitspace.mapping.optimise import STRATEGIES

    if allocation in STRATEGIES:
        return None
    path = Path(allocation)
    if not path.suffix.lower() == ".json":
        raise ConfigError(f"--allocation: unknown strategy {allocation!r}; use one of {list(STRATEGIES)} or a .json file")
    return Allocation.load(path)


def _given_ratios(ratios: str, exit_accuracy: str | None) -> _Ratios:
    """The exit ratios of --ratios, with the accuracies of --exit-accuracy where given."""
    report = _floats(ratios, "--ratios")
    accuracies: list[float | None] | None = None
    if exit_accuracy is not None:
        accuracies = list(_floats(exit_accuracy, "--exit-accuracy"))
    return _Ratios(report, accuracies)


def _table_ratios(table: ExitTable, confidence: str, options: _RatioOptions, design: _Design) -> _Ratios:
    """Exit ratios and accuracies from an exit table, for the given thresholds or thresholds calibrated on
    val: allocated for the val ratios, reported on test where the table has it."""
    from exitspace.dynamic import ExitScorer, parse_thresholds

    keys = design.keys
    val = ExitScorer.from_exit_table(table, "val", keys, confidence)
    test = ExitScorer.from_exit_table(table, "test", keys, confidence) if "test" in table.logits else None
    chosen = (options.target_drop is not None) + (options.max_cost_ratio is not None) + (options.thresholds is not None)
    if chosen != 1:
        raise ConfigError("--exit-table: give exactly one of --thresholds, --target-drop, --max-cost-ratio")
    calibration: Calibration | None = None
    if options.thresholds is not None:
        vector = parse_thresholds(_floats(options.thresholds, "--thresholds"), len(keys))
        val_out = val.outcome(vector)
        report = test.outcome(vector) if test is not None else val_out
    else:
        calibration = _calibrate(val, test, options, design)
        val_out = calibration.val
        report = calibration.test or val_out
    return _Ratios(
        allocation=list(val_out.ratios),
        report=list(report.ratios),
        accuracies=list(report.exit_accuracy),
        source=f"{report.split} split ({report.samples} samples)",
        calibration=calibration,
    )


def _calibrate(val: ExitScorer, test: ExitScorer | None, options: _RatioOptions, design: _Design) -> Calibration:
    """Thresholds calibrated on val for --target-drop or --max-cost-ratio. The cost per exit depends on the
    allocation, which depends on the ratios the thresholds give: iterate (at most 3 rounds, from equal
    ratios) until the thresholds repeat."""
    from exitspace.dynamic import calibrate

    max_cost_ratio = options.max_cost_ratio
    current = np.full(len(design.keys), 1.0 / len(design.keys))
    previous: list[float] | None = None
    with err_console.status("calibrating thresholds on val"):
        for _ in range(3):
            cost = design.cost_per_exit(current)
            calibration = calibrate(
                val, cost, target_drop=options.target_drop,
                max_cost=None if max_cost_ratio is None else max_cost_ratio * float(cost[-1]), test=test,
            )
            current = np.asarray(calibration.val.ratios)
            if calibration.thresholds == previous:
                break
            previous = calibration.thresholds
    return calibration


def _result(
    design: _Design, backend: str, ratios_from: str, evaluation: Evaluation, paper: dict[str, Any] | None
) -> dict[str, Any]:
    """The full result: network, exits, bits, hardware, backend, where the ratios come from, the evaluation
    and the paper-style figures."""
    workload = design.mapper.workload
    backbone_bits = next(iter(workload.backbone())).precision.weight
    exit_bits = next((layer.precision.weight for layer in workload if layer.exit), backbone_bits)
    return {
        "network": workload.name,
        "exits": design.keys,
        "bits": f"{backbone_bits}/{exit_bits}",
        "hardware": design.mapper.system.name,
        "backend": backend,
        "ratios_from": ratios_from,
        **evaluation.to_dict(),
        "paper_style": paper,
    }


def _write_outputs(
    result: dict[str, Any], allocation: Allocation, out: Path | None, save_allocation: Path | None
) -> None:
    """Write the result JSON to ``out`` and the allocation JSON to ``save_allocation`` (where given)."""
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1))
    if save_allocation is not None:
        save_allocation.parent.mkdir(parents=True, exist_ok=True)
        save_allocation.write_text(json.dumps(allocation.to_dict(), indent=1))
