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
    from exitspace.export.writer import MODEL_FILE, SEGMENTS_DIR
    from exitspace.flow.export import export_searched_design

    manifest, out_dir = export_searched_design(run_or_results, design, weights, out)
    if json_output:
        print(json.dumps(manifest))
        return
    pair = manifest["precision_pair"]
    console.print(f"exported {manifest['design']} ({pair[0]}/{pair[1]}, exits {' '.join(manifest['head_keys'])}) to "
                  f"{out_dir / MODEL_FILE} and {len(manifest['segments'])} stage graphs in {out_dir / SEGMENTS_DIR}",
                  highlight=False, soft_wrap=True)


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
    from exitspace.flow.export import infer_exported

    summary = infer_exported(model, data, split, data_path, limit, threads)
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
