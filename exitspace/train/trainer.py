"""One training phase (float or QAT) with per-epoch atomic checkpoints and automatic resume."""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, update_bn

from exitspace.data.loader import BatchLoader
from exitspace.files import atomic_write_text
from exitspace.train.checkpoint import load_checkpoint, save_checkpoint
from exitspace.train.losses import eenn_loss
from exitspace.train.progress import Reporter
from exitspace.train.stopping import TrainingStopped, steps_take_stops, stop_requested


class TrainingInterrupted(RuntimeError):
    """Raised by ``stop_after_steps`` to simulate a kill (tests)."""


@dataclass
class PhaseSettings:
    """What one phase needs beyond the model and data."""

    epochs: int
    make_optimizer: Callable[[nn.Module], torch.optim.Optimizer]
    make_scheduler: Callable[[torch.optim.Optimizer, int], torch.optim.lr_scheduler.LRScheduler]
    weights: torch.Tensor
    final_mask: torch.Tensor
    label_smoothing: float = 0.0
    distill_weight: float = 0.0
    distill_temperature: float = 3.0
    bf16: bool = True
    train_mode_hook: Callable[[nn.Module], None] | None = None  # e.g. freeze BN in QAT
    eval_hook: Callable[[nn.Module, bool], None] | None = None  # (model, evaluating) e.g. freeze observers
    compile: bool = False  # torch.compile the training step's model (evaluation and checkpoints stay eager)
    average_weights: bool = False  # SWA: the phase's result is the mean of the weights after each epoch
    checkpoint_minutes: float | None = None  # also checkpoint within an epoch once this long has passed since the last
    teacher: Callable[[torch.Tensor], torch.Tensor] | None = None  # batch -> other networks' soft labels [B, C]
    teacher_weight: float = 0.0  # share of each final-exit head's loss taken from the teacher
    extra: dict[str, Any] = field(default_factory=dict)


CHECKPOINT = "checkpoint.pt"
FINAL = "model.pt"
DONE = "done.json"


def autocast(enabled: bool, device_type: str = "cpu") -> Any:
    """bf16 autocast on ``device_type`` (``cpu`` or ``cuda``), or nothing."""
    return torch.autocast(device_type, dtype=torch.bfloat16) if enabled else nullcontext()


@torch.no_grad()
def predict(model: nn.Module, loader: BatchLoader, bf16: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Logits ``[N, H, C]`` (float32) and labels ``[N]`` over a whole loader, model in eval mode."""
    was_training = model.training
    model.eval()
    outs, labels = [], []
    with autocast(bf16, loader.device.type):
        for x, y in loader.epoch(0):
            outs.append(model(x).float().cpu())
            labels.append(y.cpu())
    model.train(was_training)
    return torch.cat(outs).numpy(), torch.cat(labels).numpy()


def head_accuracy(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Top-1 accuracy of every head: ``[H]``."""
    return (logits.argmax(-1) == labels[:, None]).mean(0)


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    x: torch.Tensor,
    y: torch.Tensor,
    settings: PhaseSettings,
    stored_teacher_probs: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step on the joint loss; returns (logits, loss). The teachers' soft labels come from
    ``stored_teacher_probs`` (fixed views) when given, else from ``settings.teacher``."""
    teacher_probs = None
    if settings.teacher_weight > 0:
        teacher_probs = stored_teacher_probs if stored_teacher_probs is not None else (
            settings.teacher(x) if settings.teacher is not None else None)
    with autocast(settings.bf16, x.device.type):
        logits = model(x)
    loss, _ = eenn_loss(logits, y, settings.weights, settings.final_mask, settings.label_smoothing,
                        settings.distill_weight, settings.distill_temperature, teacher_probs, settings.teacher_weight)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()
    return logits, loss


def validation_accuracy(model: nn.Module, loader: BatchLoader, settings: PhaseSettings) -> dict[str, Any]:
    """Validation accuracy of the last, the best and the first head, and of every head (network order)."""
    if settings.eval_hook is not None:
        settings.eval_hook(model, True)
    logits, labels = predict(model, loader, bf16=settings.bf16)
    if settings.eval_hook is not None:
        settings.eval_hook(model, False)
    acc = head_accuracy(logits, labels)
    return {"val_acc_last_head": float(acc[-1]), "val_acc_best_head": float(acc.max()), "val_acc_first_head": float(acc[0]),
            "val_acc_heads": [round(float(a), 4) for a in acc]}


def _adopt_average(model: nn.Module, averaged: AveragedModel, train_loader: BatchLoader, epoch: int) -> None:
    """Load the averaged weights into ``model`` and recompute its BatchNorm statistics over one training epoch."""
    model.load_state_dict(averaged.module.state_dict())
    update_bn(train_loader.epoch(epoch), model)


def rebuilt_schedule(
    settings: PhaseSettings, optimizer: torch.optim.Optimizer, total_steps: int, steps_taken: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """A fresh schedule of ``total_steps`` for an optimiser restored mid-phase, fast-forwarded by ``steps_taken``.

    The learning rates restart from each group's initial rate first: a cosine schedule would otherwise
    take the decayed rate it finds as its new start.
    """
    for group in optimizer.param_groups:
        group["lr"] = group.get("initial_lr", group["lr"])
    scheduler = settings.make_scheduler(optimizer, max(1, total_steps))
    with warnings.catch_warnings():  # fast-forwarding: no optimiser steps are due, so PyTorch's order warning is moot
        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before")
        for _ in range(steps_taken):
            scheduler.step()
    return scheduler


def compile_failure(exc: Exception) -> str:
    """``torch.compile failed (Type: first line of the message)``, for one log line before falling back to eager."""
    first_line = (str(exc).strip().splitlines() or [""])[0][:120]
    return f"torch.compile failed ({type(exc).__name__}: {first_line})"


def _compiled(model: nn.Module, reporter: Reporter, name: str) -> nn.Module:
    """``torch.compile(model)``, sharing its parameters; compiling happens at the first step."""
    reporter.log(f"{name}: compiling the training step with torch.compile (the first step takes minutes)")
    return torch.compile(model)  # type: ignore[return-value]


class _Phase:
    """The state of one phase being trained: optimiser, schedule, SWA average, history, steps taken."""

    def __init__(self, name: str, model: nn.Module, loaders: tuple[BatchLoader, BatchLoader | None], phase_dir: Path,
                 settings: PhaseSettings, reporter: Reporter) -> None:
        self.name, self.model, self.phase_dir = name, model, phase_dir
        self.train_loader, self.val_loader = loaders
        self.settings, self.reporter = settings, reporter
        self.steps_per_epoch = len(self.train_loader)
        self.optimizer = settings.make_optimizer(model)
        self.scheduler = settings.make_scheduler(self.optimizer, max(1, settings.epochs * self.steps_per_epoch))
        self.averaged = AveragedModel(model) if settings.average_weights else None
        self.history: list[dict[str, Any]] = []
        self.start_epoch, self.start_step, self.partial = 0, 0, None
        self.steps_done = 0
        self.step_model = model

    def restore(self) -> None:
        """Take up the phase's checkpoint, if any: weights, optimiser, schedule (rescaled when the epoch
        count changed since), position within the phase and the half-finished epoch's running sums."""
        if not (self.phase_dir / CHECKPOINT).is_file():
            return
        state = load_checkpoint(self.phase_dir / CHECKPOINT)
        self.model.load_state_dict(state["model"])
        if self.averaged is not None:
            self.averaged.load_state_dict(state["averaged"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.start_epoch, self.history = int(state["epoch"]), list(state["history"])
        self.start_step, self.partial = int(state.get("step", 0)), state.get("partial")
        epochs = self.settings.epochs
        within = f", step {self.start_step}/{self.steps_per_epoch} of the next" if self.start_step else ""
        self.reporter.log(f"{self.name}: resuming after epoch {self.start_epoch}/{epochs}{within} from "
                          f"{self.phase_dir / CHECKPOINT}")
        saved_total = state["scheduler"].get("total_steps", state["scheduler"].get("T_max"))
        saved_epochs = int(state.get("epochs", round(saved_total / self.steps_per_epoch) if saved_total else epochs))
        if saved_epochs != epochs:
            # The epoch count was changed between runs: rebuild the schedule for the new length and
            # fast-forward it to the steps already taken (the rest of the curve is compressed/stretched).
            self.scheduler = rebuilt_schedule(self.settings, self.optimizer, epochs * self.steps_per_epoch,
                                              self.start_epoch * self.steps_per_epoch + self.start_step)
            self.reporter.log(f"{self.name}: schedule rescaled from {saved_epochs} to {epochs} epochs at epoch {self.start_epoch}")

    def save(self, epochs_done: int, step: int, partial: dict[str, Any] | None = None) -> None:
        """Checkpoint after ``epochs_done`` whole epochs and ``step`` steps of the next."""
        averaged = {"averaged": self.averaged.state_dict()} if self.averaged is not None else {}
        more = {"partial": partial} if partial is not None else {}
        save_checkpoint(self.phase_dir / CHECKPOINT, {
            "epoch": epochs_done, "step": step, "epochs": self.settings.epochs, "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "history": self.history, "phase": self.name, **averaged, **more})

    def step(self, x: torch.Tensor, y: torch.Tensor, soft: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """One training step (``soft``: the batch's stored teacher predictions, if any); when the compiled model
        fails on the phase's first step, fall back to eager."""
        try:
            return train_step(self.step_model, self.optimizer, self.scheduler, x, y, self.settings, soft)
        except Exception as exc:  # noqa: BLE001 - compiler failures come in many types
            if self.step_model is self.model or self.steps_done:
                raise
            self.reporter.log(f"{self.name}: {compile_failure(exc)}; "
                              "training eagerly (set runtime.compile: false to skip the attempt)")
            self.step_model = self.model
            return train_step(self.model, self.optimizer, self.scheduler, x, y, self.settings, soft)

    def run_epoch(self, epoch: int, stop_after_steps: int | None) -> None:
        """Train and validate one epoch, update the SWA average, checkpoint."""
        task = self.reporter.start_epoch(f"{self.name} {epoch + 1}/{self.settings.epochs}", self.steps_per_epoch)
        record = self._train(epoch, task, stop_after_steps)
        if self.val_loader is not None:
            record.update(validation_accuracy(self.model, self.val_loader, self.settings))
        self.history.append(record)
        self.reporter.end_epoch(task, record)
        if self.averaged is not None:
            self.averaged.update_parameters(self.model)
        self.save(epoch + 1, 0)
        if stop_requested():
            raise TrainingStopped(f"{self.name}: stopped after epoch {epoch + 1}; checkpoint written, re-run to resume")

    def _train(self, epoch: int, task: Any, stop_after_steps: int | None) -> dict[str, Any]:
        """Train one epoch (from the resumed step when it is the first); returns its record."""
        self.model.train()
        if self.settings.train_mode_hook is not None:
            self.settings.train_mode_hook(self.model)
        skip = self.start_step if epoch == self.start_epoch else 0
        device = self.train_loader.device
        loss_sum, correct, seen, before = torch.zeros((), device=device), torch.zeros((), dtype=torch.long, device=device), 0, 0.0
        if skip and self.partial:
            loss_sum = torch.tensor(self.partial["loss_sum"], device=device)
            correct = torch.tensor(self.partial["correct"], device=device)
            seen, before = int(self.partial["seen"]), float(self.partial["seconds"])
        started, last_save = time.perf_counter() - before, time.perf_counter()
        minutes = self.settings.checkpoint_minutes
        for step, (x, y, soft) in enumerate(self.train_loader.epoch_with_targets(epoch, skip=skip), start=skip):
            logits, loss = self.step(x, y, soft)
            with torch.no_grad():
                loss_sum += loss.detach() * y.shape[0]
                correct += (logits[:, -1].argmax(-1) == y).sum()
            seen += y.shape[0]
            self.steps_done += 1
            self.reporter.step(task, step + 1, loss=float(loss_sum) / seen, acc=float(correct) / seen,
                               ips=seen / (time.perf_counter() - started), lr=self.scheduler.get_last_lr()[0])
            within = step + 1 < self.steps_per_epoch  # the epoch's last step is checkpointed by run_epoch
            if within and (stop_requested() or (minutes is not None and time.perf_counter() - last_save >= 60 * minutes)):
                self.save(epoch, step + 1, {"loss_sum": float(loss_sum), "correct": int(correct), "seen": seen,
                                            "seconds": time.perf_counter() - started})
                last_save = time.perf_counter()
                if stop_requested():
                    raise TrainingStopped(f"{self.name}: stopped at step {step + 1}/{self.steps_per_epoch} of epoch "
                                          f"{epoch + 1}; checkpoint written, re-run to resume")
            if stop_after_steps is not None and self.steps_done >= stop_after_steps:
                raise TrainingInterrupted(f"{self.name}: stopped after {self.steps_done} steps (simulated interruption)")
        seconds = time.perf_counter() - started
        record: dict[str, Any] = {
            "epoch": epoch + 1, "train_loss": float(loss_sum) / seen, "train_acc_last_head": float(correct) / seen,
            "images_per_s": seen / seconds, "seconds": seconds, "lr_end": self.scheduler.get_last_lr()[0],
        }
        if not math.isfinite(record["train_loss"]):
            raise FloatingPointError(f"{self.name}: loss is {record['train_loss']} in epoch {epoch + 1}; lower the learning rate")
        return record

    def finish(self) -> None:
        """Adopt the SWA average (if any) and save the final weights with ``done.json``."""
        if self.averaged is not None:
            _adopt_average(self.model, self.averaged, self.train_loader, self.settings.epochs)
            validated = (validation_accuracy(self.model, self.val_loader, self.settings)
                         if self.val_loader is not None else {})
            record = {"epoch": "average", **validated}
            self.history.append(record)
            self.reporter.log(f"{self.name}: weights averaged over {self.settings.epochs} epochs, BatchNorm statistics "
                              f"recomputed; {record}")
        save_checkpoint(self.phase_dir / FINAL, {"model": self.model.state_dict(), "history": self.history, "phase": self.name})
        atomic_write_text(self.phase_dir / DONE, json.dumps({"phase": self.name, "epochs": self.settings.epochs,
                                                       "history": self.history}, indent=1))


def run_phase(
    name: str,
    model: nn.Module,
    train_loader: BatchLoader,
    val_loader: BatchLoader | None,
    phase_dir: Path,
    settings: PhaseSettings,
    reporter: Reporter,
    stop_after_steps: int | None = None,
) -> list[dict[str, Any]]:
    """Train ``model`` for ``settings.epochs`` epochs, checkpointing after each (and within one every
    ``settings.checkpoint_minutes``); resume from a checkpoint where one exists, mid-epoch included.

    When the phase is already complete (``done.json``), only loads the final weights. Returns the
    per-epoch history.
    """
    phase_dir.mkdir(parents=True, exist_ok=True)
    if (phase_dir / DONE).is_file() and (phase_dir / FINAL).is_file():
        state = load_checkpoint(phase_dir / FINAL)
        model.load_state_dict(state["model"])
        reporter.log(f"{name}: already done, loaded {phase_dir / FINAL}")
        return list(state.get("history", []))
    phase = _Phase(name, model, (train_loader, val_loader), phase_dir, settings, reporter)
    phase.restore()
    if settings.compile and phase.start_epoch < settings.epochs:
        phase.step_model = _compiled(model, reporter, name)
    for epoch in range(phase.start_epoch, settings.epochs):
        with steps_take_stops():  # a signal here stops at the next step, or after the epoch's validation and checkpoint
            phase.run_epoch(epoch, stop_after_steps)
    phase.finish()
    return phase.history
