"""Distillation from other trained networks: the softened mean prediction of their final exits."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from exitspace.errors import ConfigError
from exitspace.train.trainer import autocast, compile_failure


class TeacherEnsemble:
    """Frozen teacher networks (each returning logits ``[B, H, C]`` of its final-exit heads).

    Calling it on a batch gives the mean over teachers and heads of ``softmax(logits / temperature)``:
    ``[B, C]``, computed without gradients, in eval mode, under bf16 autocast when ``bf16``. With
    ``compile``, the teachers run ``torch.compile``d (2.5x on four ResNet-20 teachers,
    ``benchmarks/teachers.py``); if compiling fails on the first batch, they run eagerly and ``log`` says so once.
    """

    def __init__(self, models: Sequence[nn.Module], temperature: float, bf16: bool = True,
                 sources: Sequence[dict[str, Any]] = (), compile: bool = False,
                 log: Callable[[str], None] | None = None) -> None:
        if not models:
            raise ConfigError("loss.teachers: empty; give at least one finished run directory")
        self.models = list(models)
        self.sources = list(sources)  # where each teacher came from (run directory, model hash), for the exit tables' meta
        self.temperature = float(temperature)
        self.bf16 = bf16
        self.log = log
        for model in self.models:
            model.eval()
            model.requires_grad_(False)
        self._runners: list[Callable[[torch.Tensor], torch.Tensor]] = (
            [torch.compile(model) for model in self.models] if compile else list(self.models))
        self._proven = not compile  # a compiled runner is trusted once it has answered a batch

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        try:
            probs = self._mean_probs(x)
        except Exception as exc:  # noqa: BLE001 - compiler failures come in many types
            if self._proven:
                raise
            if self.log is not None:
                self.log(f"teachers: {compile_failure(exc)}; running them eagerly")
            self._runners = list(self.models)
            probs = self._mean_probs(x)
        self._proven = True
        return probs

    def _mean_probs(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(self.bf16, x.device.type):
            probs = [F.softmax(run(x).float() / self.temperature, dim=-1).mean(1) for run in self._runners]  # [B, C] each
        return torch.stack(probs).mean(0)
