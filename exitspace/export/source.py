"""What to export: one design (exits, thresholds, confidence, pair) and the trained network it is cut from.

:func:`network_in` reads the trained supernet of a pair from a folder: a results folder's ``weights/``
(``exitspace train-export``), or a training run directory (``exitspace run``'s ``train/``, or any
``exitspace train`` run). Which design and which folder a results.json points to is the driver's
(``exitspace.flow.export``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exitspace.models import EENN, EENNSpec
from exitspace.precision import PrecisionPair
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


def network_in(directory: Path, pair: PrecisionPair) -> TrainedNetwork | None:
    """The trained supernet of ``pair`` in ``directory`` (a results folder or a training run), or None."""
    return _from_results_folder(directory, pair) or _from_training_run(directory, pair)
