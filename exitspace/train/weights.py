"""One precision pair's trained supernet as a self-contained weights file, and the network rebuilt from it.

File (``<results>/weights/weights_b8_e8.pt``, written by ``exitspace train-export``): a plain dict of
tensors and JSON-like values, read with ``torch.load(weights_only=True)``, so loading never runs code
from the file::

    format, version        "exitspace.weights", 1
    model_spec             the EENN spec (as in the exit table's metadata)
    precision_pair         [backbone bits, exit bits]
    model_hash             sha256 of the state dict: equals the exit table's ``model_hash``
    data_info              the training data's record (dataset, split seed, sizes, normalisation mean / std)
    data_config            the training config's ``data`` section (where the data set is, how it was split)
    state_dict             the supernet's weights (with the fake quantizers' frozen ranges for QAT pairs)
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from exitspace.errors import CheckpointError
from exitspace.models import EENN, EENNSpec, build_eenn
from exitspace.train.checkpoint import save_checkpoint, state_dict_hash
from exitspace.precision import FLOAT_BITS, PrecisionPair, pair_slug
from exitspace.train.quant import quantize_model, set_observers

WEIGHTS_FORMAT = "exitspace.weights"
WEIGHTS_VERSION = 1
WEIGHTS_DIR = "weights"


def weights_path(directory: Path, pair: PrecisionPair) -> Path:
    """Where the weights of ``pair`` live in a results folder."""
    return Path(directory) / WEIGHTS_DIR / f"weights_{pair_slug(pair)}.pt"


def save_pair_weights(path: Path, model: EENN, pair: PrecisionPair, data_info: dict[str, Any],
                      data_config: dict[str, Any]) -> str:
    """Write ``model`` (the finished supernet of ``pair``) as a weights file; returns its model hash."""
    digest = state_dict_hash(model)
    save_checkpoint(path, {
        "format": WEIGHTS_FORMAT, "version": WEIGHTS_VERSION, "model_spec": model.spec.model_dump(mode="json"),
        "precision_pair": list(pair), "model_hash": digest, "data_info": data_info, "data_config": data_config,
        "state_dict": {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()},
    })
    return digest


@dataclass
class PairWeights:
    """A supernet rebuilt from a weights file, in evaluation mode (observers frozen)."""

    model: EENN
    pair: PrecisionPair
    model_hash: str
    path: Path
    data_info: dict[str, Any]
    data_config: dict[str, Any]


def _read(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise CheckpointError(f"{path}: not a readable weights file ({type(exc).__name__}); "
                              "write it again with `exitspace train-export`") from None
    if not isinstance(state, dict) or state.get("format") != WEIGHTS_FORMAT:
        raise CheckpointError(f"{path}: not an exitspace weights file; write one with `exitspace train-export`")
    if state.get("version") != WEIGHTS_VERSION:
        raise CheckpointError(f"{path}: weights format version {state.get('version')!r}, this exitspace reads "
                              f"{WEIGHTS_VERSION}; export it again with `exitspace train-export`")
    return state


def build_pair_model(spec: EENNSpec, pair: PrecisionPair, state_dict: dict[str, torch.Tensor]) -> EENN:
    """The supernet of ``spec`` at ``pair`` (fake quantization inserted for quantized pairs) holding
    ``state_dict``, in evaluation mode."""
    model = build_eenn(spec)
    if pair != (FLOAT_BITS, FLOAT_BITS):
        quantize_model(model, pair)
    model.load_state_dict(state_dict)
    model.eval()
    set_observers(model, False)
    return model


def load_pair_weights(path: Path) -> PairWeights:
    """The supernet in a weights file; one-line CheckpointError if unreadable or if its hash does not match."""
    path = Path(path)
    state = _read(path)
    pair = (int(state["precision_pair"][0]), int(state["precision_pair"][1]))
    try:
        model = build_pair_model(EENNSpec.parse(state["model_spec"]), pair, state["state_dict"])
    except (RuntimeError, KeyError) as exc:
        raise CheckpointError(f"{path}: weights do not fit their model spec ({type(exc).__name__}); "
                              "write the file again with `exitspace train-export`") from None
    digest = state_dict_hash(model)
    if digest != state.get("model_hash"):
        raise CheckpointError(f"{path}: weights altered (model hash differs from the recorded one); "
                              "write the file again with `exitspace train-export`")
    return PairWeights(model, pair, digest, path, dict(state["data_info"]), dict(state["data_config"]))
