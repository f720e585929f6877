"""Export a finished run's exit tables and summary into a results folder, with a Markdown table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from exitspace.errors import CheckpointError
from exitspace.train.exit_table import ExitTable


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


def export_results(run_dir: Path, out_dir: Path, heads: list[str] | None = None) -> dict[str, Any]:
    """Copy exit tables (optionally only some head types, to keep the files small), summary.json and results.md.

    ``heads``: head types to keep (e.g. ["pool4_fc1", "pool4_fc2"]); None keeps all.
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    summary = load_summary(run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
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
    exported = {k: v for k, v in summary.items() if k not in ("float_history",)}
    exported["float_history"] = summary.get("float_history", [])
    (out_dir / "summary.json").write_text(json.dumps(exported, indent=1))
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
        f"Produced by `exitspace train-export {run_dir} {out_dir}"
        + (f" --heads {','.join(heads)}" if heads else "") + "`.",
        "",
    ]
    (out_dir / "results.md").write_text("\n".join(text))
    return {"out_dir": str(out_dir), "exit_table_bytes": sizes}
