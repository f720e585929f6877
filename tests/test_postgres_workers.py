"""Two `exitspace search` workers on one PostgreSQL study (skipped without a server: scripts/postgres_server.sh,
which .ci/run sources, starts one and exports EXITSPACE_POSTGRES_DSN)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from exitspace.search.engine import OVER_BUDGET_ATTR
from exitspace.search.optuna_adapter import open_storage

REPO = Path(__file__).resolve().parents[1]
DSN = os.environ.get("EXITSPACE_POSTGRES_DSN", "")
BUDGET = 60


def _server_answers() -> bool:
    if not DSN:
        return False
    try:
        import psycopg2

        psycopg2.connect(DSN, connect_timeout=5).close()
        return True
    except Exception:  # noqa: BLE001 - any failure means: no usable server here
        return False


pytestmark = pytest.mark.skipif(not _server_answers(), reason="no PostgreSQL server (EXITSPACE_POSTGRES_DSN)")


def _config(tmp_path: Path, study: str) -> Path:
    path = tmp_path / f"{study}.yaml"
    path.write_text(
        "name: workers\n"
        f"exit_tables: {{dir: {REPO / 'results/resnet20_cifar10'}}}\n"
        "hardware: {system: edge_tpu_quad}\n"
        "search:\n"
        "  space: {precision_pairs: [[8, 8], [4, 8]], allocations: [round_robin, greedy], policies: [wait, overlap],\n"
        "          thresholds: {mode: per_exit, low: 0.5, high: 1.0, step: 0.05}}\n"
        f"  trials: {BUDGET}\n"
        "  population: 12\n"
        "  constraints: {max_accuracy_drop: 0.03}\n"
        "  baselines: {mac_proxy: false}\n"
        f"  storage: {DSN}\n"
        f"  study_name: {study}\n"
        "report: {designs: 1, sweep_layers: 0}\n"
    )
    return path


def _workers(config: Path, run_dirs: list[Path]) -> list[dict[str, Any]]:
    """Start one `exitspace search` per run directory at once; their results documents."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-m", "exitspace.cli.main", "search", str(config), "--run-dir",
                               str(run_dir), "--no-report", "--json"], env=env, cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for run_dir in run_dirs]
    for proc in procs:
        out, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err[-2000:]
    return [json.loads((run_dir / "report" / "results.json").read_text()) for run_dir in run_dirs]


def _without_worker_figures(results: dict[str, Any]) -> dict[str, Any]:
    """A results document less what differs between workers by nature (their own timings and trial counts)."""
    study = {k: v for k, v in results["study"].items()
             if k not in ("seconds", "eval_seconds", "persist_seconds", "new_trials")}
    return {**results, "study": study}


def test_two_workers_share_one_study_and_its_budget(tmp_path: Path) -> None:
    study_name = f"workers-{uuid.uuid4().hex[:8]}"
    docs = _workers(_config(tmp_path, study_name), [tmp_path / "w1", tmp_path / "w2"])
    study = optuna.load_study(study_name=study_name, storage=open_storage(DSN))
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == BUDGET
    assert len({t.number for t in trials}) == len(trials)  # no trial number twice
    assert all(t.user_attrs.get(OVER_BUDGET_ATTR) for t in trials if t.state != TrialState.COMPLETE)
    assert all(doc["study"]["new_trials"] > 0 for doc in docs)  # both workers ran trials
    assert sum(doc["study"]["new_trials"] for doc in docs) == BUDGET
    assert _without_worker_figures(docs[0]) == _without_worker_figures(docs[1])
    assert docs[0]["study"]["trials"] == BUDGET
    assert [row[0] for row in docs[0]["trials"]] == sorted(t.number for t in complete)
    single = _workers(_config(tmp_path, f"{study_name}-single"), [tmp_path / "single"])[0]
    shared_hv, single_hv = docs[0]["hypervolume"]["front_test"], single["hypervolume"]["front_test"]
    assert shared_hv >= 0.97 * single_hv, (shared_hv, single_hv)
