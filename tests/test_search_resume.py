"""A search killed (SIGKILL) or interrupted (SIGINT) part-way, then resumed, ends with the same trials and the same
Pareto front, design for design, as an uninterrupted search with the same seed; two searches on one run directory
never splice their trials (the second is refused in one line)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from exitspace.cli.main import app, register_commands
from exitspace.errors import RunDirError
from exitspace.search.storage import TrialLog
from exitspace.train.stopping import SEARCH_LOCK, lock_holder

REPO = Path(__file__).resolve().parents[1]
POPULATION = 16
TRIALS = 160


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "resume.yaml"
    path.write_text(
        f"name: resume\nexit_tables: {{dir: {REPO / 'results' / 'resnet20_cifar10'}}}\n"
        "search:\n"
        "  space: {precision_pairs: [[8, 8], [4, 8]], allocations: [greedy], policies: [wait, overlap]}\n"
        f"  trials: {TRIALS}\n  population: {POPULATION}\n  seed: 7\n"
        "  baselines: {mac_proxy: false, paper: 'off'}\n  refine_allocation: null\n"
        "report: {sweep_layers: 0}\n"
    )
    return path


register_commands()


def _search(config: Path, run_dir: Path) -> dict:
    result = CliRunner().invoke(app, ["search", str(config), "--run-dir", str(run_dir), "--no-report", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads((run_dir / "report" / "results.json").read_text())


def _stored(run_dir: Path) -> list[tuple[int, str]]:
    """(number, parameters) of every stored trial of the main study, in number order."""
    with sqlite3.connect(run_dir / "study.sqlite3") as conn:
        rows = conn.execute("SELECT number, payload FROM trials WHERE study NOT LIKE '%-macproxy' ORDER BY number")
        return [(number, json.dumps(json.loads(payload)["params"], sort_keys=True)) for number, payload in rows]


def _count(run_dir: Path) -> int:
    try:
        with sqlite3.connect(f"file:{run_dir / 'study.sqlite3'}?mode=ro", uri=True, timeout=1) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0])
    except sqlite3.Error:
        return 0


def _start(config: Path, run_dir: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "exitspace.cli.main", "search", str(config), "--run-dir", str(run_dir),
                             "--no-report"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _interrupt_after(config: Path, run_dir: Path, stored: int, signum: int) -> None:
    """Run a real `exitspace search`, check that a second search on its run directory is refused while it runs,
    and send it ``signum`` once at least ``stored`` trials are in its trial log."""
    process = _start(config, run_dir)
    deadline = time.monotonic() + 240
    while lock_holder(run_dir, SEARCH_LOCK) is None and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    second = CliRunner().invoke(app, ["search", str(config), "--run-dir", str(run_dir), "--no-report"])
    assert second.exit_code == 2, second.output
    assert second.output.strip().splitlines()[-1] == (
        f"error: {run_dir}: in use by another `exitspace run` or `exitspace search` (pid {process.pid}); wait for it "
        f"to finish, or stop it with `kill -INT {process.pid}` (it stores its finished trials first)")
    while _count(run_dir) < stored and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, "the search ended before it could be interrupted"
    process.send_signal(signum)
    process.wait(timeout=120)
    assert _count(run_dir) < TRIALS, "the signal came after the last trial"


def _front(results: dict) -> list[str]:
    return [entry["name"] for entry in results["pareto"]]


@pytest.mark.slow
def test_resumed_search_ends_where_an_uninterrupted_one_does(tmp_path: Path) -> None:
    config = _config(tmp_path)
    straight = _search(config, tmp_path / "straight")
    for name, signum, after in (("killed", signal.SIGKILL, 2 * POPULATION), ("interrupted", signal.SIGINT, 5 * POPULATION)):
        run_dir = tmp_path / name
        _interrupt_after(config, run_dir, after, signum)
        resumed = _search(config, run_dir)
        assert resumed["study"]["new_trials"] < TRIALS, name
        assert _stored(run_dir) == _stored(tmp_path / "straight"), name
        assert _front(resumed) == _front(straight), name
        assert [e["design"] for e in resumed["pareto"]] == [e["design"] for e in straight["pareto"]], name


def test_trial_log_never_overwrites_another_process_trials(tmp_path: Path) -> None:
    import optuna

    def trial(x: float) -> optuna.trial.FrozenTrial:
        return optuna.trial.create_trial(params={"x": x}, values=[x],
                                         distributions={"x": optuna.distributions.FloatDistribution(0, 2)})

    first, second = TrialLog(tmp_path / "study.sqlite3"), TrialLog(tmp_path / "study.sqlite3")
    for log in (first, second):
        log.open_study("s", ["minimize"])
    first.append("s", [trial(1.0)])
    with pytest.raises(RunDirError, match="stored by another process meanwhile"):
        second.append("s", [trial(2.0)])  # the same trial number
    assert [t["params"] for t in first.load("s")] == [{"x": 1.0}]
