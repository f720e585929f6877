"""``exitspace search`` (the search on existing exit tables), ``exitspace report`` (re-render a report) and
``exitspace compare`` (fronts of several runs at equal test accuracy)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from exitspace.cli.app import app, console, user_errors
from exitspace.cli.run_cmds import RichPhases, _load, print_summary, summary
from exitspace.config import MAX_TRIALS
from exitspace.errors import DataError
from exitspace.precision import pair_label, parse_pair
from exitspace.report.compare import compare_fronts
from exitspace.flow.run import run_flow
from exitspace.search.results import load_results, results_path


@app.command()
@user_errors
def search(
    config: Optional[str] = typer.Argument(None, help="run config (YAML path or name under configs/)"),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="run directory (default ./runs/<config name>)"),
    trials: Optional[int] = typer.Option(None, "--trials", min=1, max=MAX_TRIALS, help="override search.trials"),
    set_: list[str] = typer.Option([], "--set", help="override a config key, e.g. --set search.storage=postgresql://..."),
    no_report: bool = typer.Option(False, "--no-report", help="write results.json only (no figures)"),
    as_json: bool = typer.Option(False, "--json", help="print a JSON summary on stdout"),
) -> None:
    """The co-design search on existing exit tables (never trains); resumes its study.

    For workers on several machines, run the same command on each against one shared storage:
    --set search.storage=postgresql://user:password@host/db (the trial budget is shared).
    """
    cfg = _load(config, set_)
    with RichPhases(quiet=as_json) as phases:
        result = run_flow(cfg, run_dir, trials=trials, phases=phases, write=not no_report, allow_train=False)
    if as_json:
        console.print_json(json.dumps(summary(result)))
    else:
        print_summary(result)


@app.command()
@user_errors
def report(
    source: Path = typer.Argument(..., help="a run directory or a results.json"),
    out: Optional[Path] = typer.Option(None, "--out", help="output folder (default: next to results.json)"),
    designs: int = typer.Option(5, "--designs", min=1, help="designs shown in detail"),
    as_json: bool = typer.Option(False, "--json", help="print the written paths as JSON"),
) -> None:
    """Render the Markdown/HTML report and figures from a results.json."""
    from exitspace.report.render import write_report  # matplotlib: only for the commands that draw

    paths = write_report(load_results(source), out or results_path(source).parent, designs=designs)
    if as_json:
        console.print_json(json.dumps({k: str(v) for k, v in paths.items()}))
    else:
        console.print(f"report: {paths.get('html', paths['markdown'])}", highlight=False)


@app.command()
@user_errors
def compare(
    sources: list[Path] = typer.Argument(..., help="run directories or results.json files of the same hardware and workload"),
    accuracies: str = typer.Option("0.84,0.85,0.86,0.87,0.88", "--accuracies", help="comma-separated test accuracies"),
    precision: Optional[str] = typer.Option(None, "--precision", help="only designs of this pair, e.g. 8/8"),
    as_json: bool = typer.Option(False, "--json", help="print the table as JSON"),
) -> None:
    """Lowest ELP (x static reference) of each run's Pareto front at or above each test accuracy."""
    try:
        levels = [float(a) for a in accuracies.split(",")]
    except ValueError:
        raise DataError(f"--accuracies: {accuracies!r} is not a comma-separated list of numbers, e.g. 0.85,0.88") from None
    if precision is not None:
        precision = pair_label(parse_pair(precision, "--precision"))
    runs = [(str(source), load_results(source)) for source in sources]
    table = compare_fronts(runs, levels, precision)
    if as_json:
        console.print_json(json.dumps(table))
        return
    grid = Table(title="lowest test ELP / static reference, Pareto designs at >= test accuracy"
                 + (f" ({precision} only)" if precision else ""))
    for column in ["run", "static acc"] + [f">= {a:.1%}" for a in levels]:
        grid.add_column(column, justify="left" if column == "run" else "right")
    for row in table["rows"]:
        cells = ["-" if math.isnan(v) else f"{v:.3f}" for v in row["lowest_elp"]]
        grid.add_row(row["run"], f"{row['static_accuracy']:.2%}", *cells)
    console.print(grid)
