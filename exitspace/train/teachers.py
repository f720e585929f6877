"""Distillation from other trained networks: the softened mean prediction of their final exits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from exitspace.errors import ConfigError
from exitspace.train.trainer import autocast


class TeacherEnsemble:
    """Frozen teacher networks (each returning logits ``[B, H, C]`` of its final-exit heads).

    Calling it on a batch gives the mean over teachers and heads of ``softmax(logits / temperature)``:
    ``[B, C]``, computed without gradients, in eval mode, under bf16 autocast when ``bf16``.
    """

    def __init__(self, models: Sequence[nn.Module], temperature: float, bf16: bool = True,
                 sources: Sequence[dict[str, Any]] = ()) -> None:
        if not models:
            raise ConfigError("loss.teachers: empty; give at least one finished run directory")
        self.models = list(models)
        self.sources = list(sources)  # where each teacher came from (run directory, model hash), for the exit tables' meta
        self.temperature = float(temperature)
        self.bf16 = bf16
        for model in self.models:
            model.eval()
            model.requires_grad_(False)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(self.bf16):
            probs = [F.softmax(model(x).float() / self.temperature, dim=-1).mean(1) for model in self.models]  # [B, C] each
        return torch.stack(probs).mean(0)
