"""Resuming safely: a run directory keeps training only under the config it was started with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from exitspace.errors import ConfigError
from exitspace.train.config import TrainConfig
from exitspace.train.trainer import CHECKPOINT, DONE, FINAL

SAVED_CONFIG = "config.yaml"
FLOAT_SIDE = ("float", "swa", "heads")  # the phases before QAT, whose last one QAT and the float table start from

# Fields that may change between runs of one directory: where things are, how fast they run, how many
# epochs (the schedule is rescaled), which pairs to add. Everything else changes what is trained; the QAT
# recipe only while a QAT phase is half done (finished tables record the recipe that made them).
# The SWA recipe may change (or SWA be added) only while nothing has been built on the float weights yet,
# the heads recipe (or the heads phase be added) only while that phase has not begun and nothing rests on it.
CHANGEABLE = ("name", "runtime.", "optim.epochs", "qat.epochs", "qat.pairs", "data.path", "data.cache_dir", "data.checksum")
QAT_RECIPE = ("qat.",)
SWA_RECIPE = ("swa.",)
HEADS_RECIPE = ("heads.",)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): value}


def _has_progress(run_dir: Path) -> bool:
    """Something was trained here: a float checkpoint, finished float-side weights (an exported teacher may
    keep only its SWA or heads phase), or an exit table."""
    return ((run_dir / "float" / CHECKPOINT).is_file() or any((run_dir / phase / FINAL).is_file() for phase in FLOAT_SIDE)
            or any((run_dir / "exit_tables").glob("*.npz")))


def _heads_begun(run_dir: Path) -> bool:
    """The heads phase has a checkpoint, or QAT or an exit table rests on the weights it would change."""
    return (any((run_dir / "heads").glob("*.pt")) or any(run_dir.glob("qat_*/*.pt"))
            or any((run_dir / "exit_tables").glob("*.npz")))


def _built_on_float(run_dir: Path) -> bool:
    return any((run_dir / "swa").glob("*.pt")) or _heads_begun(run_dir)


def _qat_in_progress(run_dir: Path) -> bool:
    return any(not (phase / DONE).is_file() for phase in run_dir.glob("qat_*") if (phase / CHECKPOINT).is_file())


def saved_config(run_dir: Path) -> TrainConfig | None:
    """The config that trained ``run_dir``'s float checkpoint; None without one or without a readable copy."""
    path = Path(run_dir) / SAVED_CONFIG
    if not path.is_file() or not _has_progress(Path(run_dir)):
        return None
    try:
        return TrainConfig.model_validate(yaml.safe_load(path.read_text()) or {})
    except (yaml.YAMLError, ValidationError):
        return None


def config_changes(saved: dict[str, Any], now: dict[str, Any], ignore: tuple[str, ...] = CHANGEABLE) -> dict[str, tuple[Any, Any]]:
    """Dotted fields whose value differs, except those starting with ``ignore``: {field: (saved, now)}."""
    before, after = _flatten(saved), _flatten(now)
    return {key: (before.get(key), after.get(key)) for key in sorted(before.keys() | after.keys())
            if not key.startswith(ignore) and before.get(key) != after.get(key)}


def check_resumable(run_dir: Path, saved: dict[str, Any], now: dict[str, Any]) -> None:
    """One-line ConfigError when ``run_dir``'s checkpoints were trained under a config other than ``now``.

    Both are config dumps; give the resolved model spec as ``model`` (a config may or may not spell out
    the defaults).
    """
    ignore: tuple[str, ...] = CHANGEABLE if _qat_in_progress(Path(run_dir)) else CHANGEABLE + QAT_RECIPE
    if not _built_on_float(Path(run_dir)):
        ignore += SWA_RECIPE
    if not _heads_begun(Path(run_dir)):
        ignore += HEADS_RECIPE
    changes = config_changes(saved, now, ignore)
    if changes:
        key, (old, new) = next(iter(changes.items()))
        more = f" (and {len(changes) - 1} more field(s))" if len(changes) > 1 else ""
        raise ConfigError(f"{key}: {run_dir} was trained with {old!r}, the config now says {new!r}{more}; "
                          f"use a new --run-dir, or restore {key} to resume")
