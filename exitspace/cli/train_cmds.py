"""``exitspace train``: float supernet, QAT per precision pair, exit tables; ``exitspace train-export``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from exitspace.cli.app import app, console, err_console, user_errors


@app.command()
@user_errors
def train(
    config: Annotated[Path, typer.Argument(help="training YAML, e.g. configs/train/smoke.yaml")],
    run_dir: Annotated[Optional[Path], typer.Option("--run-dir", help="default: runs/<config name>")] = None,
    pairs: Annotated[Optional[str], typer.Option("--pairs", help="precision pairs, e.g. 32/32,8/8,8/4 (default: the config's)")] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", help="torch threads (default: the config's, else all cores)")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print the summary as JSON on stdout")] = False,
) -> None:
    """Train the EENN supernet, fine-tune it per precision pair (QAT) and write every exit table.

    Re-running resumes from the last epoch checkpoint and skips finished pairs.
    """
    from exitspace.train.config import load_train_config
    from exitspace.train.pipeline import LOG, run_training
    from exitspace.train.progress import Reporter
    from exitspace.precision import parse_pair

    cfg = load_train_config(config)
    if threads is not None:
        if threads < 1:
            from exitspace.errors import ConfigError

            raise ConfigError(f"--threads: must be >= 1 (got {threads})")
        cfg.runtime.threads = threads
    pair_list = [p.strip() for p in pairs.split(",") if p.strip()] if pairs else None
    for text in pair_list or []:
        parse_pair(text)
    target = run_dir or Path("runs") / cfg.name
    reporter = Reporter(console=err_console, log_file=target / LOG, log_every=cfg.runtime.log_every)
    summary = run_training(cfg, target, pairs=pair_list, reporter=reporter)
    if json_output:
        print(json.dumps({"run_dir": str(target), "pairs": {p: v["accuracy"] for p, v in summary["pairs"].items()},
                          "head_keys": summary["head_keys"]}))
        return
    final = summary["head_keys"][-1]
    for pair, entry in summary["pairs"].items():
        acc = entry["accuracy"]["test"]
        best = max(acc, key=acc.get)
        console.print(f"{pair}: final {final} {100 * acc[final]:.2f}%, first {summary['head_keys'][0]} "
                      f"{100 * acc[summary['head_keys'][0]]:.2f}%, best {best} {100 * acc[best]:.2f}%  ({target / entry['exit_table']})")


@app.command("train-export")
@user_errors
def train_export(
    run_dir: Annotated[Path, typer.Argument(help="a finished run directory")],
    out_dir: Annotated[Path, typer.Argument(help="results folder, e.g. results/resnet20_cifar10")],
    heads: Annotated[Optional[str], typer.Option("--heads", help="keep only these head types, e.g. pool4_fc1,pool4_fc2")] = None,
    weights: Annotated[bool, typer.Option("--weights", help="also the config and the float phase's checkpoint, so OUT_DIR can teach "
                                          "other runs (loss.teachers) on machines without the run directory")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="print what was written as JSON")] = False,
) -> None:
    """Copy a run's exit tables and summary into OUT_DIR, write every pair's weights (OUT_DIR/weights/) and
    results.md (per-head accuracy per pair)."""
    from exitspace.train.results import export_results

    head_list = [h.strip() for h in heads.split(",") if h.strip()] if heads else None
    info = export_results(run_dir, out_dir, head_list, weights=weights)
    if json_output:
        print(json.dumps(info))
    else:
        total = sum(info["exit_table_bytes"].values())
        extra = f", the float checkpoint ({info['weight_bytes'] / 1e6:.1f} MB)" if weights else ""
        pair_bytes = sum(info["pair_weight_bytes"].values())
        console.print(f"wrote {out_dir}: {len(info['exit_table_bytes'])} exit tables ({total / 1e6:.1f} MB), "
                      f"{len(info['pair_weight_bytes'])} pairs' weights ({pair_bytes / 1e6:.1f} MB), summary.json, "
                      f"results.md{extra}")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _status_table(status: dict[str, Any]) -> Table:
    table = Table(title=f"{status['run_dir']}: {status['name']} ({status['backbone']})",
                  caption="validation accuracy: last head (latest, best epoch), first head")
    for column in ("phase", "state", "epochs", "last", "best", "first", "per epoch", "left"):
        table.add_column(column, justify="left" if column in ("phase", "state") else "right")
    for phase in status["phases"]:
        within = f" +{phase['steps_into_next']} steps" if phase["steps_into_next"] else ""
        table.add_row(phase["name"], phase["state"], f"{phase['epochs_done']}/{phase['epochs']}{within}",
                      _percent(phase["val_acc_last_head"]), _percent(phase["best_val_acc_last_head"]),
                      _percent(phase["val_acc_first_head"]),
                      _duration(phase["seconds_per_epoch"]), _duration(phase["seconds_left"]))
    return table


@app.command("train-status")
@user_errors
def train_status(
    run_dir: Annotated[Path, typer.Argument(help="a run directory of `exitspace train` (finished or not)")],
    json_output: Annotated[bool, typer.Option("--json", help="print the status as JSON")] = False,
) -> None:
    """Where a training run stands: each phase's epochs, validation accuracy, pace and time left,
    the exit tables written, and the log's last line (works while the run trains)."""
    from exitspace.train.status import run_status

    status = run_status(run_dir)
    if json_output:
        print(json.dumps(status))
        return
    console.print(_status_table(status))
    pid = status["training_pid"]
    console.print(f"training now (pid {pid})" if pid is not None else "not training now")
    tables = ", ".join(f"{t['pair']} {_percent(t['test_acc_last_head']) if t['written'] else 'not yet'}"
                       for t in status["exit_tables"])
    console.print(f"exit tables (last head, test): {tables}")
    views = status["teacher_views"]
    if views is not None:
        built = f"{views['images_done']}/{views['images']} images predicted" if views["images"] else "not built yet"
        console.print(f"teacher views: {views['per_image']} per training image, {built}")
    for phase in status["phases"]:
        if phase["state"] == "partial":
            console.print(f"{phase['name']}: checkpoint saved {_duration(time.time() - phase['saved'])} ago")
    if status["last_log_line"] is not None:
        console.print(f"log, {_duration(status['seconds_since_log'])} ago: {status['last_log_line']}", highlight=False)


@app.command("data-download")
@user_errors
def data_download(
    dest: Annotated[Path, typer.Argument(help="folder to put cifar-10-python.tar.gz in")],
) -> None:
    """Download the canonical CIFAR-10 python release (needs internet) and check its MD5."""
    from exitspace.data.cifar10 import download_cifar10_python

    with console.status("downloading CIFAR-10 (163 MB)..."):
        path = download_cifar10_python(dest)
    console.print(f"{path}: MD5 verified; use it as data.path in a training config")
