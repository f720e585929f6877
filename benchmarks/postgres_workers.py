"""Throughput of `exitspace search` workers on one PostgreSQL study: 1 worker, then 2 at once, same budget.

    source scripts/postgres_server.sh      # or export EXITSPACE_POSTGRES_DSN=postgresql://user@host/db
    python benchmarks/postgres_workers.py [--config configs/resnet20_cifar10.yaml] [--trials 200] [--out FILE]

Each run is the real command (``--no-report``, MAC-proxy study off: the main study's throughput) on a new study
in a fresh run directory per worker; throughput = trials / wall seconds from the first worker's start to the
last one's end. Writes JSON (default benchmarks/results/postgres_workers.json) with both throughputs, their
ratio (goal >= 1.7 on 2 cores) and each worker's CPU seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "postgres_workers.json"


def run_workers(config: str, trials: int, count: int, dsn: str) -> dict[str, Any]:
    """``count`` workers at once on a new study; wall seconds, throughput and each worker's CPU seconds."""
    study = f"bench-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        args = [sys.executable, "-m", "exitspace.cli.main", "search", config, "--trials", str(trials), "--no-report",
                "--set", f"search.storage={dsn}", "--set", f"search.study_name={study}",
                "--set", "search.baselines.mac_proxy=false"]
        start = time.perf_counter()
        procs = [subprocess.Popen([*args, "--run-dir", str(Path(tmp) / f"w{i}")], env=env, cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for i in range(count)]
        cpu = []
        for proc in procs:
            _, status, usage = os.wait4(proc.pid, 0)
            if os.waitstatus_to_exitcode(status) != 0:
                raise SystemExit(f"worker failed: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
            cpu.append(usage.ru_utime + usage.ru_stime)
        wall = time.perf_counter() - start
        documents = [json.loads((Path(tmp) / f"w{i}" / "report" / "results.json").read_text()) for i in range(count)]
    return {"workers": count, "trials": trials, "wall_s": wall, "trials_per_s": trials / wall, "worker_cpu_s": cpu,
            "worker_new_trials": [d["study"]["new_trials"] for d in documents],
            "front_hypervolume_test": documents[0]["hypervolume"]["front_test"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/resnet20_cifar10.yaml")
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    dsn = os.environ.get("EXITSPACE_POSTGRES_DSN")
    if not dsn:
        raise SystemExit("set EXITSPACE_POSTGRES_DSN (source scripts/postgres_server.sh starts a server)")
    one = run_workers(args.config, args.trials, 1, dsn)
    two = run_workers(args.config, args.trials, 2, dsn)
    result = {
        "benchmark": "postgres_workers", "config": args.config, "storage": "PostgreSQL (scripts/postgres_server.sh)",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load_1min": os.getloadavg()[0]},
        "one_worker": one, "two_workers": two, "speedup": two["trials_per_s"] / one["trials_per_s"], "goal": 1.7,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("speedup", "goal")} | {"trials_per_s": [one["trials_per_s"],
                                                                                   two["trials_per_s"]]}))


if __name__ == "__main__":
    main()
