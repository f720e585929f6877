"""``exitspace export`` and ``exitspace infer``: which design of a results.json, the weights it was searched
on, and the figures of an exported model beside the report's.

The weights are looked up where the design's exit tables came from and must be the very network of the
exit table the search scored (its model hash, recorded per precision pair in results.json).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from exitspace.errors import CheckpointError, ConfigError
from exitspace.export.source import Design, TrainedNetwork, network_in
from exitspace.flow.finetune import check_entry, design_head_keys, pick_design
from exitspace.precision import PrecisionPair, pair_key
from exitspace.search.results import ResultsDocument, load_results


def results_file(run_or_results: Path) -> Path:
    """The results.json of a run directory, a results folder or the file itself."""
    path = Path(run_or_results)
    if path.is_dir():
        for candidate in (path / "report" / "results.json", path / "results.json"):
            if candidate.is_file():
                return candidate
    return path


def choose_design(run_or_results: Path, selector: str | None) -> tuple[Design, ResultsDocument, Path]:
    """The design named by ``selector`` (index into the Pareto front, a design name, None: the headline), the
    whole results document, and its path."""
    path = results_file(run_or_results)
    results = load_results(path)
    entry = check_entry(pick_design(results, selector))
    design = entry.design
    thresholds = tuple(float(t) for t in design.thresholds)
    keys = design_head_keys(design)
    report = {"test": entry.test, "val": entry.val, "exit_ratios": entry.exit_ratios,
              "exit_accuracy": entry.exit_accuracy}
    chosen = Design(entry.name, keys, thresholds[: len(keys) - 1], design.confidence,
                    (int(design.precision[0]), int(design.precision[1])), report)
    return chosen, results, path


def _candidate_dirs(results: ResultsDocument, results_path: Path, weights: Path | None) -> list[Path]:
    """Where the weights may be: the given folder, the results folder, the run's training directory and the
    run config's ``exit_tables.dir``."""
    from exitspace.config import REPO_ROOT

    if weights is not None:
        return [Path(weights)]
    report_dir = results_path.parent
    run_dir = report_dir.parent if report_dir.name == "report" else report_dir
    found = [run_dir, report_dir, run_dir / "train"]
    config = results.config
    table_dir = (config.get("exit_tables") or {}).get("dir")
    if table_dir:
        relative = Path(table_dir).expanduser()
        source = config.get("source")
        found += [relative] if relative.is_absolute() else [
            *([Path(source).parent / relative] if source else []), Path.cwd() / relative, REPO_ROOT / relative]
    return [path for path in found if path.is_dir()]


def find_network(results: ResultsDocument, results_path: Path, pair: PrecisionPair,
                 weights: Path | None = None) -> TrainedNetwork:
    """The trained supernet of ``pair`` whose exit table the search scored (same model hash); one-line error
    naming where it looked otherwise."""
    key = pair_key(pair)
    wanted = results.exit_table_hashes.get(key)
    looked = _candidate_dirs(results, results_path, weights)
    mismatched = []
    for directory in looked:
        network = network_in(directory, pair)
        if network is None:
            continue
        if wanted is None or network.model_hash == wanted:
            return network
        mismatched.append(str(network.source))
    if mismatched:
        raise CheckpointError(f"weights {mismatched[0]}: not the {key} network these results were searched on "
                              "(model hash differs); give --weights with the run's own weights")
    where = ", ".join(str(path) for path in looked) or "nowhere (no candidate folder exists)"
    raise ConfigError(f"--weights: no {key} weights found (looked in {where}); export them with "
                      "`exitspace train-export RUN_DIR RESULTS_DIR` or give --weights DIR")


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name).strip("_")[:80] or "design"


def export_searched_design(run_or_results: Path, selector: str | None, weights: Path | None = None,
                           out: Path | None = None) -> tuple[dict[str, Any], Path]:
    """Export the design ``selector`` names (None: the headline) of a run or results folder; (manifest, folder).
    Default folder: ``<run>/export/<design>``."""
    from exitspace.export.writer import export_design

    chosen, results, results_path = choose_design(run_or_results, selector)
    network = find_network(results, results_path, chosen.pair, weights)
    report_dir = results_path.parent
    run_dir = report_dir.parent if report_dir.name == "report" else report_dir
    out_dir = out if out is not None else run_dir / "export" / _slug(chosen.name)
    return export_design(chosen, network, out_dir, str(results_path)), out_dir


def infer_exported(model: Path, dataset: str | None, split: str, data_path: Path | None, limit: int | None,
                   threads: int) -> dict[str, Any]:
    """Run an exported model on a split (``exitspace.export.infer``): the per-exit figures, the nodes run for the
    first image leaving at each exit, whether time grows with the exit, and the report's figures beside them
    (whole splits only)."""
    from exitspace.export.infer import compare_with_report, executed_nodes, load_images, load_manifest, run_split

    manifest = load_manifest(model)
    images, labels = load_images(manifest, dataset, split, data_path)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    result = run_split(model, images, labels, threads)
    summary = {"design": manifest["design"], "split": split, **result.summary(manifest["head_keys"])}
    for index, row in enumerate(summary["per_exit"]):
        leaving = [i for i, e in enumerate(result.exits) if e == index]
        row["nodes_run"] = len(executed_nodes(model, images[leaving[0] : leaving[0] + 1])[1]) if leaving else None
    medians = [row["median_ms"] for row in summary["per_exit"] if row["median_ms"] is not None]
    summary["time_grows_with_exit"] = all(a < b for a, b in zip(medians, medians[1:]))
    summary["report"] = compare_with_report(manifest, split, summary) if limit is None else None
    return summary
