"""``exitspace export`` (a searched design as an ONNX early-exit model) and ``exitspace infer`` (run it in
onnxruntime on a data split)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from exitspace.cli.app import app, console, user_errors
from exitspace.errors import ConfigError


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name).strip("_")[:80] or "design"


@app.command()
@user_errors
def export(
    run_or_results: Annotated[Path, typer.Argument(help="run directory of `exitspace run`, a results folder, or a results.json")],
    design: Annotated[Optional[str], typer.Option("--design", help="index into the Pareto front or a design name")] = None,
    headline: Annotated[bool, typer.Option("--headline", help="the report's headline design")] = False,
    weights: Annotated[Optional[Path], typer.Option("--weights", help="folder with the trained weights (default: where "
                                                    "the exit tables came from)")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="output folder (default: RUN/export/<design>)")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print export.json on stdout")] = False,
) -> None:
    """Write a searched design as one ONNX model whose exits skip the later stages (torch.cond -> ONNX If; the
    confidence and thresholds in the graph; QuantizeLinear/DequantizeLinear at the design's bits), plus one
    graph per stage for `exitspace workload --onnx`."""
    if headline == (design is not None):
        raise ConfigError("--design/--headline: give exactly one (--headline, or --design INDEX|NAME)")
    from exitspace.export.source import choose_design, find_network
    from exitspace.export.writer import MODEL_FILE, export_design

    chosen, results, results_path = choose_design(run_or_results, design)
    network = find_network(results, results_path, chosen.pair, weights)
    report_dir = results_path.parent
    run_dir = report_dir.parent if report_dir.name == "report" else report_dir
    out_dir = out if out is not None else run_dir / "export" / _slug(chosen.name)
    manifest = export_design(chosen, network, out_dir, str(results_path))
    if json_output:
        print(json.dumps(manifest))
        return
    console.print(f"exported {chosen.name} ({chosen.pair[0]}/{chosen.pair[1]}, exits "
                  f"{' '.join(chosen.head_keys)}) to {out_dir / MODEL_FILE} and {len(manifest['segments'])} stage "
                  f"graphs in {out_dir / 'segments'}", highlight=False, soft_wrap=True)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _infer_table(summary: dict[str, Any], split: str) -> Table:
    table = Table(title=f"{summary['design']} on {split} ({summary['images']} images, onnxruntime)")
    for column in ("exit", "images", "ratio", "accuracy", "median ms", "mean ms", "nodes run"):
        table.add_column(column, justify="left" if column == "exit" else "right")
    for row in summary["per_exit"]:
        table.add_row(row["exit"], str(row["images"]), f"{100 * row['ratio']:.2f}%",
                      "-" if row["accuracy"] is None else f"{100 * row['accuracy']:.2f}%", _ms(row["median_ms"]),
                      _ms(row["mean_ms"]), "-" if row.get("nodes_run") is None else str(row["nodes_run"]))
    table.add_section()
    table.add_row("all", str(summary["images"]), "", f"{100 * summary['accuracy']:.2f}%", _ms(summary["median_ms"]),
                  "", "")
    return table


@app.command()
@user_errors
def infer(
    model: Annotated[Path, typer.Argument(help="model.onnx written by `exitspace export`")],
    data: Annotated[Optional[str], typer.Option("--data", help="data set (must be the one the design was trained on; "
                                                "default: that one)")] = None,
    split: Annotated[str, typer.Option("--split", help="val or test")] = "test",
    data_path: Annotated[Optional[Path], typer.Option("--data-path", help="where the data set is (default: the "
                                                      "training config's data.path)")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="only the first N images")] = None,
    threads: Annotated[int, typer.Option("--threads", min=1, help="onnxruntime intra-op threads")] = 1,
    json_output: Annotated[bool, typer.Option("--json", help="print the figures as JSON")] = False,
) -> None:
    """Run an exported design in onnxruntime, one image at a time: accuracy, exit ratios, time per exit taken,
    nodes run per exit, and the report's figures beside them."""
    from exitspace.export.infer import compare_with_report, executed_nodes, load_images, load_manifest, run_split

    manifest = load_manifest(model)
    images, labels = load_images(manifest, data, split, data_path)
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
    if json_output:
        print(json.dumps(summary))
        return
    console.print(_infer_table(summary, split))
    check = summary["report"]
    if check is not None:
        ratios = " ".join(f"{100 * r:.2f}%" for r in check["report_exit_ratios"])
        console.print(f"report ({split}): accuracy {100 * check['report_accuracy']:.2f}%, exit ratios {ratios}; gaps "
                      f"{check['accuracy_gap_points']:.2f} / {max(check['exit_ratio_gap_points'], default=0):.2f} "
                      f"points (tolerance {check['tolerance_points']}): {'agree' if check['agrees'] else 'DISAGREE'}")
