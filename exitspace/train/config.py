"""The training config (YAML): model spec, data, optimiser, losses, QAT and runtime options."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from exitspace.data.registry import DataConfig
from exitspace.errors import ConfigError
from exitspace.files import load_yaml
from exitspace.precision import parse_pair

DEFAULT_PAIRS = ["32/32", "8/8", "8/4", "4/8", "4/4"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class OptimConfig(_Strict):
    """Float training: SGD with a one-cycle or cosine schedule."""

    epochs: int = Field(30, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(0.1, gt=0, description="peak learning rate")
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = True
    weight_decay: float = Field(5e-4, ge=0)
    schedule: Literal["onecycle", "cosine"] = "onecycle"
    warmup_fraction: float = Field(0.15, gt=0, lt=1, description="one-cycle: share of steps spent warming up")
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    head_lr_scale: float = Field(
        1.0, gt=0, le=1,
        description="learning-rate factor for the early exits' heads (float and QAT); below 1 where their "
        "inputs are large, e.g. max-pooled MobileNetV2 features, on which single-linear heads diverge at the full rate",
    )
    final_head_lr_scale: float = Field(1.0, gt=0, le=1, description="the same for the final exit's heads")


class LossConfig(_Strict):
    """How the heads' losses are combined."""

    weights: Literal["increasing", "uniform"] | list[float] = Field(
        "increasing", description="'increasing': proportional to the mounting depth; or one weight per head"
    )
    distill_weight: float = Field(0.0, ge=0, le=1, description="share of each early head's loss taken from the final exit's soft labels")
    distill_temperature: float = Field(3.0, gt=0)
    head_grad_scale: float = Field(
        1.0, ge=0, le=1,
        description="gradient factor from early heads into the backbone (1 = plain joint training; "
        "0 = the backbone trains for the final exit alone, as a plain network)",
    )
    teachers: list[Path] = Field(
        default_factory=list, description="finished `exitspace train` run directories whose float final exits "
        "(all final head types, averaged) teach this run's final exit; relative paths resolve against the YAML's folder",
    )
    teacher_weight: float = Field(0.0, ge=0, le=1, description="share of each final-exit head's loss taken from "
                                  "the teachers' softened mean prediction (at distill_temperature)")
    teacher_views: int = Field(
        0, ge=0, description="0: the teachers predict every training batch as it comes; K > 0: each training image "
        "gets K fixed crop/flip views, predicted once before training (kept in the run directory), and every "
        "epoch shows one of them with its prediction (for teachers much slower than the student)",
    )

    @model_validator(mode="after")
    def _teachers_and_weight(self) -> "LossConfig":
        if bool(self.teachers) != (self.teacher_weight > 0):
            raise ValueError("teachers and teacher_weight go together; give both (a run directory and a weight "
                             "in (0, 1]) or neither")
        if self.teacher_views and not self.teachers:
            raise ValueError("teacher_views needs teachers; give loss.teachers and loss.teacher_weight, or set it to 0")
        return self


class SWAConfig(_Strict):
    """Stochastic weight averaging after the float phase (Izmailov et al., 2018); off at 0 epochs.

    SGD at a constant rate from the float weights, averaging the weights after every epoch; BatchNorm
    statistics are then recomputed over one training epoch. QAT and the float exit table start from the average.
    """

    epochs: int = Field(0, ge=0)
    lr: float = Field(0.01, gt=0, description="constant learning rate (the SWA paper's for CIFAR-10); momentum, "
                      "weight decay and the heads' rate factors come from optim")


class HeadsConfig(_Strict):
    """The early exits' heads trained again on the finished backbone (and final exit), which stay frozen
    (the "IC-only" training of Kaya et al., 2019, Shallow-Deep Networks); off at 0 epochs.

    Meant for runs whose early heads were detached (``loss.head_grad_scale: 0``): they learned on features
    that kept moving, at the low rate their group had. QAT and the float exit table start from the result.
    """

    epochs: int = Field(0, ge=0)
    lr: float = Field(0.01, gt=0, description="initial rate, cosine-annealed to 0, times optim.head_lr_scale; "
                      "momentum and weight decay come from optim")


class QATConfig(_Strict):
    """Quantization-aware fine-tuning from the float checkpoint, one run per precision pair."""

    pairs: list[str] = Field(default_factory=lambda: list(DEFAULT_PAIRS))
    epochs: int = Field(2, ge=0)
    # 0.001: on the ResNet-20 EENN, 0.005 (frozen BN, fresh momentum) raised the loss from 2.4 to 3.5 within
    # three steps, float or 8-bit alike, before it recovered; 0.001 kept it near 2.4-2.8.
    lr: float = Field(0.001, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    freeze_bn: bool = True
    calibration_batches: int = Field(8, ge=0, description="batches that set activation ranges before QAT")

    @field_validator("pairs")
    @classmethod
    def _pairs(cls, value: list[str]) -> list[str]:
        for text in value:
            parse_pair(text, "qat.pairs")
        return value


class RuntimeConfig(_Strict):
    """Threads, numerics and reproducibility."""

    seed: int = 0
    threads: int | None = Field(None, ge=1, description="torch threads; None = all cores")
    bf16: bool = Field(True, description="bf16 autocast for training steps (evaluation stays float32)")
    device: str = Field("cpu", pattern=r"^(cpu|auto|cuda(:\d+)?)$", description=(
        "where the networks train and predict: cpu, cuda[:N] (a GPU; one-line error without one) or auto (the GPU when "
        "torch sees one); data augmentation stays on the CPU either way"))
    channels_last: bool = True
    compile: bool = Field(
        False, description="torch.compile the float training step (needs a C++ compiler; minutes to compile, "
        "then ~1.7x faster on CPU); falls back to eager with a warning if compiling fails"
    )
    compile_qat: bool = Field(
        False, description="torch.compile the QAT training steps as well: pays on slow steps (MobileNetV2), not "
        "on ResNet-20's two short QAT epochs (see docs/training.md)"
    )
    checkpoint_minutes: float | None = Field(
        10.0, ge=0, description="also checkpoint within an epoch this often (None: at epoch ends only); "
        "a resumed run continues from that step with the batches an uninterrupted run would see",
    )
    eval_batch_size: int = Field(500, ge=1)
    log_every: int = Field(50, ge=1, description="steps between log lines when not on a terminal")


class TrainConfig(_Strict):
    """A whole training run: float supernet (optionally weight-averaged, optionally its early heads trained
    again), then QAT per precision pair, then exit tables."""

    name: str = "run"
    model: dict[str, Any] = Field(default_factory=dict, description="EENNSpec fields (exitspace.models)")
    data: DataConfig = Field(default_factory=DataConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    swa: SWAConfig = Field(default_factory=SWAConfig)
    heads: HeadsConfig = Field(default_factory=HeadsConfig)
    qat: QATConfig = Field(default_factory=QATConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)

    @model_validator(mode="after")
    def _views_need_augmentation(self) -> "TrainConfig":
        if self.loss.teacher_views and not self.data.augment:
            raise ValueError("loss.teacher_views: the views are random crops and flips; set data.augment: true, "
                             "or loss.teacher_views: 0")
        return self


def _first_error(exc: ValidationError, prefix: str = "") -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "config"
    if first["type"] == "extra_forbidden":
        return f"{prefix}{where}: unknown key; remove it or check the spelling (see configs/train/)"
    msg = first["msg"].removeprefix("Value error, ")
    got = first.get("input")
    got_text = "" if isinstance(got, dict) else f" (got {got!r})"
    return f"{prefix}{where}: {msg}{got_text}"


def parse_train_config(data: dict[str, Any], source: str = "config") -> TrainConfig:
    """Validate a dict; one-line ConfigError naming the field."""
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_first_error(exc)}") from None


def load_train_config(path: Path) -> TrainConfig:
    """Read and validate a training YAML; relative data and teacher paths resolve against the YAML's folder."""
    path = Path(path)
    data = load_yaml(path, "training config", "give the path of a training YAML (see configs/train/)") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections (model, data, optim, ...)")
    config = parse_train_config(data, str(path))
    if config.data.path is not None:
        config.data.path = _beside(path, config.data.path)
    config.loss.teachers = [_beside(path, teacher) for teacher in config.loss.teachers]
    return config


def _beside(config_path: Path, path: Path) -> Path:
    """``path`` as given when it exists or is absolute, else resolved against the config file's folder."""
    if path.is_absolute() or path.exists():
        return path
    candidate = (config_path.parent / path).resolve()
    return candidate if candidate.exists() else path
