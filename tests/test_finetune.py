"""`exitspace finetune`: one searched design fine-tuned alone from its supernet, scored before and after."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from exitspace.cli.main import app, register_commands
from exitspace.errors import ConfigError
from exitspace.models import build_eenn
from exitspace.flow.finetune import design_head_keys, pick_design, verify_design
from exitspace.search.results import DesignRecord, load_results
from exitspace.train.checkpoint import load_checkpoint
from exitspace.train.config import parse_train_config
from exitspace.train.exit_table import ExitTable
from exitspace.train.finetune import FinetuneRequest, finetune_design
from exitspace.train.pipeline import exit_table_path, run_training
from exitspace.train.progress import Reporter
from exitspace.train.trainer import TrainingInterrupted

TRAIN = {
    "name": "ft",
    "model": {"backbone": "small_cnn", "head_types": ["pool4_fc1", "pool4_fc2"]},
    "data": {"name": "synthetic", "val_size": 128, "synthetic_train": 640, "synthetic_test": 256, "synthetic_size": 16},
    "optim": {"epochs": 3, "batch_size": 64, "lr": 0.05},
    "loss": {"distill_weight": 0.5},
    "qat": {"pairs": ["32/32", "8/8"], "epochs": 1, "lr": 0.005, "calibration_batches": 1},
    "runtime": {"threads": 1, "eval_batch_size": 128},
}


def _quiet() -> Reporter:
    return Reporter(quiet=True)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A trained tiny supernet (32/32, 8/8) and the results.json of a short search on its tables."""
    root = tmp_path_factory.mktemp("finetune")
    run_dir = root / "train"
    run_training(parse_train_config(TRAIN), run_dir, reporter=_quiet())
    config = root / "run.yaml"
    config.write_text(
        f"name: ft\nexit_tables: {{dir: {run_dir / 'exit_tables'}}}\n"
        "search:\n  space: {precision_pairs: [[8, 8]], allocations: [round_robin, greedy], min_exits: 1}\n"
        "  trials: 36\n  population: 12\n  constraints: {max_accuracy_drop: 0.2}\n  baselines: {mac_proxy_trials: 12}\n"
        "report: {designs: 1, sweep_layers: 1}\n")
    register_commands()
    out = CliRunner().invoke(app, ["run", str(config), "--run-dir", str(root / "search"), "--json"])
    assert out.exit_code == 0, out.output
    return run_dir, root / "search" / "report" / "results.json"


def test_fine_tuned_design_is_scored_before_and_after_on_its_own_schedule(searched: tuple[Path, Path], tmp_path: Path) -> None:
    run_dir, results_path = searched
    results = json.loads(results_path.read_text())
    entry = next(e for e in results["pareto"] if e["design"]["exits"])
    index = results["pareto"].index(entry)
    table_before = _sha(exit_table_path(run_dir, (8, 8)))
    report = verify_design(results_path, run_dir, str(index), epochs=2, lr=0.01, out_dir=tmp_path / "ft", reporter=_quiet())

    # Before fine-tuning, the design scores exactly as the search recorded it (same tables, same schedule).
    for split in ("val", "test"):
        before = report["splits"][split]["supernet"]
        assert before["accuracy"] == pytest.approx(entry[split]["accuracy"], abs=1e-9)
        assert before["elp"] == pytest.approx(entry[split]["elp"], rel=1e-9)
        assert before["exit_ratios"] == pytest.approx(entry["exit_ratios"][split], abs=1e-9)
    keys = list(design_head_keys(DesignRecord.model_validate(entry["design"])))
    table = ExitTable.load(Path(report["exit_table"]))
    assert table.head_keys == keys and table.precision_pair == (8, 8)
    assert table.meta["finetune"]["source_hash"] == report["source_hash"] != report["finetuned_hash"]
    after = report["splits"]["test"]["finetuned"]
    assert after["accuracy"] == pytest.approx(float(np.mean(
        _design_correct(table, entry, "test"))), abs=1e-9)  # scored on the fine-tuned logits
    assert sum(after["exit_ratios"]) == pytest.approx(1.0)
    refitted = report["splits"]["val"]["finetuned, refitted"]
    final_alone = float((table.logits["val"][:, -1].argmax(-1) == table.labels["val"]).mean())
    assert refitted["accuracy"] >= min(entry["val"]["accuracy"], final_alone) - 1e-9  # the refit keeps the accuracy
    assert len(refitted["thresholds"]) == len(keys) - 1
    assert "elp_reduction" in after and len(report["history"]) == 2
    assert json.loads((tmp_path / "ft" / "finetune.json").read_text())["design"] == entry["name"]
    assert _sha(exit_table_path(run_dir, (8, 8))) == table_before  # the supernet's run is left as it was


def _design_correct(table: ExitTable, entry: dict, split: str) -> np.ndarray:
    """Per-sample correctness of the design by a plain loop: first exit whose max softmax reaches its threshold."""
    logits = table.logits[split].astype(np.float32)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    thresholds = entry["design"]["thresholds"]
    correct = []
    for sample in range(logits.shape[0]):
        exit_at = next((e for e, t in enumerate(thresholds) if probs[sample, e].max() >= t), logits.shape[1] - 1)
        correct.append(probs[sample, exit_at].argmax() == table.labels[split][sample])
    return np.asarray(correct)


def test_fine_tune_trains_only_the_designs_heads_and_resumes_after_interruption(searched: tuple[Path, Path], tmp_path: Path) -> None:
    run_dir, _ = searched
    request = FinetuneRequest(("B:pool4_fc1", "D:pool4_fc2"), (32, 32), epochs=2, lr=0.01, head_grad_scale=1.0)
    whole = finetune_design(run_dir, request, tmp_path / "whole", _quiet())
    with pytest.raises(TrainingInterrupted):
        finetune_design(run_dir, request, tmp_path / "cut", _quiet(), stop_after_steps=7)
    resumed = finetune_design(run_dir, request, tmp_path / "cut", _quiet())
    assert resumed.table.meta["model_hash"] == whole.table.meta["model_hash"]
    trained = load_checkpoint(tmp_path / "whole" / "model.pt")["model"]
    source = load_checkpoint(run_dir / "float" / "model.pt")["model"]
    assert {name.split(".")[1] for name in trained if name.startswith("heads.")} == {"B_pool4_fc1", "D_pool4_fc2"}
    assert not torch.equal(trained["heads.B_pool4_fc1.fc1.weight"], source["heads.B_pool4_fc1.fc1.weight"])
    assert not torch.equal(trained["backbone.stem.0.weight"], source["backbone.stem.0.weight"])


def test_bad_requests_are_one_line(searched: tuple[Path, Path], tmp_path: Path) -> None:
    run_dir, results_path = searched
    results = json.loads(results_path.read_text())
    with pytest.raises(ConfigError, match=r"--design: index 999 is out of range"):
        pick_design(load_results(results_path), "999")
    with pytest.raises(ConfigError, match=r"--design: no Pareto design named 'nope'"):
        pick_design(load_results(results_path), "nope")
    with pytest.raises(ConfigError, match=r"no trained supernet here"):
        verify_design(results_path, tmp_path, reporter=_quiet())
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**results, "exit_table_hashes": {"8/8": "0" * 64}}))
    with pytest.raises(ConfigError, match=r"not the one these results were searched on"):
        verify_design(other, run_dir, reporter=_quiet())
    request = FinetuneRequest(("B:pool4_fc1", "D:pool4_fc2"), (8, 8), epochs=1, lr=0.01, head_grad_scale=0.0)
    finetune_design(run_dir, request, tmp_path / "out", _quiet())
    changed = FinetuneRequest(("C:pool4_fc1", "D:pool4_fc2"), (8, 8), epochs=1, lr=0.01, head_grad_scale=0.0)
    with pytest.raises(ConfigError, match=r"head_keys: .* give another --out"):
        finetune_design(run_dir, changed, tmp_path / "out", _quiet())
    with pytest.raises(ConfigError, match=r"heads \['Z:pool4_fc1'\] are not in"):
        finetune_design(run_dir, FinetuneRequest(("Z:pool4_fc1", "D:pool4_fc2"), (8, 8), 1, 0.01, 0.0), tmp_path / "z", _quiet())
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps({**results, "pareto": [{**results["pareto"][0], "stages": []}]}))
    with pytest.raises(ConfigError, match=r"results.json: a Pareto entry lacks stages"):
        verify_design(edited, run_dir, "0", reporter=_quiet())
    register_commands()
    out = CliRunner().invoke(app, ["finetune", str(results_path), str(run_dir), "--design", "999"])
    assert out.exit_code == 2 and len(out.output.strip().splitlines()) == 1 and "--design" in out.output
    out = CliRunner().invoke(app, ["finetune", str(tmp_path / "missing.json"), str(run_dir)])
    assert out.exit_code == 2 and "not found" in out.output


def test_subnet_damps_its_early_heads_gradient_into_the_backbone() -> None:
    torch.manual_seed(0)
    supernet = build_eenn(backbone="small_cnn", head_types=["pool4_fc1"], input_size=16)
    design = supernet.subnet(["A:pool4_fc1", "D:pool4_fc1"])
    stem = supernet.backbone.stem[0].weight
    grads = []
    for scale in (1.0, 0.0):
        design.head_grad_scale = scale
        stem.grad = None
        design(torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(1)))[:, 0].sum().backward()
        grads.append(stem.grad.clone())
    assert grads[0].abs().sum() > 0 and not grads[1].any()
