"""``exitspace finetune``: fine-tune one searched design alone and score it before and after."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from exitspace.cli.app import app, console, err_console, user_errors


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _table(report: dict[str, Any]) -> Table:
    table = Table(title=f"{report['design']}: supernet vs fine-tuned ({report['epochs']} epochs at lr {report['lr']})")
    for column in ("split", "weights", "accuracy", "exit ratios", "ELP (pJ*cycles)", "ELP vs static"):
        table.add_column(column, justify="left" if column in ("split", "weights", "exit ratios") else "right")
    for split, row in report["splits"].items():
        for which, scored in row.items():
            ratios = " ".join(f"{r:.3f}" for r in scored["exit_ratios"])
            reduction = scored.get("elp_reduction")
            table.add_row(split, which, _percent(scored["accuracy"]), ratios, f"{scored['elp']:.4g}",
                          "-" if reduction is None else f"{-100 * reduction:+.1f}%")
    return table


@app.command()
@user_errors
def finetune(
    results: Annotated[Path, typer.Argument(help="results.json of `exitspace run`/`search` (or its run directory)")],
    run_dir: Annotated[Path, typer.Argument(help="the `exitspace train` run whose exit tables the search used")],
    design: Annotated[Optional[str], typer.Option("--design", help="index into the Pareto front or a design name "
                                                  "(default: the headline design)")] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="default: the run's qat.epochs")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="default: the run's qat.lr")] = None,
    head_grad_scale: Annotated[Optional[float], typer.Option(
        "--head-grad-scale", help="gradient factor from the design's early exits into the backbone (default: the run's)")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="default: RUN_DIR/finetune/<design>")] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", min=1, help="torch threads (default: the run's)")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print finetune.json on stdout")] = False,
) -> None:
    """Fine-tune one searched design with its own exits only, then compare accuracy, exit ratios and ELP
    with the supernet's (same allocation; searched thresholds, and thresholds refitted on validation).
    Resumes like `exitspace train`."""
    from exitspace.flow.finetune import verify_design
    from exitspace.train.progress import Reporter

    reporter = Reporter(console=err_console, quiet=json_output)
    report = verify_design(results, run_dir, design, epochs, lr, head_grad_scale, out, reporter, threads)
    if json_output:
        print(json.dumps(report))
        return
    console.print(_table(report))
    console.print(f"written: {report['out_dir']}/finetune.json, exit table {report['exit_table']}")
