"""`exitspace run` end to end on the smoke training config, resume, and one-line CLI errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from exitspace.cli.main import app, register_commands

REPO = Path(__file__).resolve().parents[1]


def _write_config(tmp_path: Path, **extra: str) -> Path:
    path = tmp_path / "smoke_run.yaml"
    text = (
        "name: smoke_run\n"
        "exit_tables: {dir: null}\n"
        f"train: {{config: {REPO / 'configs/train/smoke.yaml'}}}\n"
        "search:\n"
        "  space: {precision_pairs: [[8, 8], [4, 8]], allocations: [round_robin, greedy]}\n"
        f"  trials: {extra.get('trials', '60')}\n"
        "  population: 12\n"
        "  constraints: {max_accuracy_drop: 0.1}\n"
        "  baselines: {mac_proxy_trials: 24}\n"
        "report: {designs: 2, sweep_layers: 1}\n"
    )
    path.write_text(text)
    return path


@pytest.mark.slow
def test_run_trains_searches_reports_and_resumes(tmp_path: Path) -> None:
    register_commands()
    config = _write_config(tmp_path)
    run_dir = tmp_path / "run"
    runner = CliRunner()
    first = runner.invoke(app, ["run", str(config), "--run-dir", str(run_dir), "--json"])
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout[first.stdout.index("{"):])
    assert summary["study"]["trials"] == 60 and summary["study"]["new_trials"] == 60
    for name in ("report/results.json", "report/report.md", "report/report.html", "report/figures/pareto.png",
                 "study.sqlite3", "cost_cache.sqlite3", "workload.json", "config.yaml"):
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "train" / "exit_tables").glob("*.npz"))
    again = runner.invoke(app, ["run", str(config), "--run-dir", str(run_dir), "--json", "--trials", "72"])
    assert again.exit_code == 0, again.output
    resumed = json.loads(again.stdout[again.stdout.index("{"):])
    assert resumed["study"]["new_trials"] == 12 and resumed["study"]["trials"] == 72


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    register_commands()
    bad = tmp_path / "bad.yaml"
    bad.write_text("search:\n  trails: 5\n")
    out = CliRunner().invoke(app, ["run", str(bad)])
    assert out.exit_code == 2
    assert "search.trails: unknown key" in out.output and len(out.output.strip().splitlines()) == 1
    out = CliRunner().invoke(app, ["run", str(bad), "--set", "novalue"])
    assert out.exit_code == 2 and "KEY=VALUE" in out.output


def test_search_without_tables_says_how(tmp_path: Path) -> None:
    register_commands()
    config = _write_config(tmp_path)
    out = CliRunner().invoke(app, ["search", str(config), "--run-dir", str(tmp_path / "r")])
    assert out.exit_code == 2 and "exit tables" in out.output and "exitspace run" in out.output


@pytest.mark.slow
def test_killed_search_resumes(tmp_path: Path) -> None:
    """SIGKILL mid-search: finished generations survive; the rerun completes the budget."""
    script = tmp_path / "search.py"
    script.write_text(
        "import sys, time\n"
        f"sys.path.insert(0, {str(REPO / 'tests')!r})\n"
        "from toys import ToyEvaluator\n"
        "from exitspace.config import parse_config\n"
        "from exitspace.search.space import DesignSpace\n"
        "from exitspace.search.engine import SearchProblem, run_search\n"
        "from exitspace.search.storage import trial_log_url\n"
        "class Slow(ToyEvaluator):\n"
        "    def evaluate(self, d):\n"
        "        time.sleep(float(sys.argv[2])); return super().evaluate(d)\n"
        "ev = Slow()\n"
        "space = DesignSpace.build(parse_config({}).search.space, ev.available())\n"
        "problem = SearchProblem(space, ev, ['accuracy', 'elp'], 'paper', [])\n"
        "out = run_search(problem, trials=60, population=10, seed=0, storage=trial_log_url(sys.argv[1]), study_name='k')\n"
        "print(len(out.trials), out.new_trials)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path), "0.02"], env=env)
    db = tmp_path / "study.sqlite3"
    deadline = time.time() + 60
    import sqlite3

    def stored() -> int:
        if not db.is_file():
            return 0
        try:
            con = sqlite3.connect(str(db))
            count = con.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
            con.close()
        except sqlite3.DatabaseError:
            return 0
        return int(count)

    while stored() < 20 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, "search finished before it could be killed; slow it down"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = subprocess.run([sys.executable, str(script), str(tmp_path), "0"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    total, new = map(int, done.stdout.split())
    assert total == 60 and 0 < new <= 40


def test_alignment_sweep_on_the_quad_core() -> None:
    from exitspace.cost.registry import get_backend
    from exitspace.hardware import load_system
    from exitspace.flow.run import system_alignment_sweep
    from exitspace.workload.layer import Layer, OpType, Workload

    layers = [
        Layer("big", OpType.CONV, K=40, C=32, OY=16, OX=16, FY=3, FX=3, block="b0"),
        Layer("dw", OpType.DEPTHWISE, K=24, C=24, OY=16, OX=16, FY=3, FX=3, groups=24, block="b1"),
        Layer("small", OpType.POINTWISE, K=8, C=8, OY=4, OX=4, block="b2"),
        Layer("head", OpType.FC, K=10, C=64, block="b2", exit="A:fc"),
    ]
    sweep = system_alignment_sweep(Workload("w", layers), load_system("edge_tpu_quad"), get_backend(), top=2, span=8)
    names = [entry["name"] for entry in sweep["layers"]]
    assert names == ["big", "dw"]  # most energy first; head layers are not swept
    big, dw = sweep["layers"]
    assert big["dim"] == "K" and dw["dim"] == "channels"
    assert big["values"] == list(range(32, 49)) and big["actual"] == 40
    assert all(e > 0 for e in big["energy_pj"]) and big["share"] > dw["share"] > 0
    per_mac = [c / m for c, m in zip(big["latency_cycles"], big["macs"])]
    assert any(b > a * 1.01 for a, b in zip(per_mac, per_mac[1:]))  # a step where K stops filling the array


def test_null_precision_pairs_take_every_quantized_table(tmp_path: Path) -> None:
    from toys import synthetic_table

    from exitspace.config import parse_config
    from exitspace.flow.phases import Phases
    from exitspace.flow.tables import obtain_tables

    for pair in ((32, 32), (8, 8), (4, 8)):
        synthetic_table(n=20, pair=pair).save(tmp_path / "tables" / f"t_{pair[0]}_{pair[1]}.npz")
    config = parse_config({"exit_tables": {"dir": str(tmp_path / "tables")},
                           "search": {"space": {"precision_pairs": None}}})
    tables, origin = obtain_tables(config, tmp_path / "run", Phases(), allow_train=False)
    assert sorted(tables) == [(4, 8), (8, 8)] and origin.startswith("exit_tables.dir")
    config = parse_config({"exit_tables": {"dir": str(tmp_path / "tables")},
                           "search": {"space": {"precision_pairs": [[8, 4]]}}})
    with pytest.raises(Exception, match=r"exit tables for \['8/4'\] not found"):
        obtain_tables(config, tmp_path / "run", Phases(), allow_train=False)
