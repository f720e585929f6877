"""Verify a searched design by fine-tuning it alone: accuracy, exit ratios and ELP before and after.

A design from a results.json (the headline design, or one of the Pareto front) is cut out of the
supernet that the search scored, fine-tuned with its own exits only (``exitspace.train.finetune``),
and scored again on its own allocation and schedule: the per-stage costs stored in results.json do not
depend on the exit ratios, so the ELP follows from the new ratios exactly. It is scored at the searched
thresholds, and at thresholds refitted on the fine-tuned validation logits (cheapest at no less validation
accuracy than the search found). The supernet is checked to be the one the search used (model hash of
its exit table).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from exitspace.dynamic.calibration import calibrate
from exitspace.dynamic.exits import ExitScorer
from exitspace.dynamic.metrics import expected_costs
from exitspace.errors import ConfigError
from exitspace.files import atomic_write_text, safe_file_name
from exitspace.precision import pair_key, parse_pair
from exitspace.search.results import DesignRecord, ParetoRecord, ResultsDocument, ScoredRecord, load_results
from exitspace.train.exit_table import ExitTable
from exitspace.train.finetune import FinetuneRequest, finetune_design
from exitspace.train.pipeline import exit_table_path
from exitspace.train.progress import Reporter
from exitspace.train.run_dir import saved_config

RESULT = "finetune.json"
SPLITS = ("val", "test")


def pick_design(results: ResultsDocument, selector: str | None) -> ParetoRecord:
    """The Pareto entry named by ``selector``: its index in ``pareto``, its name, or None for the headline design."""
    front = results.pareto
    if not front:
        raise ConfigError("results.json: no Pareto designs in it; give the results.json of a finished `exitspace run`")
    if selector is None:
        name = results.headline.design
        chosen = next((entry for entry in front if entry.name == name), None)
        if chosen is None:
            raise ConfigError("--design: the results have no headline design; give an index 0.."
                              f"{len(front) - 1} into the Pareto front or a design name")
        return chosen
    if selector.strip().isdigit():
        index = int(selector)
        if index >= len(front):
            raise ConfigError(f"--design: index {index} is out of range; the front has {len(front)} designs (0..{len(front) - 1})")
        return front[index]
    chosen = next((entry for entry in front if entry.name == selector), None)
    if chosen is None:
        raise ConfigError(f"--design: no Pareto design named {selector!r}; use an index 0..{len(front) - 1} or a name "
                          "from results.json's pareto[].name")
    return chosen


def check_entry(entry: ParetoRecord) -> ParetoRecord:
    """``entry`` if it has what a fine-tune needs (searched metrics, per-stage costs); else a one-line error."""
    missing = [f"{split}.{key}" for split in SPLITS for key in ("accuracy", "elp") if key not in entry.split(split)]
    stages = entry.stages
    if not stages or any("cum_energy_pj" not in stage or "cum_latency_cycles" not in stage for stage in stages):
        missing.append("stages (cum_energy_pj, cum_latency_cycles per exit)")
    if missing:
        raise ConfigError(f"results.json: a Pareto entry lacks {missing[0]}; give the unedited results.json of `exitspace run`")
    return entry


def design_head_keys(design: DesignRecord) -> tuple[str, ...]:
    """Head keys of a design's exits in network order, the final exit last (e.g. "E:pool4_fc2")."""
    labels = [*design.exits, design.final]
    return tuple(f"{label}:{design.heads[label]}" for label in labels)


def _check_same_supernet(results: ResultsDocument, run_dir: Path, key: str) -> None:
    recorded = results.exit_table_hashes.get(key)
    if recorded is None:
        return  # results.json from before the hashes were recorded: nothing to compare
    path = exit_table_path(run_dir, parse_pair(key))
    found = ExitTable.load(path).meta.get("model_hash") if path.is_file() else None
    if found != recorded:
        raise ConfigError(f"{run_dir}: its {key} exit table is not the one these results were searched on "
                          "(model hash differs); give the training run whose tables the search used")


def _scorer(table: ExitTable, entry: ScoredRecord, split: str) -> ExitScorer:
    return ExitScorer.from_exit_table(table, split, design_head_keys(entry.design), entry.design.confidence)


def _stage_costs(entry: ScoredRecord) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative energy (pJ) and latency (cycles) of a sample leaving at each of the design's exits."""
    return (np.asarray([stage["cum_energy_pj"] for stage in entry.stages]),
            np.asarray([stage["cum_latency_cycles"] for stage in entry.stages]))


def score_design(table: ExitTable, entry: ScoredRecord, split: str, elp_definition: str,
                 thresholds: list[float] | None = None) -> dict[str, Any]:
    """Accuracy, exit ratios and ELP of a Pareto entry's design on ``table`` at the design's thresholds
    (or at ``thresholds``), on the design's own schedule."""
    chosen = entry.design.thresholds if thresholds is None else thresholds
    values = [np.inf if value is None else float(value) for value in chosen][: len(entry.stages) - 1]
    outcome = _scorer(table, entry, split).outcome(values)
    e_avg, l_avg, avg_product = expected_costs(np.asarray(outcome.ratios), *_stage_costs(entry))
    elp = avg_product if elp_definition == "paper" else e_avg * l_avg
    return {"accuracy": outcome.accuracy, "exit_ratios": outcome.ratios, "exit_accuracy": outcome.exit_accuracy,
            "elp": elp, "e_avg": e_avg, "l_avg": l_avg,
            "thresholds": [None if not np.isfinite(v) else v for v in values]}


def refit_thresholds(table: ExitTable, entry: ScoredRecord) -> list[float]:
    """Thresholds refitted on ``table``'s validation split: the lowest expected E_cum*L_cum whose validation
    accuracy is at least the searched design's (or the final exit's alone, if lower), starting from the
    searched thresholds."""
    val = _scorer(table, entry, "val")
    energy, latency = _stage_costs(entry)
    drop_points = max(0.0, 100.0 * (val.final_accuracy - float(entry.val["accuracy"])))
    searched = [float(value) for value in entry.design.thresholds]
    return calibrate(val, energy * latency, target_drop=drop_points, start=searched).thresholds


def _static_reference(results: ResultsDocument) -> dict[str, Any] | None:
    entry = results.static.get(results.static_reference)
    return None if entry is None else {"name": entry.name, **{split: entry.split(split) for split in SPLITS}}


def _design_folder(name: str) -> str:
    """The folder name of a design's fine-tune under RUN_DIR/finetune/ (never "..", never a path)."""
    slug = safe_file_name(str(name).replace(" ", "_").replace("/", "-").replace(":", "").replace(",", "+")
                          .replace("@", "_at_"))
    if not slug:
        raise ConfigError(f"--design: the design name {name!r} cannot name a folder; give --out")
    return slug


def verify_design(
    results_path: Path,
    run_dir: Path,
    selector: str | None = None,
    epochs: int | None = None,
    lr: float | None = None,
    head_grad_scale: float | None = None,
    out_dir: Path | None = None,
    reporter: Reporter | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Fine-tune one searched design from its supernet and score it before and after (writes finetune.json)."""
    results = load_results(results_path)
    entry = check_entry(pick_design(results, selector))
    design = entry.design
    pair = (int(design.precision[0]), int(design.precision[1]))
    key = pair_key(pair)
    run_dir = Path(run_dir)
    config = saved_config(run_dir)
    if config is None:
        raise ConfigError(f"{run_dir}: no trained supernet here; give the --run-dir of the `exitspace train` run "
                          "whose exit tables the search used")
    _check_same_supernet(results, run_dir, key)
    request = FinetuneRequest(
        head_keys=design_head_keys(design), pair=pair,
        epochs=config.qat.epochs if epochs is None else epochs, lr=config.qat.lr if lr is None else lr,
        head_grad_scale=config.loss.head_grad_scale if head_grad_scale is None else head_grad_scale)
    if request.epochs < 1 or request.lr <= 0 or not 0 <= request.head_grad_scale <= 1:
        raise ConfigError("--epochs/--lr/--head-grad-scale: need epochs >= 1, lr > 0 and a scale in [0, 1]")
    out_dir = Path(out_dir) if out_dir is not None else run_dir / "finetune" / _design_folder(entry.name)
    if out_dir.resolve() in (run_dir.resolve(), *run_dir.resolve().parents):
        raise ConfigError(f"--out {out_dir}: is the training run {run_dir} or a folder above it; the fine-tune would "
                          "write into the run itself; give another --out")
    outcome = finetune_design(run_dir, request, out_dir, reporter, threads=threads)
    elp_definition = results.elp_definition
    static = _static_reference(results)
    splits: dict[str, Any] = {}
    refitted = refit_thresholds(outcome.table, entry) if design.exits else None
    for split in SPLITS:
        row = {"supernet": score_design(outcome.supernet_table, entry, split, elp_definition),
               "finetuned": score_design(outcome.table, entry, split, elp_definition)}
        if refitted is not None:
            row["finetuned, refitted"] = score_design(outcome.table, entry, split, elp_definition, refitted)
        if static is not None:
            for scored in row.values():
                scored["elp_reduction"] = 1.0 - scored["elp"] / static[split]["elp"]
                scored["accuracy_loss_points"] = 100.0 * (static[split]["accuracy"] - scored["accuracy"])
        splits[split] = row
    report = {"design": entry.name, "precision_pair": key, "head_keys": list(request.head_keys),
              "thresholds": design.thresholds, "train_run": str(run_dir), "results": str(results_path),
              "epochs": request.epochs, "lr": request.lr, "head_grad_scale": request.head_grad_scale,
              "elp_definition": elp_definition, "static_reference": static, "splits": splits,
              "searched": {split: entry.split(split) for split in SPLITS}, "history": outcome.history,
              "exit_table": str(outcome.table_path), "source_hash": outcome.source_hash,
              "finetuned_hash": outcome.table.meta["model_hash"], "out_dir": str(out_dir)}
    atomic_write_text(out_dir / RESULT, json.dumps(report, indent=1))
    return report
