"""Resuming safely: a run directory keeps training only under the config it was started with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from exitspace.errors import ConfigError
from exitspace.train.config import TrainConfig

SAVED_CONFIG = "config.yaml"

# Fields that may change between runs of one directory: where things are, how fast they run, how many
# epochs (the schedule is rescaled), which pairs to add. Everything else changes what is trained.
CHANGEABLE = ("name", "runtime.", "optim.epochs", "qat.epochs", "qat.pairs", "data.path", "data.cache_dir", "data.checksum")


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): value}


def _has_progress(run_dir: Path) -> bool:
    phases = [p for p in run_dir.iterdir() if p.is_dir() and (p.name == "float" or p.name.startswith("qat_"))]
    return any(any(phase.glob("*.pt")) for phase in phases) or any((run_dir / "exit_tables").glob("*.npz"))


def saved_config(run_dir: Path) -> TrainConfig | None:
    """The config that trained the checkpoints in ``run_dir``; None without checkpoints or a readable copy."""
    path = Path(run_dir) / SAVED_CONFIG
    if not path.is_file() or not _has_progress(Path(run_dir)):
        return None
    try:
        return TrainConfig.model_validate(yaml.safe_load(path.read_text()) or {})
    except (yaml.YAMLError, ValidationError):
        return None


def config_changes(saved: dict[str, Any], now: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Dotted fields whose value differs, except the CHANGEABLE ones: {field: (saved, now)}."""
    before, after = _flatten(saved), _flatten(now)
    return {key: (before.get(key), after.get(key)) for key in sorted(before.keys() | after.keys())
            if not key.startswith(CHANGEABLE) and before.get(key) != after.get(key)}


def check_resumable(run_dir: Path, saved: dict[str, Any], now: dict[str, Any]) -> None:
    """One-line ConfigError when ``run_dir``'s checkpoints were trained under a config other than ``now``.

    Both are config dumps; give the resolved model spec as ``model`` (a config may or may not spell out
    the defaults).
    """
    changes = config_changes(saved, now)
    if changes:
        key, (old, new) = next(iter(changes.items()))
        more = f" (and {len(changes) - 1} more field(s))" if len(changes) > 1 else ""
        raise ConfigError(f"{key}: {run_dir} was trained with {old!r}, the config now says {new!r}{more}; "
                          f"use a new --run-dir, or restore {key} to resume")
