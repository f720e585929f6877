"""The whole training flow: float supernet -> QAT per precision pair -> exit tables -> summary.json.

Run directory layout (re-running resumes and skips finished work)::

    config.yaml            copy of the config used
    train.log              log lines of every run
    float/                 checkpoint.pt (latest epoch), model.pt + done.json when finished
    swa/, heads/           the same for the optional phases after it
    qat_b8_e4/ ...         the same per quantized pair
    exit_tables/exit_table_b8_e4.npz
    teacher_views.pt       the teachers' predictions of fixed training views (with loss.teacher_views)
    summary.json           per-head val/test accuracy per pair
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np
import torch
import yaml
from torch import nn

from exitspace.data.base import DataSplits
from exitspace.data.loader import BatchLoader
from exitspace.data.registry import load_splits
from exitspace.errors import ConfigError
from exitspace.files import atomic_write_text, writable_folder
from exitspace.models import EENN, EENNSpec, EENNSubnet, build_eenn
from exitspace.models.common import keep_depthwise_in_float
from exitspace.precision import FLOAT_BITS, PrecisionPair, pair_slug, parse_pair
from exitspace.train.checkpoint import load_checkpoint, state_dict_hash
from exitspace.train.config import TrainConfig
from exitspace.train.exit_table import ExitTable
from exitspace.train.losses import head_loss_weights, scale_early_head_gradients
from exitspace.train.progress import Reporter
from exitspace.train.quant import freeze_batchnorm, quantize_model, set_observers
from exitspace.train.run_dir import SAVED_CONFIG, check_resumable, saved_config
from exitspace.train.stopping import run_dir_lock, stop_signals
from exitspace.train.teacher_views import fixed_teacher_views
from exitspace.train.teachers import TeacherEnsemble
from exitspace.train.trainer import CHECKPOINT, DONE, FINAL, PhaseSettings, head_accuracy, predict, run_phase

SUMMARY = "summary.json"
LOG = "train.log"


def exit_table_path(run_dir: Path, pair: PrecisionPair) -> Path:
    """Where the exit table of ``pair`` lives in a run directory."""
    return Path(run_dir) / "exit_tables" / f"exit_table_{pair_slug(pair)}.npz"


def configure_threads(threads: int | None) -> int:
    """Set torch's intra-op threads (None = all cores); returns the number used."""
    count = threads or os.cpu_count() or 1
    torch.set_num_threads(count)
    return count


def model_spec(config: TrainConfig, splits: DataSplits) -> EENNSpec:
    """The EENN spec, with classes / input channels / size taken from the data unless given."""
    channels, height, _ = splits.info["image_shape"]
    defaults = {"num_classes": splits.info["num_classes"], "in_channels": channels, "input_size": height}
    return EENNSpec.parse({**defaults, **config.model})


def _resolved_dump(config: TrainConfig, splits: DataSplits) -> dict[str, Any]:
    """The config as a dict, its ``model`` section replaced by the full model spec."""
    return {**config.model_dump(mode="json"), "model": model_spec(config, splits).model_dump(mode="json")}


def training_device(config: TrainConfig) -> torch.device:
    """``runtime.device`` as a torch device (``auto``: the GPU when torch sees one, else the CPU); a one-line
    ConfigError when a GPU is asked for and torch sees none."""
    asked = config.runtime.device
    if asked == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if asked.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"runtime.device: {asked}, but this torch ({torch.__version__}) sees no GPU; "
                          "use cpu, or auto to take a GPU only where there is one")
    return torch.device(asked)


def make_loaders(config: TrainConfig, splits: DataSplits) -> dict[str, BatchLoader]:
    """Train (shuffled, augmented, drop_last) and val/test (in order) loaders, handing batches to ``runtime.device``."""
    mean, std = torch.tensor(splits.info["mean"]), torch.tensor(splits.info["std"])
    cl = config.runtime.channels_last
    common: dict[str, Any] = dict(mean=mean, std=std, channels_last=cl, device=training_device(config))
    d = config.data
    return {
        "train": BatchLoader(splits.train, config.optim.batch_size, shuffle=True, augment=d.augment,
                             crop_padding=d.crop_padding, flip=d.flip, cutout_size=d.cutout,
                             trivial=d.trivial_augment, drop_last=True, seed=config.runtime.seed, **common),
        "val": BatchLoader(splits.val, config.runtime.eval_batch_size, **common),
        "test": BatchLoader(splits.test, config.runtime.eval_batch_size, **common),
    }


def parameter_groups(model: nn.Module, lr: float, scales: tuple[float, float]) -> list[dict[str, Any]]:
    """Optimiser groups: everything at ``lr``, except that the early exits' heads and the final exit's heads
    each get a group of their own at ``lr`` times their factor in ``scales`` (early, final) when it is not 1.
    A scaled group keeps its factor as ``lr_scale``; with no factor below 1 there is one group, as older
    checkpoints have."""
    groups: list[dict[str, Any]] = []
    if isinstance(model, (EENN, EENNSubnet)):
        for final, scale in zip((False, True), scales):
            if scale != 1.0:
                groups.append({"params": model.head_parameters(final), "lr": lr * scale, "lr_scale": scale})
    taken = {id(param) for group in groups for param in group["params"]}
    return [{"params": [param for param in model.parameters() if id(param) not in taken], "lr": lr}, *groups]


def _sgd(lr: float, momentum: float, nesterov: bool, weight_decay: float,
         head_lr_scales: tuple[float, float]) -> Callable[[nn.Module], torch.optim.SGD]:
    return lambda model: torch.optim.SGD(parameter_groups(model, lr, head_lr_scales), lr=lr, momentum=momentum,
                                         nesterov=nesterov and momentum > 0, weight_decay=weight_decay)


def _head_lr_scales(config: TrainConfig) -> tuple[float, float]:
    return config.optim.head_lr_scale, config.optim.final_head_lr_scale


def _float_settings(config: TrainConfig, model: EENN | EENNSubnet) -> PhaseSettings:
    o, loss = config.optim, config.loss
    device = next(model.parameters()).device

    def scheduler(optimizer: torch.optim.Optimizer, total: int) -> torch.optim.lr_scheduler.LRScheduler:
        if o.schedule == "onecycle":
            peaks = [o.lr * group.get("lr_scale", 1.0) for group in optimizer.param_groups]  # also once resumed
            return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=peaks, total_steps=total, pct_start=o.warmup_fraction)
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)

    return PhaseSettings(
        epochs=o.epochs, make_optimizer=_sgd(o.lr, o.momentum, o.nesterov, o.weight_decay, _head_lr_scales(config)),
        make_scheduler=scheduler,
        weights=_loss_weights(config, model).to(device), final_mask=_final_mask(model).to(device),
        label_smoothing=o.label_smoothing, distill_weight=loss.distill_weight,
        distill_temperature=loss.distill_temperature, bf16=config.runtime.bf16, compile=config.runtime.compile,
        checkpoint_minutes=config.runtime.checkpoint_minutes,
    )


def _all_in_eval(model: nn.Module) -> None:
    model.eval()


def _heads_settings(config: TrainConfig, model: EENN) -> PhaseSettings:
    """The heads phase: SGD from ``heads.lr`` (times the heads' factor), cosine to 0, the whole network in eval
    mode (the backbone's BatchNorm statistics stay as trained)."""
    o = config.optim
    settings = _float_settings(config, model)
    settings.epochs = config.heads.epochs
    settings.make_optimizer = _sgd(config.heads.lr, o.momentum, o.nesterov, o.weight_decay, _head_lr_scales(config))
    settings.make_scheduler = lambda opt, total: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    settings.train_mode_hook = _all_in_eval
    return settings


@contextmanager
def only_early_heads_learn(model: EENN) -> Iterator[None]:
    """Freeze every parameter but the early exits' heads while the block runs."""
    learning = {id(param) for param in model.head_parameters(final=False)}
    frozen = [param for param in model.parameters() if id(param) not in learning and param.requires_grad]
    for param in frozen:
        param.requires_grad_(False)
    try:
        yield
    finally:
        for param in frozen:
            param.requires_grad_(True)


def _swa_settings(config: TrainConfig, model: EENN) -> PhaseSettings:
    swa = config.swa
    settings = _float_settings(config, model)
    settings.epochs = swa.epochs
    settings.make_optimizer = _sgd(swa.lr, config.optim.momentum, config.optim.nesterov, config.optim.weight_decay,
                                   _head_lr_scales(config))
    settings.make_scheduler = lambda opt, total: torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=total)
    settings.average_weights = True
    return settings


def _loss_weights(config: TrainConfig, model: EENN | EENNSubnet) -> torch.Tensor:
    """The heads' loss weights; a design cut from the supernet takes its heads' entries of a weight list."""
    mode = config.loss.weights
    if isinstance(mode, list) and isinstance(model, EENNSubnet):
        per_key = dict(zip(model.spec.head_keys, mode))
        return torch.tensor([per_key[key] for key in model.head_keys], dtype=torch.float32)
    return head_loss_weights(model.head_blocks, mode)


def _final_mask(model: EENN | EENNSubnet) -> torch.Tensor:
    last = max(model.head_blocks)
    return torch.tensor([b == last for b in model.head_blocks])


def qat_settings(config: TrainConfig, model: EENN | EENNSubnet, epochs: int | None = None,
                 lr: float | None = None) -> PhaseSettings:
    """The QAT recipe (``qat`` section; ``epochs`` / ``lr`` override it, e.g. to fine-tune one design)."""
    q, o, loss = config.qat, config.optim, config.loss
    settings = _float_settings(config, model)
    settings.epochs = q.epochs if epochs is None else epochs
    settings.compile = config.runtime.compile_qat
    settings.make_optimizer = _sgd(q.lr if lr is None else lr, o.momentum, o.nesterov, q.weight_decay,
                                   _head_lr_scales(config))
    settings.make_scheduler = lambda opt, total: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    settings.train_mode_hook = freeze_batchnorm if q.freeze_bn else None
    settings.eval_hook = lambda m, evaluating: set_observers(m, not evaluating)
    settings.label_smoothing = o.label_smoothing
    settings.distill_weight = loss.distill_weight
    return settings


_Module = TypeVar("_Module", bound=nn.Module)


def _placed(model: _Module, config: TrainConfig) -> _Module:
    """``model`` moved to ``runtime.device``, in channels_last layout when configured."""
    model = model.to(training_device(config))
    # Module.to returns the module itself; torch's stubs leave out its memory_format keyword
    return model.to(memory_format=torch.channels_last) if config.runtime.channels_last else model  # type: ignore[call-overload]


@torch.no_grad()
def calibrate(model: nn.Module, loader: BatchLoader, batches: int) -> None:
    """Set activation ranges: a few forward passes in eval mode with observers on."""
    model.eval()
    set_observers(model, True)
    for index, (x, _) in enumerate(loader.epoch(0)):
        if index >= batches:
            break
        model(x)


def build_float_model(config: TrainConfig, spec: EENNSpec) -> EENN:
    """A freshly initialised supernet (seeded)."""
    torch.manual_seed(config.runtime.seed)
    return _training_knobs(build_eenn(spec), config)


def _training_knobs(model: EENN, config: TrainConfig) -> EENN:
    """Damp early-head gradients as configured; share pooling between pool4 heads and keep depthwise convs
    in float32 under bf16 autocast (both: same outputs up to rounding, faster on CPU)."""
    scale_early_head_gradients(model, config.loss.head_grad_scale)
    model.share_pooling = True
    keep_depthwise_in_float(model)
    return model


def _finished_weights(phase_dir: Path) -> dict[str, Any]:
    """The final state dict of a finished phase; one-line ConfigError when the phase has not finished."""
    if not ((phase_dir / DONE).is_file() and (phase_dir / FINAL).is_file()):
        raise ConfigError(f"{phase_dir}: phase not finished (no {DONE}); finish it with `exitspace train` first")
    return load_checkpoint(phase_dir / FINAL)["model"]


def base_phase(config: TrainConfig) -> str:
    """The phase (and folder) whose weights the float exit table and every QAT phase start from."""
    return "heads" if config.heads.epochs else "swa" if config.swa.epochs else "float"


def load_trained_model(config: TrainConfig, spec: EENNSpec, run_dir: Path, pair: PrecisionPair) -> EENN:
    """The finished supernet of ``pair`` in ``run_dir`` (the float weights, their SWA average or refit heads,
    or the QAT result), rebuilt without training: the network whose exit table ``exit_table_path(run_dir, pair)`` is."""
    model = _training_knobs(build_eenn(spec), config)
    model.load_state_dict(_finished_weights(Path(run_dir) / base_phase(config)))
    if pair != (FLOAT_BITS, FLOAT_BITS):
        quantize_model(model, pair)
        model.load_state_dict(_finished_weights(Path(run_dir) / f"qat_{pair_slug(pair)}"))
    return _placed(model, config)


def load_teachers(config: TrainConfig, splits: DataSplits,
                  log: Callable[[str], None] | None = None) -> TeacherEnsemble | None:
    """The float final exits of the runs in ``loss.teachers`` as one ensemble; None without teachers.

    A teacher must have been trained on the same data split: one whose training set held this run's
    validation images would leak their labels into the thresholds fitted on validation. The teachers
    are compiled when ``runtime.compile`` is on (``log`` reports a fallback to eager).
    """
    if not config.loss.teachers:
        return None
    models, sources = [], []
    ours = (config.data.name, config.data.val_size, config.data.split_seed)
    for run_dir in config.loss.teachers:
        teacher_config = saved_config(Path(run_dir))
        if teacher_config is None:
            raise ConfigError(f"loss.teachers: {run_dir} is not an `exitspace train` run directory with a finished "
                              "float phase; train it first or fix the path")
        theirs = (teacher_config.data.name, teacher_config.data.val_size, teacher_config.data.split_seed)
        if theirs != ours:
            raise ConfigError(f"loss.teachers: {run_dir} was trained on data (name, val_size, split_seed) {theirs}, this "
                              f"run on {ours}; a teacher must share the split (its training images must not be our validation ones)")
        try:
            supernet = load_trained_model(teacher_config, model_spec(teacher_config, splits), Path(run_dir),
                                          (FLOAT_BITS, FLOAT_BITS))
        except ConfigError as exc:
            raise ConfigError(f"loss.teachers: {exc}") from None
        models.append(supernet.final_exit())
        sources.append({"run_dir": str(run_dir), "model_hash": state_dict_hash(supernet)})
    return TeacherEnsemble(models, config.loss.distill_temperature, config.runtime.bf16, sources,
                           compile=config.runtime.compile, log=log)


def teaching(config: TrainConfig, splits: DataSplits, run_dir: Path,
             log: Callable[[str], None]) -> tuple[dict[str, BatchLoader], TeacherEnsemble | None]:
    """The run's loaders and teachers; with ``loss.teacher_views``, the training loader shows the fixed views
    whose teacher predictions ``run_dir`` keeps (built first when missing)."""
    teacher = load_teachers(config, splits, log)
    loaders = make_loaders(config, splits)
    if teacher is not None and config.loss.teacher_views:
        train = loaders["train"]
        train.use_views(fixed_teacher_views(config, train, splits.info["num_classes"], teacher, run_dir, log))
    return loaders, teacher


def taught(settings: PhaseSettings, teacher: TeacherEnsemble | None, config: TrainConfig) -> PhaseSettings:
    """``settings`` with the teacher ensemble and ``loss.teacher_weight`` (no change without a teacher)."""
    settings.teacher = teacher
    settings.teacher_weight = config.loss.teacher_weight if teacher is not None else 0.0
    return settings


def write_exit_table(model: EENN | EENNSubnet, loaders: dict[str, BatchLoader], path: Path, meta: dict[str, Any]) -> ExitTable:
    """Evaluate every head on val and test in float32 (observers frozen) and save the exit table."""
    set_observers(model, False)
    logits, labels, accuracy = {}, {}, {}
    for split in ("val", "test"):
        logits[split], labels[split] = predict(model, loaders[split], bf16=False)
        accuracy[split] = dict(zip(model.head_keys, map(float, head_accuracy(logits[split], labels[split]))))
    table = ExitTable(head_keys=list(model.head_keys), head_blocks=list(model.head_blocks),
                      logits={k: v.astype(np.float16) for k, v in logits.items()}, labels=labels,
                      meta={**meta, "model_hash": state_dict_hash(model), "accuracy": accuracy})
    table.save(path)
    return table


@dataclass
class _Run:
    """What every phase of one ``run_training`` call shares."""

    config: TrainConfig
    run_dir: Path
    spec: EENNSpec
    loaders: dict[str, BatchLoader]
    teacher: TeacherEnsemble | None
    reporter: Reporter
    stop_after_steps: int | None
    summary: dict[str, Any]
    float_model: EENN | None = None

    def phase(self, name: str, model: nn.Module, directory: str, settings: PhaseSettings,
              teach: bool = True) -> list[dict[str, Any]]:
        """Run (or resume, or load) one phase into ``run_dir / directory`` (``teach``: with the teachers, if any)."""
        return run_phase(name, model, self.loaders["train"], self.loaders["val"], self.run_dir / directory,
                         taught(settings, self.teacher if teach else None, self.config), self.reporter,
                         self.stop_after_steps)

    def float_trained(self) -> EENN:
        """The float supernet (then its SWA average and refit heads, when configured), trained once per call."""
        if self.float_model is None:
            config = self.config
            model = _placed(build_float_model(config, self.spec), config)
            started = time.perf_counter()
            self.summary["float_history"] = self.phase("float", model, "float", _float_settings(config, model))
            self.summary.setdefault("float_seconds", time.perf_counter() - started)
            if config.swa.epochs:
                started = time.perf_counter()
                self.summary["swa_history"] = self.phase("swa", model, "swa", _swa_settings(config, model))
                self.summary.setdefault("swa_seconds", time.perf_counter() - started)
            if config.heads.epochs:  # the teachers teach the final exit alone, which stays frozen here
                started = time.perf_counter()
                with only_early_heads_learn(model):
                    self.summary["heads_history"] = self.phase("heads", model, "heads", _heads_settings(config, model),
                                                               teach=False)
                self.summary.setdefault("heads_seconds", time.perf_counter() - started)
            self.float_model = model
        return self.float_model

    def trained(self, pair: PrecisionPair) -> tuple[EENN, list[dict[str, Any]]]:
        """The supernet at ``pair``: the float one, or a QAT phase started from it (calibrated first)."""
        base = self.float_trained()
        if pair == (FLOAT_BITS, FLOAT_BITS):
            return base, []
        config = self.config
        model = _training_knobs(build_eenn(self.spec), config)
        model.load_state_dict(base.state_dict())
        quantize_model(model, pair)
        model = _placed(model, config)
        directory = f"qat_{pair_slug(pair)}"
        if not (self.run_dir / directory / CHECKPOINT).is_file() and not (self.run_dir / directory / DONE).is_file():
            calibrate(model, self.loaders["train"], config.qat.calibration_batches)
        return model, self.phase(f"qat {pair[0]}/{pair[1]}", model, directory, qat_settings(config, model))


def _open_run_dir(config: TrainConfig, run_dir: Path, splits: DataSplits) -> None:
    """Refuse to resume ``run_dir`` under a changed config, then save the config there."""
    saved = saved_config(run_dir)
    if saved is not None:
        check_resumable(run_dir, _resolved_dump(saved, splits), _resolved_dump(config, splits))
    atomic_write_text(run_dir / SAVED_CONFIG, yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))


def _table_meta(config: TrainConfig, spec: EENNSpec, splits: DataSplits, teacher: TeacherEnsemble | None,
                pair: PrecisionPair) -> dict[str, Any]:
    """What an exit table records of how its network was made."""
    return {"model_spec": spec.model_dump(mode="json"), "dataset": splits.info["dataset"],
            "split_seed": splits.info["split_seed"], "val_size": splits.info["val_size"], "seed": config.runtime.seed,
            "config_name": config.name, **({"swa": config.swa.model_dump()} if config.swa.epochs else {}),
            **({"heads": config.heads.model_dump()} if config.heads.epochs else {}),
            **({"teachers": teacher.sources, "teacher_weight": config.loss.teacher_weight,
                "teacher_views": config.loss.teacher_views} if teacher else {}),
            "precision_pair": list(pair),
            **({} if pair == (FLOAT_BITS, FLOAT_BITS) else
               {"qat": {"epochs": config.qat.epochs, "lr": config.qat.lr, "freeze_bn": config.qat.freeze_bn}})}


def _load_summary(path: Path, config: TrainConfig, spec: EENNSpec, splits: DataSplits) -> dict[str, Any]:
    """The run's summary so far (pairs already done kept), its header refreshed."""
    summary: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    summary.update(name=config.name, model=spec.model_dump(mode="json"), data=splits.info, head_keys=spec.head_keys,
                   head_blocks=spec.head_blocks)
    summary.setdefault("pairs", {})
    return summary


def run_training(
    config: TrainConfig,
    run_dir: Path,
    pairs: list[str] | None = None,
    reporter: Reporter | None = None,
    stop_after_steps: int | None = None,
) -> dict[str, Any]:
    """Float training, QAT per pair, exit tables, summary; resumes whatever is already in ``run_dir``.

    ``stop_after_steps`` (tests) interrupts any one phase after that many of its steps in this call.
    """
    run_dir = writable_folder(run_dir, "--run-dir")
    reporter = reporter or Reporter(log_file=run_dir / LOG, log_every=config.runtime.log_every)
    with run_dir_lock(run_dir), stop_signals(reporter.log):
        return _train_run(config, run_dir, pairs, reporter, stop_after_steps)


def _train_run(config: TrainConfig, run_dir: Path, pairs: list[str] | None, reporter: Reporter,
               stop_after_steps: int | None) -> dict[str, Any]:
    """``run_training``'s work, with the run directory locked and stop signals routed."""
    threads = configure_threads(config.runtime.threads)
    chosen = [parse_pair(p) for p in (pairs or config.qat.pairs)]
    splits = load_splits(config.data)
    spec = model_spec(config, splits)
    _open_run_dir(config, run_dir, splits)
    loaders, teacher = teaching(config, splits, run_dir, reporter.log)
    reporter.log(f"run {config.name}: {spec.backbone} with {len(spec.head_keys)} heads, data {splits.info['dataset']} "
                 f"train/val/test {len(splits.train)}/{len(splits.val)}/{len(splits.test)}, {threads} threads, "
                 f"pairs {[f'{b}/{e}' for b, e in chosen]}")
    summary_path = run_dir / SUMMARY
    summary = _load_summary(summary_path, config, spec, splits)
    run = _Run(config, run_dir, spec, loaders, teacher, reporter, stop_after_steps, summary)
    for pair in chosen:
        key = f"{pair[0]}/{pair[1]}"
        table_path = exit_table_path(run_dir, pair)
        if table_path.is_file() and key in summary["pairs"]:
            reporter.log(f"{key}: exit table exists, skipped ({table_path})")
            continue
        model, history = run.trained(pair)
        table = write_exit_table(model, loaders, table_path, _table_meta(config, spec, splits, teacher, pair))
        summary["pairs"][key] = {"exit_table": str(table_path.relative_to(run_dir)), "model_hash": table.meta["model_hash"],
                                 "accuracy": table.meta["accuracy"], "qat_history": history}
        test_acc = table.meta["accuracy"]["test"]
        reporter.log(f"{key}: final exit test acc {test_acc[model.head_keys[-1]]:.4f}, first exit "
                     f"{test_acc[model.head_keys[0]]:.4f}; table {table_path}")
        atomic_write_text(summary_path, json.dumps(summary, indent=1))
    atomic_write_text(summary_path, json.dumps(summary, indent=1))
    return summary
