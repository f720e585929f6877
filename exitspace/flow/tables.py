"""Exit tables (committed, or trained in the run directory) and the workload built from their model spec."""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

from exitspace.config import RunConfig, set_dotted
from exitspace.errors import CheckpointError, ConfigError
from exitspace.files import atomic_write_text
from exitspace.flow.phases import Phases
from exitspace.pathnames import shown_path
from exitspace.precision import PrecisionPair, pair_label
from exitspace.train.exit_table import ExitTable
from exitspace.workload.layer import Workload


def find_tables(directory: Path | None) -> dict[PrecisionPair, Path]:
    """Exit tables (*.npz, searched recursively) by precision pair from their metadata."""
    found: dict[PrecisionPair, Path] = {}
    if directory is None or not directory.is_dir():
        return found
    for path in sorted(directory.rglob("*.npz")):
        table = ExitTable.load(path)  # a corrupt table stops the run: skipping it would change the search
        if table.precision_pair is not None:
            found.setdefault(table.precision_pair, path)
    return found


def needed_pairs(config: RunConfig) -> list[PrecisionPair] | None:
    """Precision pairs the search needs tables for; None: every quantized pair that has a table."""
    pairs = config.search.space.precision_pairs
    return None if pairs is None else [(int(a), int(b)) for a, b in pairs]


def covering_pairs(found: dict[PrecisionPair, Path], pairs: list[PrecisionPair] | None) -> list[PrecisionPair]:
    """The pairs to search with the tables ``found``: ``pairs`` if all are there ([] if not); None: every quantized one."""
    if pairs is None:
        return [p for p in found if p != (32, 32)]
    return pairs if all(p in found for p in pairs) else []


def obtain_tables(config: RunConfig, run_dir: Path, phases: Phases, allow_train: bool = True) -> tuple[dict[PrecisionPair, ExitTable], str]:
    """Committed tables when they cover every needed pair; else train (or resume training) in the run dir."""
    pairs = needed_pairs(config)
    committed_dir = config.resolve_path(config.exit_tables.dir)
    for directory, origin in ((committed_dir, "exit_tables.dir"), (run_dir / "train", "trained in this run")):
        found = find_tables(directory)
        use = covering_pairs(found, pairs)
        if use:
            # cast: tables were found, so the directory is set
            return {p: ExitTable.load(found[p]) for p in use}, f"{origin}: {shown_path(cast(Path, directory))}"
    wanted = "every quantized pair" if pairs is None else str([pair_label(p) for p in pairs])
    train_path = config.resolve_path(config.exit_tables.fallback_train or config.train.config)
    if not allow_train:
        raise CheckpointError(
            f"exit tables for {wanted} not found in {committed_dir} or {run_dir / 'train'}; "
            "run `exitspace run` (which trains) or set exit_tables.dir"
        )
    if train_path is None:
        raise ConfigError(
            "exit_tables.dir has no tables for every pair in search.space.precision_pairs and no training config is "
            "given; set train.config (e.g. configs/train/smoke.yaml)"
        )
    from exitspace.train.config import load_train_config, parse_train_config
    from exitspace.train.pipeline import run_training

    train_config = load_train_config(train_path)
    if config.train.overrides:
        data = train_config.model_dump(mode="json")
        for dotted, value in config.train.overrides.items():
            set_dotted(data, dotted, value)
        train_config = parse_train_config(data, f"{config.source}: train.overrides")
    phases.start("train", None)
    phases.log(f"training {train_path.name} for {wanted} (resumes from {run_dir / 'train'})")
    run_training(train_config, run_dir / "train", pairs=None if pairs is None else [f"{a}/{b}" for a, b in pairs])
    phases.done("train")
    found = find_tables(run_dir / "train")
    use = covering_pairs(found, pairs)
    if not use:
        raise CheckpointError(f"training finished without exit tables for {wanted}; check {run_dir / 'train'}")
    return {p: ExitTable.load(found[p]) for p in use}, f"trained in this run: {shown_path(run_dir / 'train')}"


def obtain_workload(table: ExitTable, run_dir: Path) -> Workload:
    """The supernet's workload from the tables' model spec (cached as workload.json)."""
    spec_data = table.meta.get("model_spec")
    if not spec_data:
        raise CheckpointError("exit table metadata has no model_spec; re-run `exitspace train`")
    path = run_dir / "workload.json"
    stamp = run_dir / "workload.spec.json"
    spec_text = json.dumps(spec_data, sort_keys=True)
    if path.is_file() and stamp.is_file() and stamp.read_text() == spec_text:
        return Workload.from_json(path)
    from exitspace.models.eenn import EENNSpec
    from exitspace.workload.paper import eenn_workload

    workload = eenn_workload(EENNSpec.parse(spec_data), precision_backbone=8)
    workload.to_json(path)
    atomic_write_text(stamp, spec_text)
    return workload
