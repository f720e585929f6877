"""The exit table: every head's logits on the validation and test splits, cached after training.

From an exit table alone a later stage computes exit ratios and accuracy for any exit subset, head type
and threshold vector, without the network. Stored as one compressed ``.npz`` per precision pair:

- ``head_keys``: str [H], ``"<exit label>:<head type>"`` (e.g. ``"A:pool4_fc1"``), network order
- ``head_blocks``: int [H], index of the backbone block each head is mounted after
- ``val_logits`` / ``test_logits``: float16 [N, H, classes]
- ``val_labels`` / ``test_labels``: int64 [N]
- ``meta``: JSON string (format version, model spec, precision pair, model hash, dataset, seed, ...)
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from exitspace.errors import CheckpointError
from exitspace.files import atomic_output

EXIT_TABLE_FORMAT_VERSION = 1
SPLITS = ("val", "test")


@dataclass
class ExitTable:
    """Logits of every head on the val and test splits, with labels and metadata."""

    head_keys: list[str]
    head_blocks: list[int]
    logits: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.head_keys) != len(self.head_blocks):
            raise CheckpointError("exit table: head_keys and head_blocks differ in length")
        for split in self.logits:
            logits, labels = self.logits[split], self.labels[split]
            if logits.ndim != 3 or logits.shape[1] != len(self.head_keys) or logits.shape[0] != labels.shape[0]:
                raise CheckpointError(
                    f"exit table: {split}_logits has shape {logits.shape}; expected [N={labels.shape[0]}, "
                    f"H={len(self.head_keys)}, classes]"
                )
            if labels.size and (labels.min() < 0 or labels.max() >= logits.shape[2]):
                raise CheckpointError(f"exit table: {split}_labels outside 0..{logits.shape[2] - 1} (the classes of "
                                      f"its logits)")
            if not np.isfinite(logits).all():
                raise CheckpointError(f"exit table: {split}_logits holds NaN or infinite values")

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return int(next(iter(self.logits.values())).shape[2])

    def head_index(self, key: str) -> int:
        """Column of a head key; one-line error if absent."""
        try:
            return self.head_keys.index(key)
        except ValueError:
            raise CheckpointError(f"exit table has no head {key!r}; available: {self.head_keys}") from None

    @property
    def precision_pair(self) -> tuple[int, int] | None:
        """(backbone bits, exit bits) from the metadata; 32 means float."""
        pair = self.meta.get("precision_pair")
        return None if pair is None else (int(pair[0]), int(pair[1]))

    def save(self, path: Path) -> None:
        """Write as compressed npz (float16 logits)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {
            "head_keys": np.array(self.head_keys),
            "head_blocks": np.array(self.head_blocks, dtype=np.int64),
            "meta": np.array(json.dumps({"format_version": EXIT_TABLE_FORMAT_VERSION, **self.meta})),
        }
        for split in self.logits:
            arrays[f"{split}_logits"] = self.logits[split].astype(np.float16)
            arrays[f"{split}_labels"] = self.labels[split].astype(np.int64)
        with atomic_output(path) as handle:
            np.savez_compressed(handle, **cast(dict[str, Any], arrays))  # cast: numpy stubs type **kwds as if one could be allow_pickle

    @classmethod
    def load(cls, path: Path) -> "ExitTable":
        """Read an exit table; a missing or corrupt file gets a one-line CheckpointError."""
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"exit table {path}: not found; run `exitspace train` first or fix the path")
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                splits = [s for s in SPLITS if f"{s}_logits" in data]
                missing = [f"{s}_{part}" for s in ("val", *splits) for part in ("logits", "labels") if f"{s}_{part}" not in data]
                if missing:  # thresholds are calibrated on val; a split's labels go with its logits
                    raise CheckpointError(f"exit table {path}: lacks {missing[0]}; re-run `exitspace train` to write it")
                table = cls(
                    head_keys=[str(k) for k in data["head_keys"]],
                    head_blocks=[int(b) for b in data["head_blocks"]],
                    logits={s: data[f"{s}_logits"].astype(np.float32) for s in splits},
                    labels={s: data[f"{s}_labels"] for s in splits},
                    meta=meta,
                )
        except CheckpointError as exc:  # the arrays disagree (see __post_init__)
            message = str(exc).removeprefix("exit table: ")
            raise CheckpointError(f"exit table {path}: {message}; re-run `exitspace train` to write it") from None
        except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as exc:
            raise CheckpointError(
                f"exit table {path}: corrupt or not an exit table ({type(exc).__name__}); delete it and re-run "
                "`exitspace train`"
            ) from None
        if meta.get("format_version") != EXIT_TABLE_FORMAT_VERSION:
            raise CheckpointError(
                f"exit table {path}: format_version {meta.get('format_version')} unsupported "
                f"(expected {EXIT_TABLE_FORMAT_VERSION}); re-run `exitspace train`"
            )
        return table
