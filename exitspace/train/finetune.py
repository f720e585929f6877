"""Fine-tune one design cut from a trained supernet: its exits alone, at its precision pair.

The search scores every design on the shared supernet's cached logits (train once, search many). This
stage checks a chosen design as it would be deployed: the design's heads are cut out of the finished
supernet of its precision pair (``EENN.subnet``: backbone up to the final exit, the chosen heads
only), trained together for a few epochs with the run's QAT recipe (cosine schedule, ``qat.weight_decay``,
BatchNorm frozen per ``qat.freeze_bn``, the heads' rate factors, loss weights and teachers of the run), and
evaluated into an exit table of those heads. Unchosen heads are neither run nor trained.

Output folder (re-running resumes, or only reloads a finished fine-tune)::

    request.json                 what was asked (refused if a re-run asks something else)
    checkpoint.pt / model.pt     the phase's checkpoints (see trainer.run_phase)
    exit_table_b8_e8.npz         the fine-tuned design's exit table
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from exitspace.data.registry import load_splits
from exitspace.errors import ConfigError
from exitspace.files import atomic_write_text, writable_folder
from exitspace.precision import PrecisionPair
from exitspace.train.checkpoint import state_dict_hash
from exitspace.train.exit_table import ExitTable
from exitspace.train.pipeline import (
    configure_threads, exit_table_path, load_trained_model, model_spec, qat_settings, taught, teaching,
    write_exit_table,
)
from exitspace.train.progress import Reporter
from exitspace.train.run_dir import saved_config
from exitspace.train.trainer import run_phase

REQUEST = "request.json"


@dataclass(frozen=True)
class FinetuneRequest:
    """One design to fine-tune: its head keys (network order, final exit last), pair and recipe."""

    head_keys: tuple[str, ...]
    pair: PrecisionPair
    epochs: int
    lr: float
    head_grad_scale: float

    def as_json(self) -> dict[str, Any]:
        """Plain-JSON form (tuples as lists), as written to request.json and the exit table's meta."""
        return json.loads(json.dumps(asdict(self)))

    def check_matches(self, saved: dict[str, Any], out_dir: Path) -> None:
        """One-line ConfigError when ``out_dir`` holds the fine-tune of another request (epochs may change)."""
        now = self.as_json()
        for key in ("head_keys", "pair", "lr", "head_grad_scale"):
            if saved.get(key) != now[key]:
                raise ConfigError(f"{key}: {out_dir} fine-tuned {saved.get(key)!r}, now {now[key]!r} is asked; "
                                  "give another --out, or ask the same to resume")


@dataclass
class FinetuneResult:
    """The supernet's exit table of the pair, the fine-tuned design's exit table, and the phase history."""

    supernet_table: ExitTable
    table: ExitTable
    table_path: Path
    source_hash: str
    history: list[dict[str, Any]]


def finetune_design(
    run_dir: Path,
    request: FinetuneRequest,
    out_dir: Path,
    reporter: Reporter | None = None,
    stop_after_steps: int | None = None,
    threads: int | None = None,
) -> FinetuneResult:
    """Fine-tune ``request``'s design from the finished supernet in ``run_dir`` into ``out_dir`` (resumes;
    ``threads`` overrides the run's ``runtime.threads``)."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    config = saved_config(run_dir)
    if config is None:
        raise ConfigError(f"{run_dir}: no trained supernet here (no config.yaml with checkpoints); give the "
                          "--run-dir of an `exitspace train` run")
    supernet_path = exit_table_path(run_dir, request.pair)
    if not supernet_path.is_file():
        raise ConfigError(f"{run_dir}: no exit table for {request.pair[0]}/{request.pair[1]}; train that pair first "
                          f"(`exitspace train ... --pairs {request.pair[0]}/{request.pair[1]}`)")
    supernet_table = ExitTable.load(supernet_path)
    unknown = [key for key in request.head_keys if key not in supernet_table.head_keys]
    if unknown:
        raise ConfigError(f"design: heads {unknown} are not in {run_dir}'s supernet; pick a design searched on its exit tables")
    writable_folder(out_dir, "--out")
    if (out_dir / REQUEST).is_file():
        request.check_matches(json.loads((out_dir / REQUEST).read_text()), out_dir)
    atomic_write_text(out_dir / REQUEST, json.dumps(request.as_json(), indent=1))

    reporter = reporter or Reporter(log_every=config.runtime.log_every)
    if reporter.log_file is None:
        reporter.log_file = out_dir / "finetune.log"
    configure_threads(threads or config.runtime.threads)
    splits = load_splits(config.data)
    loaders, teacher = teaching(config, splits, run_dir, reporter.log)
    supernet = load_trained_model(config, model_spec(config, splits), run_dir, request.pair)
    source_hash = state_dict_hash(supernet)
    if source_hash != supernet_table.meta.get("model_hash"):
        raise ConfigError(f"{run_dir}: its {request.pair[0]}/{request.pair[1]} weights do not match its exit table "
                          "(model hash differs); re-run `exitspace train` on it to rewrite the table")
    design = supernet.subnet(request.head_keys)
    design.head_grad_scale = request.head_grad_scale
    settings = taught(qat_settings(config, design, epochs=request.epochs, lr=request.lr), teacher, config)
    reporter.log(f"fine-tune {'+'.join(request.head_keys)} at {request.pair[0]}/{request.pair[1]} from {run_dir}: "
                 f"{request.epochs} epochs at lr {request.lr}, head gradient scale {request.head_grad_scale}")
    history = run_phase("fine-tune", design, loaders["train"], loaders["val"], out_dir, settings, reporter,
                        stop_after_steps)
    table_path = out_dir / exit_table_path(out_dir, request.pair).name
    meta = {**{k: v for k, v in supernet_table.meta.items() if k not in ("model_hash", "accuracy")},
            "finetune": {**request.as_json(), "source_run": str(run_dir), "source_hash": source_hash}}
    table = write_exit_table(design, loaders, table_path, meta)
    return FinetuneResult(supernet_table, table, table_path, source_hash, history)

