"""Write a design as ONNX: the early-exit model, one graph per stage, and a manifest.

Output folder::

    model.onnx            the early-exit network (graph.EarlyExitModel): input ``image`` uint8 [1, C, H, W],
                          outputs ``scores`` float32 [1, classes] (logits) and ``exit`` int64 (index of the exit taken)
    segments/stage_<i>_<exit label>.onnx
                          stage i alone, float, input features -> outputs ``features``, ``logits``; what
                          ``exitspace workload --onnx`` reads back as the design's stage i
    export.json           the design, its thresholds and confidence, its report figures, the data it was trained on
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import math
import warnings
from pathlib import Path
from typing import Any

import torch

from exitspace.export.graph import EarlyExitModel, Stage, design_stages
from exitspace.export.quantized import ONNX_TRANSLATIONS, OPSET, freeze_quantization, strip_quantization
from exitspace.export.source import Design, TrainedNetwork
from exitspace.files import atomic_output_path, atomic_write_text

MODEL_FILE = "model.onnx"
MANIFEST = "export.json"
SEGMENTS_DIR = "segments"
MANIFEST_FORMAT = "exitspace.export"


_CHATTY_LOGGERS = ("torch.onnx", "onnx_ir", "onnxscript")


@contextlib.contextmanager
def _quiet() -> Any:
    """Silence the exporters' progress lines, warnings and log messages (stdout, warnings, logging)."""
    loggers = [logging.getLogger(name) for name in _CHATTY_LOGGERS]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def early_exit_model(design: Design, network: TrainedNetwork) -> EarlyExitModel:
    """The design cut from a copy of ``network``'s supernet (left as it is) with its quantization frozen, as an
    :class:`EarlyExitModel`."""
    subnet = copy.deepcopy(network.model).subnet(list(design.head_keys)).eval()
    stages = design_stages(subnet)
    for stage in stages:
        freeze_quantization(stage)
    return EarlyExitModel(stages, design.thresholds, design.confidence, network.mean, network.std,
                          network.model.spec.input_size).eval()


def export_onnx(model: EarlyExitModel, path: Path) -> None:
    """``torch.onnx.export(dynamo=True)`` of the early-exit model (each ``torch.cond`` -> ONNX ``If``)."""
    channels = model.mean.shape[1]
    size = model.input_size
    example = torch.zeros(1, channels, size, size, dtype=torch.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _quiet(), torch.no_grad():
        program = torch.onnx.export(model, (example,), dynamo=True, opset_version=OPSET, verbose=False,
                                    input_names=["image"], output_names=["scores", "exit"],
                                    custom_translation_table=ONNX_TRANSLATIONS)
    assert program is not None  # dynamo=True always returns the program
    with atomic_output_path(path, keep_suffix=True) as tmp:
        program.save(str(tmp))


def export_segments(model: EarlyExitModel, directory: Path, labels: list[str]) -> list[Path]:
    """Each stage as its own float ONNX graph (TorchScript exporter: node names keep the module paths that
    ``workload_from_onnx`` tags layers by). Strips the quantization from ``model``'s stages in place."""
    for stage in model.stages:
        strip_quantization(stage)
    size = model.input_size
    x = torch.zeros(1, model.mean.shape[1], size, size)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    stages: list[Stage] = list(model.stages)  # type: ignore[arg-type]  # ModuleList iterates as Module
    for index, (stage, label) in enumerate(zip(stages, labels)):
        path = directory / f"stage_{index}_{label}.onnx"
        with _quiet(), torch.no_grad(), atomic_output_path(path, keep_suffix=True) as tmp:
            torch.onnx.export(_Named(stage), (x,), str(tmp), dynamo=False, input_names=["input"],
                              output_names=["features", "logits"])
            x = stage(x)[0]
        paths.append(path)
    return paths


class _Named(torch.nn.Module):
    """A stage under its own module paths (no wrapper prefix in the exported node names)."""

    def __init__(self, stage: Stage) -> None:
        super().__init__()
        self.backbone = stage.backbone
        self.heads = stage.heads

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.backbone(x)
        return features, next(iter(self.heads.values()))(features)


def export_design(design: Design, network: TrainedNetwork, out_dir: Path, source: str = "") -> dict[str, Any]:
    """Write model.onnx, the stage graphs and export.json for ``design`` into ``out_dir``; returns the manifest."""
    out_dir = Path(out_dir)
    model = early_exit_model(design, network)
    export_onnx(model, out_dir / MODEL_FILE)
    labels = [key.split(":", 1)[0] for key in design.head_keys]
    segments = export_segments(model, out_dir / SEGMENTS_DIR, labels)
    manifest = {
        "format": MANIFEST_FORMAT, "version": 1, "design": design.name, "results": source,
        "head_keys": list(design.head_keys),
        "thresholds": [None if math.isinf(t) else t for t in design.thresholds],
        "confidence": design.confidence, "precision_pair": list(design.pair), "opset": OPSET,
        "model_spec": network.model.spec.model_dump(mode="json"), "model_hash": network.model_hash,
        "weights": str(network.source), "data": network.data, "report": design.report,
        "model": MODEL_FILE, "segments": [str(path.relative_to(out_dir)) for path in segments],
    }
    atomic_write_text(out_dir / MANIFEST, json.dumps(manifest, indent=1))
    return manifest
