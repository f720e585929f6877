"""The exported design as a torch module: stages of backbone blocks and one exit head each, chained by
``torch.cond`` so that a sample that leaves at an exit never runs the later stages.

``EarlyExitModel(image)`` takes one uint8 image ``[1, C, H, W]``, normalises it as training did, runs stage 0
(stem, the blocks up to the first exit's block, that exit's head), computes the head's confidence
(the design's measure, as ``exitspace.dynamic.confidence`` defines it) and compares it with the exit's
threshold: at or above it the stage's class scores (logits) and the exit index are the outputs;
below it the next stage runs on the features. The final stage always answers. Exported with
``torch.onnx.export(dynamo=True)``, every ``torch.cond`` becomes an ONNX ``If`` whose ``else`` branch
holds the rest of the network.

A :class:`Stage` keeps the supernet's module paths (``backbone.stem``, ``backbone.blocks.<i>``,
``heads.<label>_<head type>``), so its own ONNX graph reads back as the design's workload stage.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from exitspace.dynamic.confidence import check_confidence
from exitspace.errors import ConfigError
from exitspace.models.eenn import EENNSubnet


class _Backbone(nn.Module):
    """The part of a backbone one stage runs: optionally the stem, then blocks keyed by their index."""

    def __init__(self, stem: nn.Module | None, blocks: dict[int, nn.Module]) -> None:
        super().__init__()
        self.stem = stem
        self.blocks = nn.ModuleDict({str(index): block for index, block in blocks.items()})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stem is not None:
            x = self.stem(x)
        for block in self.blocks.values():
            x = block(x)
        return x


class Stage(nn.Module):
    """Backbone blocks after the previous exit up to this exit's block, and this exit's head:
    features -> (features, logits ``[1, classes]``)."""

    def __init__(self, stem: nn.Module | None, blocks: dict[int, nn.Module], head_name: str, head: nn.Module) -> None:
        super().__init__()
        self.backbone = _Backbone(stem, blocks)
        self.heads = nn.ModuleDict({head_name: head})

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.backbone(x)
        head = next(iter(self.heads.values()))
        return features, head(features)


def design_stages(subnet: EENNSubnet) -> list[Stage]:
    """One :class:`Stage` per exit of ``subnet`` (its heads in network order, one per exit block), sharing
    its modules."""
    blocks = list(subnet.backbone.blocks)
    stages, start = [], 0
    for key, block in zip(subnet.head_keys, subnet.head_blocks):
        name = key.replace(":", "_")
        stem = subnet.backbone.stem if start == 0 else None
        stages.append(Stage(stem, {i: blocks[i] for i in range(start, block + 1)}, name, subnet.heads[name]))
        start = block + 1
    return stages


def _max_softmax(probs: torch.Tensor) -> torch.Tensor:
    return probs.amax(dim=(0, 1))


def _margin(probs: torch.Tensor) -> torch.Tensor:
    top2 = torch.topk(probs, 2, dim=-1).values
    return (top2[:, 0] - top2[:, 1]).sum()


def _entropy(probs: torch.Tensor) -> torch.Tensor:
    entropy = -(probs * torch.log(probs.clamp_min(1e-12))).sum()
    return 1.0 - entropy / math.log(probs.shape[-1])


GRAPH_MEASURES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "max_softmax": _max_softmax, "margin": _margin, "entropy": _entropy}
"""The confidence measures of ``dynamic.confidence`` as graph operations (same formulas) on one sample's
probabilities ``[1, classes]`` -> 0-d."""


def check_graph_measure(kind: str) -> str:
    """``kind`` if it is a known confidence measure with a graph form; else a one-line ConfigError."""
    check_confidence(kind)
    if kind not in GRAPH_MEASURES:
        raise ConfigError(f"confidence {kind!r}: has no ONNX form yet; designs using {sorted(GRAPH_MEASURES)} export")
    return kind


def confidence_of(logits: torch.Tensor, kind: str) -> torch.Tensor:
    """The confidence (0-d) of one sample's logits ``[1, classes]``."""
    return GRAPH_MEASURES[kind](torch.softmax(logits.float(), dim=-1))


class EarlyExitModel(nn.Module):
    """The design's early-exit network (module docstring): uint8 image -> (logits ``[1, classes]``, exit index)."""

    thresholds: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, stages: Sequence[Stage], thresholds: Sequence[float], confidence: str,
                 mean: Sequence[float], std: Sequence[float], input_size: int) -> None:
        super().__init__()
        self.input_size = input_size
        check_graph_measure(confidence)
        if len(thresholds) != len(stages) - 1:
            raise ValueError(f"{len(stages)} stages need {len(stages) - 1} thresholds, got {len(thresholds)}")
        self.stages = nn.ModuleList(stages)
        self.confidence = confidence
        self.register_buffer("thresholds", torch.tensor([float(t) for t in thresholds] or [math.inf],
                                                        dtype=torch.float32))
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (image.to(torch.float32) / 255.0 - self.mean) / self.std
        return self._from_stage(0, x)

    def _from_stage(self, index: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features, logits = self.stages[index](x)
        if index == len(self.stages) - 1:
            return logits, torch.full((), index, dtype=torch.int64)

        def leave(logits: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return logits.clone(), torch.full((), index, dtype=torch.int64)

        def go_on(logits: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self._from_stage(index + 1, features)

        confident = confidence_of(logits, self.confidence) >= self.thresholds[index]
        return torch.cond(confident, leave, go_on, (logits, features))

