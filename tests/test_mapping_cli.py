"""`exitspace evaluate` end to end on a small workload (and, marked slow, the paper's MobileNetV2 case)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from exitspace.cli.app import app
from exitspace.cli.main import register_commands
from exitspace.train.exit_table import ExitTable
from exitspace.workload.layer import Layer, OpType, Workload

register_commands()
runner = CliRunner()


def small_workload() -> Workload:
    conv = dict(OY=8, OX=8, FY=3, FX=3, padding=(1, 1))
    return Workload(
        "small",
        [
            Layer("stem", OpType.CONV, K=16, C=3, block="stem", **conv),
            Layer("b0.conv", OpType.CONV, K=16, C=16, block="b0", inputs=("stem",), **conv),
            Layer("A:h.pool", OpType.POOL, K=16, C=16, groups=16, OY=4, OX=4, FY=2, FX=2, stride=(2, 2),
                  block="b0", exit="A:h", inputs=("b0.conv",)),
            Layer("A:h.fc", OpType.FC, K=10, C=256, block="b0", exit="A:h", inputs=("A:h.pool",)),
            Layer("b1.conv", OpType.CONV, K=32, C=16, block="b1", inputs=("b0.conv",), **conv),
            Layer("b1.add", OpType.ADD, K=32, C=32, groups=32, OY=8, OX=8, block="b1", inputs=("b1.conv", "b1.conv")),
            Layer("K:h.pool", OpType.POOL, K=32, C=32, groups=32, OY=4, OX=4, FY=2, FX=2, stride=(2, 2),
                  block="b1", exit="K:h", inputs=("b1.add",)),
            Layer("K:h.fc", OpType.FC, K=10, C=512, block="b1", exit="K:h", inputs=("K:h.pool",)),
        ],
    )


@pytest.fixture
def workload_file(tmp_path: Path) -> Path:
    path = tmp_path / "small.json"
    small_workload().to_json(path)
    return path


def run(*args: str):
    return runner.invoke(app, ["evaluate", *args])


def test_evaluate_json_is_consistent_and_from_one_allocation(workload_file: Path) -> None:
    result = run("--workload", str(workload_file), "--exits", "A,K", "--heads", "h", "--ratios", "0.4,0.6",
                 "--exit-accuracy", "0.9,0.8", "--allocation", "ga", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    stages = data["schedule"]["stages"]
    metrics = data["metrics"]
    r = np.array([0.4, 0.6])
    e = np.array([s["cum_energy_pj"] for s in stages])
    lat = np.array([s["cum_latency_cycles"] for s in stages])
    assert metrics["avg_product"] == pytest.approx(float(r @ (e * lat)))
    assert metrics["product_of_averages"] == pytest.approx(float(r @ e) * float(r @ lat))
    assert metrics["accuracy"] == pytest.approx(0.4 * 0.9 + 0.6 * 0.8)
    assert metrics["reduction_avg_product"] == pytest.approx(1 - metrics["avg_product"] / metrics["static"]["product"])
    assert set(data["schedule"]["allocation"]["cores"]) == {layer.name for layer in small_workload()}
    assert data["schedule"]["allocation"]["cores"]["A:h.pool"] == 4  # the pooling core
    assert data["schedule"]["allocation"]["cores"]["b1.add"] == 5  # the SIMD core
    assert "A:h.fc" not in data["static_schedule"]["allocation"]["cores"]


def test_evaluate_prints_the_stage_table_and_reuses_a_saved_allocation(workload_file: Path, tmp_path: Path) -> None:
    saved = tmp_path / "alloc.json"
    result = run("--workload", str(workload_file), "--exits", "A,K", "--heads", "h", "--ratios", "0.4,0.6", "--policy", "overlap",
                 "--allocation", "ga", "--save-allocation", str(saved))
    assert result.exit_code == 0, result.output
    assert "avg product" in result.stdout and "product of averages" in result.stdout and "A:h" in result.stdout
    first = run("--workload", str(workload_file), "--exits", "A,K", "--heads", "h", "--ratios", "0.4,0.6", "--policy", "overlap",
                "--allocation", "ga", "--json")
    again = run("--workload", str(workload_file), "--exits", "A,K", "--heads", "h", "--ratios", "0.4,0.6", "--policy", "overlap",
                "--allocation", str(saved), "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["metrics"]["avg_product"] == json.loads(first.stdout)["metrics"]["avg_product"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--ratios", "0.5,0.4"), "ratios: sum to 0.9000"),
        (("--ratios", "0.5,0.25,0.25"), "3 values for 2 exits"),
        (("--ratios", "0.5,0.5", "--exits", "A,Q"), "no head 'Q:h'"),
        (("--ratios", "0.5,0.5", "--bits", "8-8"), "--bits"),
        (("--ratios", "0.5,0.5", "--allocation", "anneal"), "unknown strategy"),
        (("--ratios", "0.5,0.5", "--hardware", "no_such_chip"), "unknown preset"),
        ((), "--ratios / --exit-table"),
    ],
)
def test_evaluate_bad_input_is_one_line(workload_file: Path, args: tuple[str, ...], message: str) -> None:
    base = ["--workload", str(workload_file), "--heads", "h"]
    if "--exits" not in args:
        base += ["--exits", "A,K"]
    result = run(*base, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_evaluate_rejects_an_allocation_with_an_unknown_core(workload_file: Path, tmp_path: Path) -> None:
    cores = {layer.name: 0 for layer in small_workload()}
    cores.update({"A:h.pool": 4, "K:h.pool": 4, "b1.add": 5, "b1.conv": 17})
    path = tmp_path / "alloc.json"
    path.write_text(json.dumps(cores))
    result = run("--workload", str(workload_file), "--exits", "A,K", "--heads", "h", "--ratios", "0.5,0.5",
                 "--allocation", str(path))
    assert result.exit_code == 2 and "unknown core 17" in result.output


def test_evaluate_calibrates_thresholds_from_an_exit_table(workload_file: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    logits, labels = {}, {}
    for split in ("val", "test"):
        y = rng.integers(0, 10, size=400)
        out = rng.normal(size=(400, 2, 10)).astype(np.float32)
        out[np.arange(400), 0, y] += rng.exponential(2.0, size=400)
        out[np.arange(400), 1, y] += rng.exponential(4.0, size=400)
        logits[split], labels[split] = out, y
    table_path = tmp_path / "exits.npz"
    ExitTable(["A:h", "K:h"], [1, 2], logits, labels, {"precision_pair": [8, 8]}).save(table_path)
    result = run("--workload", str(workload_file), "--exits", "A,K", "--heads", "h", "--exit-table", str(table_path),
                 "--target-drop", "2", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    calibration = data["calibration"]
    assert calibration["val"]["accuracy"] >= calibration["reference_accuracy"] - 0.02 - 1e-9
    assert data["metrics"]["ratios"] == pytest.approx(calibration["test"]["ratios"])
    fixed = run("--workload", str(workload_file), "--exits", "A,K", "--heads", "h", "--exit-table", str(table_path),
                "--thresholds", "0.9", "--json")
    assert fixed.exit_code == 0, fixed.output
    assert json.loads(fixed.stdout)["metrics"]["accuracy"] is not None
    other_bits = run("--workload", str(workload_file), "--exits", "A,K", "--heads", "h", "--exit-table", str(table_path),
                     "--thresholds", "0.9", "--bits", "4/8")
    assert other_bits.exit_code == 2 and "exit table is for 8/8" in other_bits.output


@pytest.mark.slow
def test_paper_case_mobilenetv2_defik_on_the_quad_core() -> None:
    result = run("--model", "mobilenetv2_cifar", "--exits", "D,F,I,K", "--heads", "pool4_fc1", "--bits", "8/8",
                 "--hardware", "edge_tpu_quad", "--allocation", "greedy", "--ratios", ".2549,.1531,.3114,.2806",
                 "--exit-accuracy", ".991,.969,.957,.664", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    metrics = data["metrics"]
    assert [s["block"] for s in data["schedule"]["stages"]] == ["b3", "b5", "b8", "b11"]
    assert metrics["accuracy"] == pytest.approx(0.8853, abs=1e-3)
    assert 0 < metrics["reduction_avg_product"] < 1
    assert metrics["product_of_averages"] < metrics["avg_product"]  # E and L grow together: E[EL] > E[E]E[L]
