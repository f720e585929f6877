"""Export a finished run's exit tables and summary into a results folder, with a Markdown table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from exitspace.errors import CheckpointError
from exitspace.files import atomic_write_text
from exitspace.train.checkpoint import load_checkpoint, save_checkpoint
from exitspace.train.exit_table import ExitTable
from exitspace.train.pipeline import base_phase, load_trained_model
from exitspace.precision import parse_pair
from exitspace.train.run_dir import SAVED_CONFIG, saved_config
from exitspace.train.trainer import DONE, FINAL
from exitspace.train.weights import save_pair_weights, weights_path


def load_summary(run_dir: Path) -> dict[str, Any]:
    """The run's summary.json; one-line error if the run has none."""
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise CheckpointError(f"{path}: not found; run `exitspace train CONFIG --run-dir {run_dir}` first")
    return json.loads(path.read_text())


def accuracy_markdown(summary: dict[str, Any], split: str = "test") -> str:
    """A Markdown table: one row per head, one column per precision pair, top-1 accuracy in %."""
    pairs = list(summary["pairs"])
    keys = summary["head_keys"]
    lines = [
        f"| head (block) | {' | '.join(pairs)} |",
        "|---|" + "---:|" * len(pairs),
    ]
    for key, block in zip(keys, summary["head_blocks"]):
        cells = [f"{100 * summary['pairs'][p]['accuracy'][split][key]:.2f}" for p in pairs]
        lines.append(f"| {key} (b{block}) | {' | '.join(cells)} |")
    return "\n".join(lines)


def export_weights(run_dir: Path, out_dir: Path) -> int:
    """Copy the config and the finished float weights (the phase QAT starts from: float, SWA or heads) into
    ``out_dir``, which then serves as a run directory for ``loss.teachers`` on any machine; the bytes written.

    The checkpoint keeps the state dict and the phase history only (no optimiser state).
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    config = saved_config(run_dir)
    if config is None:
        raise CheckpointError(f"{run_dir}: no finished float phase with its {SAVED_CONFIG}; "
                              f"run `exitspace train CONFIG --run-dir {run_dir}` first")
    phase = base_phase(config)
    source = run_dir / phase
    if not ((source / DONE).is_file() and (source / FINAL).is_file()):
        raise CheckpointError(f"{source}: phase not finished (no {DONE}); finish it with `exitspace train` first")
    state = load_checkpoint(source / FINAL)
    target = out_dir / phase
    target.mkdir(parents=True, exist_ok=True)
    save_checkpoint(target / FINAL, {key: state[key] for key in ("model", "history", "phase") if key in state})
    shutil.copyfile(source / DONE, target / DONE)
    shutil.copyfile(run_dir / SAVED_CONFIG, out_dir / SAVED_CONFIG)
    return (target / FINAL).stat().st_size


def export_pair_weights(run_dir: Path, out_dir: Path, summary: dict[str, Any]) -> dict[str, int]:
    """Write every precision pair's finished supernet (float and each QAT pair) as a weights file in
    ``out_dir/weights/`` (``exitspace.train.weights``), each checked to be the network of its exit table
    (same model hash); the bytes written per pair."""
    from exitspace.models import EENNSpec

    config = saved_config(run_dir)
    if config is None:
        raise CheckpointError(f"{run_dir}: no {SAVED_CONFIG}; run `exitspace train CONFIG --run-dir {run_dir}` first")
    spec = EENNSpec.parse(summary["model"])
    sizes = {}
    for key, entry in summary["pairs"].items():
        pair = parse_pair(key)
        model = load_trained_model(config, spec, run_dir, pair).cpu()
        path = weights_path(out_dir, pair)
        digest = save_pair_weights(path, model, pair, summary["data"], config.data.model_dump(mode="json"))
        if digest != entry.get("model_hash"):
            path.unlink()
            raise CheckpointError(f"{run_dir}: the {key} weights are not the network of its exit table (model hash "
                                  "differs); re-run `exitspace train` on it to rewrite the table")
        sizes[key] = path.stat().st_size
    return sizes


def _teaching_note(meta: dict[str, Any]) -> list[str]:
    """A results.md paragraph naming the run's teachers (from an exit table's metadata), or nothing."""
    teachers = meta.get("teachers")
    if not teachers:
        return []
    names = ", ".join(f"`{t.get('run_dir', '?')}` (model hash {str(t.get('model_hash', '?'))[:12]})" for t in teachers)
    views = meta.get("teacher_views") or 0
    how = f"on {views} stored crop/flip views per training image" if views else "on every training batch"
    return [f"The final exit learned from teachers {names}, {how}, with teacher weight {meta.get('teacher_weight')}.", ""]


def export_results(run_dir: Path, out_dir: Path, heads: list[str] | None = None, weights: bool = False) -> dict[str, Any]:
    """Copy exit tables (optionally only some head types, to keep the files small), summary.json and results.md,
    and write every pair's weights (``export_pair_weights``; all heads, whatever ``heads`` keeps); with
    ``weights``, also the config and the float phase's checkpoint (``export_weights``), so the folder can teach.

    ``heads``: head types to keep (e.g. ["pool4_fc1", "pool4_fc2"]); None keeps all.
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    summary = load_summary(run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    weight_bytes = export_weights(run_dir, out_dir) if weights else 0
    pair_weight_bytes = export_pair_weights(run_dir, out_dir, summary)
    sizes = {}
    for pair, entry in summary["pairs"].items():
        source = run_dir / entry["exit_table"]
        target = out_dir / source.name
        if heads is None:
            shutil.copyfile(source, target)
        else:
            table = ExitTable.load(source)
            keep = [i for i, key in enumerate(table.head_keys) if key.split(":", 1)[1] in heads]
            ExitTable(
                head_keys=[table.head_keys[i] for i in keep], head_blocks=[table.head_blocks[i] for i in keep],
                logits={s: v[:, keep] for s, v in table.logits.items()}, labels=table.labels,
                meta={k: v for k, v in table.meta.items() if k != "format_version"},
            ).save(target)
        sizes[pair] = target.stat().st_size
    first_table = next(iter(summary["pairs"].values()), None)
    taught_by = _teaching_note(ExitTable.load(run_dir / first_table["exit_table"]).meta) if first_table else []
    exported = {k: v for k, v in summary.items() if k not in ("float_history",)}
    exported["float_history"] = summary.get("float_history", [])
    atomic_write_text(out_dir / "summary.json", json.dumps(exported, indent=1))
    name = summary.get("name", run_dir.name)
    final = summary["head_keys"][-1]
    text = [
        f"# {name}: per-head top-1 accuracy (%) per precision pair (backbone/exit bits)",
        "",
        f"Dataset {summary['data']['dataset']}: train/val/test {summary['data']['train_size']}/"
        f"{summary['data']['val_size']}/{summary['data']['test_size']}, split seed {summary['data']['split_seed']}. "
        f"Heads `<exit>:<type>`, mounted after block bN; the final exit is {final.split(':')[0]}.",
        "Every head comes from one supernet per pair, all heads trained in one run (QAT fine-tuned from the float weights)."
        + (f" The float weights are a stochastic weight average over {len(summary['swa_history']) - 1} further epochs."
           if summary.get("swa_history") else "")
        + (f" The early exits' heads were then trained {len(summary['heads_history'])} more epochs on the frozen network."
           if summary.get("heads_history") else ""),
        "",
        "## Test",
        "",
        accuracy_markdown(summary, "test"),
        "",
        "## Validation",
        "",
        accuracy_markdown(summary, "val"),
        "",
        (f"The exit tables here keep only the head types {heads} (to keep them small); the run directory has all."
         if heads else "The exit tables here hold every head."),
        "",
        *taught_by,
        f"`weights/` holds every pair's supernet ({sum(pair_weight_bytes.values()) / 1e6:.1f} MB; "
        "`exitspace export` builds an ONNX model of a searched design from them).",
        "",
        *([f"The float phase's checkpoint is here too ({weight_bytes / 1e6:.1f} MB, no optimiser state): this folder can serve "
           "as a teacher (`loss.teachers`).", ""] if weights else []),
        f"Produced by `exitspace train-export {run_dir} {out_dir}"
        + (f" --heads {','.join(heads)}" if heads else "") + (" --weights" if weights else "") + "`.",
        "",
    ]
    atomic_write_text(out_dir / "results.md", "\n".join(text))
    return {"out_dir": str(out_dir), "exit_table_bytes": sizes, "weight_bytes": weight_bytes,
            "pair_weight_bytes": pair_weight_bytes}
