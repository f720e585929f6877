"""What to export: a searched design (from a results.json) and the trained weights it was searched on.

The weights are looked up where the design's exit tables came from and must be the very network of the
exit table the search scored (its model hash, recorded per precision pair in results.json): a results
folder's ``weights/`` (``exitspace train-export``), or a training run directory (``exitspace run``'s
``train/``, or any ``exitspace train`` run).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exitspace.errors import CheckpointError, ConfigError
from exitspace.models import EENN, EENNSpec
from exitspace.report.finetune import check_entry, design_head_keys, load_results, pick_design
from exitspace.train.quant import PrecisionPair
from exitspace.train.weights import load_pair_weights, weights_path

SUMMARY = "summary.json"


@dataclass(frozen=True)
class Design:
    """One searched design: its name, head keys (network order, final last), thresholds of the early exits
    (``inf`` = never leaves), confidence measure, precision pair, and its figures in the report."""

    name: str
    head_keys: tuple[str, ...]
    thresholds: tuple[float, ...]
    confidence: str
    pair: PrecisionPair
    report: dict[str, Any]


@dataclass
class TrainedNetwork:
    """The supernet a design is cut from, how its inputs were normalised and where its data lives."""

    model: EENN
    model_hash: str
    mean: list[float]
    std: list[float]
    data: dict[str, Any]
    source: Path


def results_file(run_or_results: Path) -> Path:
    """The results.json of a run directory, a results folder or the file itself."""
    path = Path(run_or_results)
    if path.is_dir():
        for candidate in (path / "report" / "results.json", path / "results.json"):
            if candidate.is_file():
                return candidate
    return path


def choose_design(run_or_results: Path, selector: str | None) -> tuple[Design, dict[str, Any], Path]:
    """The design named by ``selector`` (index into the Pareto front, a design name, None: the headline), the
    whole results document, and its path."""
    path = results_file(run_or_results)
    results = load_results(path)
    entry = check_entry(pick_design(results, selector))
    design = entry["design"]
    thresholds = tuple(float("inf") if t is None else float(t) for t in design["thresholds"])
    keys = design_head_keys(design)
    report = {"test": entry["test"], "val": entry["val"], "exit_ratios": entry.get("exit_ratios", {}),
              "exit_accuracy": entry.get("exit_accuracy", {})}
    chosen = Design(entry["name"], keys, thresholds[: len(keys) - 1], design.get("confidence", "max_softmax"),
                    (int(design["precision"][0]), int(design["precision"][1])), report)
    return chosen, results, path


def _candidate_dirs(results: dict[str, Any], results_path: Path, weights: Path | None) -> list[Path]:
    """Where the weights may be: the given folder, the results folder, the run's training directory and the
    run config's ``exit_tables.dir``."""
    from exitspace.config import REPO_ROOT

    if weights is not None:
        return [Path(weights)]
    report_dir = results_path.parent
    run_dir = report_dir.parent if report_dir.name == "report" else report_dir
    found = [run_dir, report_dir, run_dir / "train"]
    config = results.get("config") or {}
    table_dir = (config.get("exit_tables") or {}).get("dir")
    if table_dir:
        relative = Path(table_dir).expanduser()
        source = config.get("source")
        found += [relative] if relative.is_absolute() else [
            *([Path(source).parent / relative] if source else []), Path.cwd() / relative, REPO_ROOT / relative]
    return [path for path in found if path.is_dir()]


def _from_results_folder(directory: Path, pair: PrecisionPair) -> TrainedNetwork | None:
    path = weights_path(directory, pair)
    if not path.is_file():
        return None
    loaded = load_pair_weights(path)
    info = loaded.data_info
    return TrainedNetwork(loaded.model, loaded.model_hash, list(info["mean"]), list(info["std"]), loaded.data_config, path)


def _from_training_run(directory: Path, pair: PrecisionPair) -> TrainedNetwork | None:
    from exitspace.train.checkpoint import state_dict_hash
    from exitspace.train.pipeline import exit_table_path, load_trained_model
    from exitspace.train.run_dir import saved_config
    from exitspace.train.weights import build_pair_model

    config = saved_config(directory)
    summary_path = directory / SUMMARY
    if config is None or not summary_path.is_file() or not exit_table_path(directory, pair).is_file():
        return None
    summary = json.loads(summary_path.read_text())
    trained = load_trained_model(config, EENNSpec.parse(summary["model"]), directory, pair).cpu()
    model = build_pair_model(trained.spec, pair, trained.state_dict())  # without the training knobs
    info = summary["data"]
    return TrainedNetwork(model, state_dict_hash(model), list(info["mean"]), list(info["std"]),
                          config.data.model_dump(mode="json"), directory)


def find_network(results: dict[str, Any], results_path: Path, pair: PrecisionPair,
                 weights: Path | None = None) -> TrainedNetwork:
    """The trained supernet of ``pair`` whose exit table the search scored (same model hash); one-line error
    naming where it looked otherwise."""
    key = f"{pair[0]}/{pair[1]}"
    wanted = (results.get("exit_table_hashes") or {}).get(key)
    looked = _candidate_dirs(results, results_path, weights)
    mismatched = []
    for directory in looked:
        for reader in (_from_results_folder, _from_training_run):
            network = reader(directory, pair)
            if network is None:
                continue
            if wanted is None or network.model_hash == wanted:
                return network
            mismatched.append(str(network.source))
    if mismatched:
        raise CheckpointError(f"weights {mismatched[0]}: not the {key} network these results were searched on "
                              "(model hash differs); give --weights with the run's own weights")
    where = ", ".join(str(path) for path in looked) or "nowhere (no candidate folder exists)"
    raise ConfigError(f"--weights: no {key} weights found (looked in {where}); export them with "
                      "`exitspace train-export RUN_DIR RESULTS_DIR` or give --weights DIR")
