"""Issue 25's security items: crafted pickles run no code, export names stay inside --out, storage passwords are
written nowhere, user text lands escaped in report.md, a design named ".." cannot write into the training run."""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from toys import ToyEvaluator
from typer.testing import CliRunner

from exitspace.cli.hardware_cmds import export_system
from exitspace.cli.main import app, register_commands
from exitspace.config import parse_config
from exitspace.data.cifar10 import load_cifar10_python
from exitspace.errors import CheckpointError, ConfigError, DataError
from exitspace.flow.finetune import _design_folder
from exitspace.hardware.presets import preset_system
from exitspace.pathnames import masked_url
from exitspace.report.render import write_report
from exitspace.search.codesign import CodesignInputs, run_codesign
from exitspace.search.results import ResultsDocument
from exitspace.search.space import DesignSpace
from exitspace.train.checkpoint import load_checkpoint, save_checkpoint

PACKAGE = Path(__file__).resolve().parents[1] / "exitspace"
SECRET = "s3cr3t-pw"


class _Payload:
    """Unpickling it would create ``marker`` (what a crafted file could do with any code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (str(self.marker),))


def test_crafted_checkpoint_runs_no_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "teacher.pt"
    torch.save({"model": _Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="holds objects other than tensors") as info:
        load_checkpoint(path)
    assert not marker.exists() and "\n" not in str(info.value)
    save_checkpoint(tmp_path / "ok.pt", {"model": {"w": torch.ones(2)}, "history": [{"epoch": 1, "acc": 0.5}]})
    assert load_checkpoint(tmp_path / "ok.pt")["history"][0]["acc"] == 0.5


def test_no_unsafe_unpickling_in_the_package() -> None:
    offenders = [f"{path.relative_to(PACKAGE)}:{number}" for path in PACKAGE.rglob("*.py")
                 for number, line in enumerate(path.read_text().splitlines(), 1)
                 if re.search(r"weights_only\s*=\s*False|pickle\.loads?\(|allow_pickle\s*=\s*True", line)]
    assert offenders == []


def test_crafted_cifar_batch_folder_runs_no_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    good = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps(good, protocol=2))
    assert len(load_cifar10_python(folder)[0].labels) == 10
    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": _Payload(marker), b"labels": [0]}))
    with pytest.raises(DataError, match="data_batch_3: not a CIFAR-10 python batch"):
        load_cifar10_python(folder)
    assert not marker.exists()


@pytest.mark.parametrize("fmt", ["zigzag", "stream", "exitspace"])
def test_hardware_export_names_stay_inside_out(fmt: str, tmp_path: Path) -> None:
    system = preset_system("edge_tpu_quad")
    evil = system.model_copy(update={
        "name": "../../evil_system",
        "cores": tuple(core.model_copy(update={"name": f"../../evil_{core.id}"}) for core in system.cores)})
    out = tmp_path / "a" / "b" / "out"
    written = export_system(evil, fmt, out)
    assert written
    for path in [*written, *tmp_path.rglob("*.yaml")]:
        assert path.resolve().is_relative_to(out.resolve()), path


def test_masked_url() -> None:
    assert masked_url(f"postgresql://me:{SECRET}@db.example:5432/studies") == "postgresql://me:***@db.example:5432/studies"
    assert masked_url(f"mysql://db/x?user=me&password={SECRET}") == "mysql://db/x?user=me&password=***"
    assert masked_url("postgresql://me@db/x") == "postgresql://me@db/x"
    assert masked_url("sqlite:///study.db") == "sqlite:///study.db"


def test_storage_password_written_nowhere_when_the_search_fails(tmp_path: Path) -> None:
    register_commands()
    run_dir = tmp_path / "run"
    url = f"postgresql://me:{SECRET}@127.0.0.1:9/studies"
    result = CliRunner().invoke(app, ["search", "default", "--run-dir", str(run_dir), "--trials", "1",
                                      "--set", f"search.storage={url}"])
    assert result.exit_code == 2 and "search.storage" in result.output, result.output
    assert SECRET not in result.output
    saved = (run_dir / "config.yaml").read_text()
    assert "postgresql://me:***@127.0.0.1:9/studies" in saved and SECRET not in saved


def _toy_results(tmp_path: Path, **search: object) -> ResultsDocument:
    config = parse_config({"name": "toy", "report": {"note": "<script>alert('x')</script> | a [link](javascript:x)"},
                           "search": {"trials": 24, "population": 8, "constraints": {"max_accuracy_drop": 0.05},
                                      "baselines": {"mac_proxy": False}, **search}})
    evaluator = ToyEvaluator()
    inputs = CodesignInputs(DesignSpace.build(config.search.space, evaluator.available()), evaluator, "toy")
    return run_codesign(config, inputs, tmp_path / "run")


def test_results_and_report_hold_no_password_and_escape_user_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    memory = optuna.storages.InMemoryStorage()
    monkeypatch.setattr("exitspace.search.engine.open_storage", lambda url: memory)
    results = _toy_results(tmp_path, storage=f"postgresql://me:{SECRET}@db.example/studies")
    results.alignment_sweep = None
    paths = write_report(results, tmp_path / "report", designs=1)
    for key in ("results", "markdown", "html"):
        text = paths[key].read_text()
        assert SECRET not in text, key
    markdown = paths["markdown"].read_text()
    assert "<script>" not in markdown and "&lt;script>" in markdown
    assert "<script>" not in paths["html"].read_text()


def test_design_named_dotdot_cannot_name_a_folder() -> None:
    with pytest.raises(ConfigError, match="cannot name a folder"):
        _design_folder("..")
    assert _design_folder("B:fc1,C:fc1@0.97 8/8 overlap greedy") == "Bfc1+Cfc1_at_0.97_8-8_overlap_greedy"
    assert "/" not in _design_folder("../../x") and not _design_folder("../../x").startswith(".")
