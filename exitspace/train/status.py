"""Where a training run stands, read from its run directory alone: phases, epochs, accuracy, time left."""

from __future__ import annotations

import json
import re
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from exitspace.errors import CheckpointError, ConfigError
from exitspace.models import EENNSpec
from exitspace.precision import FLOAT_BITS, PrecisionPair, pair_slug, parse_pair
from exitspace.train.checkpoint import load_checkpoint
from exitspace.train.config import TrainConfig, load_train_config
from exitspace.train.pipeline import LOG, SUMMARY, exit_table_path
from exitspace.train.run_dir import SAVED_CONFIG
from exitspace.train.stopping import lock_holder
from exitspace.train.teacher_views import VIEWS_FILE
from exitspace.train.trainer import CHECKPOINT, DONE

PACE_EPOCHS = 5  # the pace is the median of this many latest epochs (it changes when the machine is shared)


@dataclass
class PhaseStatus:
    """One phase of a run: ``state`` is "done", "partial" (a checkpoint, no done.json) or "to do"."""

    name: str
    directory: str
    state: str
    epochs: int
    epochs_done: int = 0
    steps_into_next: int = 0
    val_acc_last_head: float | None = None  # after the last finished epoch (the final exit's last head, as logged)
    best_val_acc_last_head: float | None = None
    val_acc_first_head: float | None = None  # after the last finished epoch: how the earliest exit develops
    seconds_per_epoch: float | None = None  # median over the last PACE_EPOCHS finished epochs
    seconds_left: float | None = None  # this phase's remaining epochs at that pace (partial phases only)
    saved: float | None = None  # Unix time of the phase's latest file


@dataclass
class TableStatus:
    """One precision pair's exit table: written or not, and its last head's test accuracy (summary.json)."""

    pair: str
    written: bool
    test_acc_last_head: float | None = None


def _pairs_of(names: list[str]) -> list[PrecisionPair]:
    """Precision pairs of ``b8_e4``-style names, in order (other names are ignored)."""
    matches = [re.fullmatch(r"b(\d+)_e(\d+)", name) for name in names]
    return [(int(match[1]), int(match[2])) for match in matches if match]


def run_pairs(config: TrainConfig, run_dir: Path) -> list[PrecisionPair]:
    """The config's precision pairs, then those a run begun with ``--pairs`` added (QAT folders, exit tables)."""
    pairs = [parse_pair(text) for text in config.qat.pairs]
    begun = sorted(path.name.removeprefix("qat_") for path in run_dir.glob("qat_*") if path.is_dir())
    written = sorted(path.stem.removeprefix("exit_table_") for path in (run_dir / "exit_tables").glob("exit_table_*.npz"))
    for pair in _pairs_of(begun + written):
        if pair not in pairs:
            pairs.append(pair)
    return pairs


def _planned_phases(config: TrainConfig, pairs: list[PrecisionPair]) -> list[tuple[str, str, int]]:
    """(name, directory, epochs) of every phase of the run, QAT ones for ``pairs``."""
    phases = [("float", "float", config.optim.epochs)]
    if config.swa.epochs:
        phases.append(("swa", "swa", config.swa.epochs))
    if config.heads.epochs:
        phases.append(("heads", "heads", config.heads.epochs))
    phases += [(f"qat {b}/{e}", f"qat_{pair_slug((b, e))}", config.qat.epochs)
               for b, e in pairs if (b, e) != (FLOAT_BITS, FLOAT_BITS)]
    return phases


def _json_object(path: Path) -> dict[str, Any]:
    """A JSON object file of the run; one-line CheckpointError when it is not one."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        value = None
    if not isinstance(value, dict):
        raise CheckpointError(f"{path}: not a JSON object; delete it and re-run `exitspace train` to rewrite it")
    return value


def _from_history(status: PhaseStatus, history: list[dict[str, Any]]) -> None:
    """Fill accuracy and pace from a phase's per-epoch records (SWA's "average" record counts for accuracy)."""
    accuracies = [record["val_acc_last_head"] for record in history if "val_acc_last_head" in record]
    if accuracies:
        status.val_acc_last_head, status.best_val_acc_last_head = accuracies[-1], max(accuracies)
    firsts = [record["val_acc_first_head"] for record in history if "val_acc_first_head" in record]
    if firsts:
        status.val_acc_first_head = firsts[-1]
    seconds = [record["seconds"] for record in history if "seconds" in record][-PACE_EPOCHS:]
    if seconds:
        status.seconds_per_epoch = statistics.median(seconds)


def phase_status(run_dir: Path, name: str, directory: str, epochs: int) -> PhaseStatus:
    """The status of one phase from its ``done.json`` or its checkpoint (read memory-mapped)."""
    phase_dir = run_dir / directory
    status = PhaseStatus(name=name, directory=directory, state="to do", epochs=epochs)
    if (phase_dir / DONE).is_file():
        done = _json_object(phase_dir / DONE)
        status.state, status.epochs = "done", int(done.get("epochs", epochs))
        status.epochs_done, status.saved = status.epochs, (phase_dir / DONE).stat().st_mtime
        _from_history(status, done.get("history", []))
    elif (phase_dir / CHECKPOINT).is_file():
        state = load_checkpoint(phase_dir / CHECKPOINT, mmap=True)
        status.state, status.saved = "partial", (phase_dir / CHECKPOINT).stat().st_mtime
        status.epochs_done, status.steps_into_next = int(state["epoch"]), int(state.get("step", 0))
        _from_history(status, list(state["history"]))
        if status.seconds_per_epoch is not None:
            spent = float((state.get("partial") or {}).get("seconds", 0.0))
            status.seconds_left = max(0.0, (epochs - status.epochs_done) * status.seconds_per_epoch - spent)
    return status


def _tables(run_dir: Path, pairs: list[PrecisionPair]) -> list[TableStatus]:
    summary = _json_object(run_dir / SUMMARY) if (run_dir / SUMMARY).is_file() else {}
    final_key = (summary.get("head_keys") or [None])[-1]
    tables = []
    for pair in pairs:
        key = f"{pair[0]}/{pair[1]}"
        written = exit_table_path(run_dir, pair).is_file()
        accuracy = summary.get("pairs", {}).get(key, {}).get("accuracy", {}).get("test", {}).get(final_key)
        tables.append(TableStatus(pair=key, written=written, test_acc_last_head=accuracy))
    return tables


def _teacher_views(config: TrainConfig, run_dir: Path) -> dict[str, Any] | None:
    """With ``loss.teacher_views``: views per image, and how many training images the teachers have predicted
    (``images`` is None before the build has saved anything)."""
    if not config.loss.teacher_views:
        return None
    views: dict[str, Any] = {"per_image": config.loss.teacher_views, "images_done": 0, "images": None}
    if (run_dir / VIEWS_FILE).is_file():
        state = load_checkpoint(run_dir / VIEWS_FILE, mmap=True)
        views.update(images_done=int(state["done"]), images=int(state["offsets"].shape[0]))
    return views


def _last_log_line(run_dir: Path) -> str | None:
    path = run_dir / LOG
    if not path.is_file():
        return None
    with open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - 4096))
        lines = handle.read().decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else None


def run_status(run_dir: Path) -> dict[str, Any]:
    """Every phase and exit table of ``run_dir`` (an ``exitspace train`` run directory), and its last log line."""
    run_dir = Path(run_dir)
    if not (run_dir / SAVED_CONFIG).is_file():
        raise ConfigError(f"{run_dir}: not a training run directory (no {SAVED_CONFIG}); "
                          f"start one with `exitspace train CONFIG --run-dir {run_dir}`")
    config = load_train_config(run_dir / SAVED_CONFIG)
    pairs = run_pairs(config, run_dir)
    phases = [phase_status(run_dir, *planned) for planned in _planned_phases(config, pairs)]
    log_path = run_dir / LOG
    return {
        "run_dir": str(run_dir), "name": config.name, "backbone": EENNSpec.parse(config.model).backbone,
        "phases": [asdict(phase) for phase in phases], "exit_tables": [asdict(t) for t in _tables(run_dir, pairs)],
        "teacher_views": _teacher_views(config, run_dir), "last_log_line": _last_log_line(run_dir),
        "seconds_since_log": time.time() - log_path.stat().st_mtime if log_path.is_file() else None,
        "training_pid": lock_holder(run_dir),
    }
