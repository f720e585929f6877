"""Export a searched design to ONNX and run it: weights per pair, the early-exit graph (ONNX If, Q/DQ at the
design's bits), onnxruntime figures against the exit table, node-level proof that an early exit skips the
later stages, per-stage graphs read back as the design's workload, and the CLI (`export`, `infer`)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from exitspace.cli.main import app, register_commands
from exitspace.dynamic.exits import ExitScorer
from exitspace.errors import CheckpointError
from exitspace.export.infer import executed_nodes, load_images, load_manifest, run_split
from exitspace.export.source import Design, TrainedNetwork
from exitspace.export.writer import export_design
from exitspace.mapping.network import stage_network
from exitspace.train.config import load_train_config
from exitspace.train.exit_table import ExitTable
from exitspace.train.pipeline import exit_table_path, run_training
from exitspace.train.results import export_results
from exitspace.train.weights import load_pair_weights, weights_path
from exitspace.workload.from_onnx import workload_from_onnx
from exitspace.workload.paper import eenn_workload

REPO = Path(__file__).resolve().parents[1]
HEAD_KEYS = ("A:pool4_fc1", "C:pool4_fc2", "D:pool4_fc1")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The smoke supernet trained at 32/32 and 8/8, and its results folder (train-export)."""
    root = tmp_path_factory.mktemp("export")
    run_training(load_train_config(REPO / "configs/train/smoke.yaml"), root / "train", pairs=["32/32", "8/8"])
    export_results(root / "train", root / "results")
    return {"root": root, "train": root / "train", "results": root / "results"}


def _design(table: ExitTable, pair: tuple[int, int]) -> Design:
    """A three-exit design whose thresholds send about a third of the test images out at each early exit."""
    scorer = ExitScorer.from_exit_table(table, "val", HEAD_KEYS)
    thresholds = (float(np.quantile(scorer.conf[0], 0.66)), float(np.quantile(scorer.conf[1], 0.5)))
    return Design("test design", HEAD_KEYS, thresholds, "max_softmax", pair, {})


def _nodes_of_else_branch(graph: onnx.GraphProto) -> set[str]:
    """Names of every node inside the else branch of the graph's top-level If (the later stages), recursively."""
    def walk(g: onnx.GraphProto) -> set[str]:
        names = set()
        for node in g.node:
            names.add(node.name)
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    names |= walk(attr.g)
        return names

    top_if = next(node for node in graph.node if node.op_type == "If")
    return walk(next(attr.g for attr in top_if.attribute if attr.name == "else_branch"))


def test_weights_per_pair_match_the_exit_tables(trained: dict[str, Path]) -> None:
    for pair in ((32, 32), (8, 8)):
        loaded = load_pair_weights(weights_path(trained["results"], pair))
        assert loaded.pair == pair
        assert loaded.model_hash == ExitTable.load(exit_table_path(trained["train"], pair)).meta["model_hash"]
        assert loaded.data_info["mean"] and loaded.data_config["name"] == "synthetic"


class _Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (str(Path(__file__).parent / "should_not_exist"),))


def test_weights_loading_never_runs_code_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"format": "exitspace.weights", "x": _Payload()}, protocol=2))
    marker = Path(__file__).parent / "should_not_exist"
    with pytest.raises(CheckpointError, match="not a readable weights file"):
        load_pair_weights(path)
    assert not marker.exists()


@pytest.mark.parametrize("pair", [(32, 32), (8, 8)], ids=["float", "8/8"])
def test_exported_design_exits_early_and_matches_the_exit_table(trained: dict[str, Path], pair: tuple[int, int],
                                                                 tmp_path: Path) -> None:
    table = ExitTable.load(exit_table_path(trained["train"], pair))
    loaded = load_pair_weights(weights_path(trained["results"], pair))
    network = TrainedNetwork(loaded.model, loaded.model_hash, loaded.data_info["mean"], loaded.data_info["std"],
                             loaded.data_config, loaded.path)
    design = _design(table, pair)
    manifest = export_design(design, network, tmp_path)
    model = onnx.load(tmp_path / "model.onnx")
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 18
    assert [n.op_type for n in model.graph.node].count("If") == 1  # the first exit's decision; the second is nested
    later = _nodes_of_else_branch(model.graph)
    quant_ops = {n for n in later if "QuantizeLinear" in n or "quantize" in n.lower()}
    if pair == (8, 8):
        zero_points = {init.data_type for init in _initializers(model.graph)
                       if init.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)}
        assert _op_count(model.graph, "QuantizeLinear") > 0 and _op_count(model.graph, "DequantizeLinear") > 0
        assert zero_points == {onnx.TensorProto.INT8, onnx.TensorProto.UINT8}  # weights int8, activations uint8
        assert quant_ops, "the later stages' fake quantization is inside the If branch"
    else:
        assert _op_count(model.graph, "QuantizeLinear") == 0

    manifest = load_manifest(tmp_path / "model.onnx")
    images, labels = load_images(manifest, "synthetic", "test", None)
    result = run_split(tmp_path / "model.onnx", images, labels, warmup=2)
    expected = ExitScorer.from_exit_table(table, "test", HEAD_KEYS).assign(design.thresholds)
    assert np.mean(result.exits == expected) >= 0.99
    summary = result.summary(list(HEAD_KEYS))
    scored = ExitScorer.from_exit_table(table, "test", HEAD_KEYS).outcome(design.thresholds)
    tolerance = 0.002 if pair == (32, 32) else 0.005
    assert abs(summary["accuracy"] - scored.accuracy) <= tolerance
    assert all(abs(a - b) <= tolerance for a, b in zip(summary["exit_ratios"], scored.ratios))
    assert min(summary["exit_ratios"]) > 0.05  # every exit is taken by some images

    early = int(np.flatnonzero(result.exits == 0)[0])
    late = int(np.flatnonzero(result.exits == 2)[0])
    exit_early, ran_early = executed_nodes(tmp_path / "model.onnx", images[early : early + 1])
    exit_late, ran_late = executed_nodes(tmp_path / "model.onnx", images[late : late + 1])
    assert (exit_early, exit_late) == (0, 2)
    assert later & set(ran_late), "the profiler sees the later stages run for an image that leaves last"
    assert not later & set(ran_early), "an image leaving at the first exit runs none of the later stages' nodes"
    assert len(ran_early) < len(ran_late)


def _initializers(graph: onnx.GraphProto) -> list[onnx.TensorProto]:
    found = list(graph.initializer)
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                found += _initializers(attr.g)
            if attr.type == onnx.AttributeProto.TENSOR:
                found.append(attr.t)
    return found


def _op_count(graph: onnx.GraphProto, op_type: str) -> int:
    count = 0
    for node in graph.node:
        count += node.op_type == op_type
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                count += _op_count(attr.g, op_type)
    return count


def test_stage_graphs_read_back_as_the_designs_workload(trained: dict[str, Path], tmp_path: Path) -> None:
    pair = (8, 8)
    loaded = load_pair_weights(weights_path(trained["results"], pair))
    network = TrainedNetwork(loaded.model, loaded.model_hash, loaded.data_info["mean"], loaded.data_info["std"],
                             loaded.data_config, loaded.path)
    manifest = export_design(_design(ExitTable.load(exit_table_path(trained["train"], pair)), pair), network, tmp_path)
    supernet = eenn_workload(loaded.model.spec, precision_backbone=8)
    staged = stage_network(supernet, list(HEAD_KEYS))
    fields = ("name", "op", "K", "C", "OY", "OX", "FY", "FX", "groups", "stride", "padding", "block", "exit")
    assert len(manifest["segments"]) == len(HEAD_KEYS)
    for stage, segment in enumerate(manifest["segments"]):
        read = workload_from_onnx(tmp_path / segment, precision=8)
        designed = [supernet.layers[i] for i, s in zip(staged.layer_index, staged.stage_of) if s == stage]
        assert [[getattr(layer, f) for f in fields] + [layer.macs] for layer in read] == \
               [[getattr(layer, f) for f in fields] + [layer.macs] for layer in designed]


def test_export_and_infer_commands(trained: dict[str, Path], tmp_path: Path) -> None:
    register_commands()
    config = tmp_path / "run.yaml"
    config.write_text(
        "name: export_run\n"
        f"exit_tables: {{dir: {trained['train']}}}\n"
        "search:\n"
        "  space: {precision_pairs: [[8, 8]], allocations: [round_robin]}\n"
        "  trials: 40\n  population: 10\n"
        "  constraints: {max_accuracy_drop: 0.1}\n"
        "  baselines: {mac_proxy_trials: 10}\n"
        "report: {designs: 1, sweep_layers: 0}\n")
    runner = CliRunner()
    run_dir = tmp_path / "run"
    ran = runner.invoke(app, ["run", str(config), "--run-dir", str(run_dir)])
    assert ran.exit_code == 0, ran.output
    both = runner.invoke(app, ["export", str(run_dir), "--headline", "--design", "0"])
    assert both.exit_code == 2 and "--design/--headline" in both.output
    (tmp_path / "empty").mkdir()
    missing = runner.invoke(app, ["export", str(run_dir), "--headline", "--weights", str(tmp_path / "empty")])
    assert missing.exit_code == 2 and "no 8/8 weights found" in missing.output, missing.output
    exported = runner.invoke(app, ["export", str(run_dir), "--headline", "--out", str(tmp_path / "out"), "--json"])
    assert exported.exit_code == 0, exported.output
    manifest = json.loads(exported.stdout)
    results = json.loads((run_dir / "report" / "results.json").read_text())
    assert manifest["design"] == results["headline"]["design"]
    table = ExitTable.load(exit_table_path(trained["train"], (8, 8)))
    for entry in results["pareto"]:  # oracle bounds beside every design, consistent with its exit table
        keys = [f"{label}:{entry['design']['heads'][label]}" for label in [*entry["design"]["exits"],
                                                                             entry["design"]["final"]]]
        final_right = table.logits["test"][:, table.head_index(keys[-1])].argmax(-1) == table.labels["test"]
        bounds = entry["oracle"]["test"]
        assert bounds["a"]["accuracy"] == pytest.approx(final_right.mean())
        assert bounds["b"]["accuracy"] >= entry["test"]["accuracy"] - 1e-9
        assert bounds["elp_vs_oracle_a"] == pytest.approx(entry["test"]["elp"] / bounds["a_at_design_accuracy"]["elp"])
    assert results["headline"]["test_elp_vs_oracle_a"] > 0
    assert "Oracle bounds of the chosen designs" in (run_dir / "report" / "report.md").read_text()
    inferred = runner.invoke(app, ["infer", str(tmp_path / "out" / "model.onnx"), "--data", "synthetic", "--split",
                                   "test", "--json"])
    assert inferred.exit_code == 0, inferred.output
    summary = json.loads(inferred.stdout)
    assert summary["report"]["agrees"], summary["report"]
    nodes = [row["nodes_run"] for row in summary["per_exit"] if row["nodes_run"] is not None]
    assert nodes == sorted(nodes) and len(set(nodes)) == len(nodes)
    wrong = runner.invoke(app, ["infer", str(tmp_path / "out" / "model.onnx"), "--data", "cifar10"])
    assert wrong.exit_code == 2 and "trained on 'synthetic'" in wrong.output


def test_four_bit_layers_export_as_int4_and_compute_what_qat_computes(tmp_path: Path) -> None:
    """A 4/8 supernet (observers fed random batches, no training): int4 weights / uint4 activations in the
    backbone, int8 / uint8 in the heads, and onnxruntime's outputs equal the fake-quantized torch model's."""
    import onnxruntime as ort
    import torch

    from exitspace.export.writer import early_exit_model
    from exitspace.models import build_eenn
    from exitspace.train.quant import quantize_model, set_observers

    torch.manual_seed(0)
    model = quantize_model(build_eenn(backbone="small_cnn", input_size=16, head_types=["pool4_fc1"]), (4, 8))
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(8, 3, 16, 16))
    model.eval()
    set_observers(model, False)
    network = TrainedNetwork(model, "-", [0.5, 0.5, 0.5], [0.25, 0.25, 0.25], {"name": "synthetic"}, tmp_path)
    design = Design("four bits", ("B:pool4_fc1", "D:pool4_fc1"), (0.0,), "max_softmax", (4, 8), {})
    export_design(design, network, tmp_path)
    graph = onnx.load(tmp_path / "model.onnx").graph
    types = {init.data_type for init in _initializers(graph)}
    assert {onnx.TensorProto.INT4, onnx.TensorProto.UINT4, onnx.TensorProto.INT8, onnx.TensorProto.UINT8} <= types
    session = ort.InferenceSession(str(tmp_path / "model.onnx"))
    reference = early_exit_model(design, network)  # threshold 0: every image leaves at the first exit
    images = np.random.default_rng(1).integers(0, 256, (6, 1, 3, 16, 16), dtype=np.uint8)
    for image in images:
        scores, exit_index = session.run(None, {"image": image})
        with torch.no_grad():
            expected, expected_exit = reference(torch.from_numpy(image))
        assert int(exit_index) == int(expected_exit) == 0
        assert np.abs(scores - expected.numpy()).max() < 1e-4
