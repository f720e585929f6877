"""Run an exported design in onnxruntime on a data split: accuracy, exit ratios, time per exit, and
node-level evidence that an early exit skips the later stages.

Each image runs alone (batch 1, as the early-exit graph takes it); its wall time is measured around
``session.run``. Per exit: how many images left there, their accuracy, and the median and mean time.
:func:`executed_nodes` runs one image with onnxruntime's profiler on and lists the nodes that ran: for an
image that leaves at exit ``i``, none of the nodes of stages after ``i`` appear.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from exitspace.errors import ConfigError
from exitspace.export.writer import MANIFEST

FLOAT_TOLERANCE_POINTS = 0.2
QUANTIZED_TOLERANCE_POINTS = 0.5


def load_manifest(model_path: Path) -> dict[str, Any]:
    """The export.json beside an exported model; one-line error if it is missing or not one."""
    path = Path(model_path).parent / MANIFEST
    if not path.is_file():
        raise ConfigError(f"{model_path}: no {MANIFEST} beside it; give a model.onnx written by `exitspace export`")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ConfigError(f"{path}: not valid JSON; export the design again with `exitspace export`") from None
    if not isinstance(manifest, dict) or manifest.get("format") != "exitspace.export":
        raise ConfigError(f"{path}: not an exitspace export manifest; export the design with `exitspace export`")
    return manifest


def session(model_path: Path, threads: int = 1, profile_prefix: str | None = None) -> Any:
    """An onnxruntime CPU session of ``model_path`` (``threads`` intra-op threads; optionally profiling)."""
    import onnxruntime as ort

    if not Path(model_path).is_file():
        raise ConfigError(f"{model_path}: not found; give the model.onnx written by `exitspace export`")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    try:
        return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{model_path}: onnxruntime cannot load it ({first[:200]}); export it again") from None


def executed_nodes(model_path: Path, image: np.ndarray) -> tuple[int, list[str]]:
    """Run one uint8 image ``[1, C, H, W]`` with profiling on: (exit index taken, names of the nodes that ran,
    subgraph nodes of the ONNX ``If`` branches included)."""
    with tempfile.TemporaryDirectory() as scratch:
        sess = session(model_path, profile_prefix=os.path.join(scratch, "profile"))
        _, exit_index = sess.run(None, {"image": image})
        trace = Path(sess.end_profiling())
        events = json.loads(trace.read_text())
    names = [event["name"].removesuffix("_kernel_time") for event in events
             if event.get("cat") == "Node" and event["name"].endswith("_kernel_time")]
    return int(exit_index), names


@dataclass
class InferResult:
    """What one split's run measured."""

    exits: np.ndarray  # [N] exit index per image
    correct: np.ndarray  # [N] bool
    seconds: np.ndarray  # [N] wall time of session.run per image

    def summary(self, exit_keys: list[str]) -> dict[str, Any]:
        """Accuracy, exit ratios, per-exit accuracy and time (median and mean, in ms)."""
        count = len(self.exits)
        per_exit = []
        for index, key in enumerate(exit_keys):
            mask = self.exits == index
            times = self.seconds[mask] * 1e3
            per_exit.append({
                "exit": key, "images": int(mask.sum()), "ratio": float(mask.mean()) if count else 0.0,
                "accuracy": float(self.correct[mask].mean()) if mask.any() else None,
                "median_ms": float(np.median(times)) if mask.any() else None,
                "mean_ms": float(times.mean()) if mask.any() else None,
            })
        return {"images": count, "accuracy": float(self.correct.mean()) if count else 0.0,
                "exit_ratios": [row["ratio"] for row in per_exit], "per_exit": per_exit,
                "median_ms": float(np.median(self.seconds) * 1e3) if count else None}


def run_split(model_path: Path, images: np.ndarray, labels: np.ndarray, threads: int = 1,
              warmup: int = 20) -> InferResult:
    """Run every image of ``images`` (uint8 ``[N, C, H, W]``) alone through the model."""
    sess = session(model_path, threads)
    for index in range(min(warmup, len(images))):
        sess.run(None, {"image": images[index : index + 1]})
    exits = np.zeros(len(images), dtype=np.int64)
    correct = np.zeros(len(images), dtype=bool)
    seconds = np.zeros(len(images))
    for index in range(len(images)):
        feed = {"image": images[index : index + 1]}
        start = time.perf_counter()
        scores, exit_index = sess.run(None, feed)
        seconds[index] = time.perf_counter() - start
        exits[index] = int(exit_index)
        correct[index] = int(np.argmax(scores)) == int(labels[index])
    return InferResult(exits, correct, seconds)


def load_images(manifest: dict[str, Any], dataset: str | None, split: str,
                data_path: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """The ``split`` images (uint8 NCHW) and labels of the data the design was trained on (the same split
    of train into train / val); ``dataset`` must name that data set."""
    from exitspace.data.registry import DataConfig, load_splits

    data = dict(manifest.get("data") or {})
    trained_on = data.get("name")
    if dataset is not None and dataset != trained_on:
        raise ConfigError(f"--data: the design was trained on {trained_on!r}, not {dataset!r}; give --data {trained_on}")
    if data_path is not None:
        data["path"] = str(data_path)
    if split not in ("val", "test"):
        raise ConfigError(f"--split: {split!r}; use val or test")
    splits = load_splits(DataConfig.model_validate(data))
    chosen = splits.val if split == "val" else splits.test
    return np.ascontiguousarray(chosen.images.transpose(0, 3, 1, 2)), chosen.labels


def compare_with_report(manifest: dict[str, Any], split: str, measured: dict[str, Any]) -> dict[str, Any] | None:
    """Measured accuracy and exit ratios against the design's figures in the report (points), and whether they
    agree within the tolerance (0.2 points float, 0.5 for quantized pairs)."""
    report = manifest.get("report") or {}
    ratios = (report.get("exit_ratios") or {}).get(split)
    accuracy = (report.get(split) or {}).get("accuracy")
    if ratios is None or accuracy is None:
        return None
    float_pair = list(manifest.get("precision_pair") or []) == [32, 32]
    tolerance = FLOAT_TOLERANCE_POINTS if float_pair else QUANTIZED_TOLERANCE_POINTS
    ratio_gaps = [100.0 * abs(a - b) for a, b in zip(measured["exit_ratios"], ratios)]
    accuracy_gap = 100.0 * abs(measured["accuracy"] - accuracy)
    return {"report_accuracy": accuracy, "report_exit_ratios": ratios, "accuracy_gap_points": accuracy_gap,
            "exit_ratio_gap_points": ratio_gaps, "tolerance_points": tolerance,
            "agrees": accuracy_gap <= tolerance and max(ratio_gaps, default=0.0) <= tolerance}
