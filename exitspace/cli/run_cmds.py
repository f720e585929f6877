"""``exitspace run``: the whole flow from one YAML config, with a progress bar per phase."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Optional

import typer
import yaml
from rich.text import Text
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from exitspace.cli.app import app, console, err_console, user_errors
from exitspace.config import MAX_TRIALS, RunConfig, load_config
from exitspace.errors import ConfigError
from exitspace.flow.phases import Phases
from exitspace.flow.run import FlowResult, run_flow


LOG_EVERY_S = 5.0
"""Seconds between the plain progress lines of a phase when stderr is not a terminal (a log file)."""


class RichPhases(Phases):
    """A rich progress bar per phase (on stderr); when stderr is not a terminal, plain lines: each phase's start
    and end, and its progress every :data:`LOG_EVERY_S` seconds. Nothing when quiet."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self._logged: dict[str, float] = {}
        self.progress = Progress(TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.fields[note]}"), console=err_console,
                                 disable=quiet or not err_console.is_terminal)
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> "RichPhases":
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def _task(self, name: str, total: int | None = None) -> TaskID:
        if name not in self.tasks:
            self.tasks[name] = self.progress.add_task(name, total=total, note="")
        return self.tasks[name]

    def start(self, name: str, total: int | None = None) -> None:
        self._task(name, total)
        if not self.progress.live.is_started and not self.quiet:
            err_console.print(f"{name} ...", highlight=False)

    def update(self, name: str, done: int, total: int) -> None:
        self.progress.update(self._task(name, total), completed=done, total=total)
        if self.quiet or self.progress.live.is_started:
            return
        now = time.monotonic()
        last = self._logged.setdefault(name, now)
        if last < 0:
            return  # the phase's last line is out
        if done >= total or now - last >= LOG_EVERY_S:
            self._logged[name] = -1.0 if done >= total else now
            elapsed = self.progress.tasks[self.tasks[name]].elapsed or 0.0
            err_console.print(f"{name}: {done}/{total} ({elapsed:.0f} s)", highlight=False)

    def done(self, name: str, message: str = "") -> None:
        task = self._task(name)
        total = self.progress.tasks[self.tasks[name]].total
        self.progress.update(task, completed=total or 1, total=total or 1, note=message[:80])
        if not self.progress.live.is_started and not self.quiet:
            err_console.print(f"{name} done{': ' + message if message else ''}", highlight=False, soft_wrap=True)

    def log(self, message: str) -> None:
        if not self.quiet:
            self.progress.console.print(message, highlight=False, soft_wrap=True)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``--set search.trials=500`` -> {"search.trials": 500} (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: write KEY=VALUE, e.g. --set search.trials=500")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"--set {item!r}: value is not valid YAML; quote it") from None
    return out


def summary(result: FlowResult) -> dict[str, Any]:
    """The machine-readable summary of a run."""
    r = result.results
    return {
        "run_dir": str(result.run_dir),
        "report": {k: str(v) for k, v in result.paths.items()},
        "headline": r.headline.model_dump(mode="json", exclude_unset=True),
        "study": r.study.model_dump(mode="json"),
        "pareto_designs": len(r.pareto),
        "seconds": result.seconds,
    }


def print_summary(result: FlowResult) -> None:
    """A few lines for people."""
    r = result.results
    head = r.headline
    console.print(Text.assemble((r.name, "bold"), f": {r.study.trials} trials, {len(r.pareto)} Pareto designs "
                                f"({result.seconds:.0f} s)"), highlight=False)
    if head.elp_reduction is not None:
        console.print(
            f"ELP -{100 * head.elp_reduction:.1f}% vs {head.reference} at "
            f"{head.test_accuracy_loss_points or 0.0:.2f} points accuracy loss (test): {head.design}",
            highlight=False,
        )
    else:
        console.print(f"no Pareto design within {head.max_loss_points:.0f} point of {head.reference}",
                      highlight=False)
    if result.paths:
        console.print(f"report: {result.paths.get('html', result.paths.get('markdown'))}", highlight=False)


def _load(config: Optional[str], overrides: list[str]) -> RunConfig:
    return load_config(config, parse_overrides(overrides))


@app.command()
@user_errors
def run(
    config: Optional[str] = typer.Argument(
        None, help="run config: a YAML path or a name under configs/ (default: configs/default.yaml)"
    ),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="run directory (default ./runs/<config name>)"),
    trials: Optional[int] = typer.Option(None, "--trials", min=1, max=MAX_TRIALS, help="override search.trials"),
    set_: list[str] = typer.Option([], "--set", help="override a config key, e.g. --set search.seed=3"),
    as_json: bool = typer.Option(False, "--json", help="print a JSON summary on stdout"),
) -> None:
    """The whole flow: exit tables (committed, or trained/resumed), cost, search with baselines, report.

    Re-running the same command resumes: training checkpoints, exit tables, the cost cache and the study
    are kept in the run directory, and Ctrl-C loses no finished trial.
    """
    cfg = _load(config, set_)
    with RichPhases(quiet=as_json) as phases:
        result = run_flow(cfg, run_dir, trials=trials, phases=phases)
    if as_json:
        console.print_json(json.dumps(summary(result)))
    else:
        print_summary(result)
