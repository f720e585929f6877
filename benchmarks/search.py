"""Cost of the command users run: ``exitspace search CONFIG --trials N`` in a fresh run directory, then again.

    python benchmarks/search.py [--config configs/resnet20_cifar10.yaml] [--trials 1000 10000] [--out FILE]

For every ``--trials`` N, the real command runs as a subprocess (``--no-report``: figures are not the search)
in a new temporary run directory, and then once more on that finished run directory (nothing new to do).
For each run the child's own resource usage (``os.wait4``) gives CPU seconds (user + system) and peak RSS;
the results document gives the front's hypervolume on the test split and the MAC-proxy front's. Writes JSON
(default benchmarks/results/search.json); machines are noisy, so compare CPU seconds, not wall clock.
Goals (issue 24): 10,000 trials <= 60 CPU s, peak RSS at 16,000 trials <= 600 MiB, a re-run < 10% of the first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "search.json"


def exitspace_command() -> list[str]:
    """The installed ``exitspace`` next to this interpreter, else the package run as a module."""
    script = Path(sys.executable).with_name("exitspace")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "exitspace.cli.main"]


def run_measured(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run one command; its own CPU seconds, peak RSS (MiB) and wall seconds (``os.wait4``), and its stdout."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        child = subprocess.Popen(args, env=env, cwd=ROOT, stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if child.returncode != 0:
            raise SystemExit(f"{' '.join(args)} failed ({child.returncode}): {err.read().decode()[-2000:]}")
        return {"cpu_s": usage.ru_utime + usage.ru_stime, "wall_s": wall, "peak_rss_mib": usage.ru_maxrss / 1024,
                "stdout": out.read().decode()}


def measure(config: str, trials: int, extra: list[str], env: dict[str, str]) -> dict[str, Any]:
    """First run and re-run of ``trials`` trials in a fresh run directory."""
    run_dir = Path(tempfile.mkdtemp(prefix="exitspace-bench-"))
    try:
        args = [*exitspace_command(), "search", config, "--trials", str(trials), "--run-dir", str(run_dir),
                "--no-report", "--json", *extra]
        first = run_measured(args, env)
        results = json.loads((run_dir / "report" / "results.json").read_text())
        again = run_measured(args, env)
        mac = results.get("mac_proxy") or {}
        return {
            "trials": trials,
            "cpu_s": first["cpu_s"],
            "wall_s": first["wall_s"],
            "peak_rss_mib": first["peak_rss_mib"],
            "front_hypervolume_test": results["hypervolume"]["front_test"],
            "mac_proxy_hypervolume_test": mac.get("hypervolume_test"),
            "pareto_designs": len(results["pareto"]),
            "feasible_trials": results["study"]["feasible"],
            "study_seconds": results["study"]["seconds"],
            "rerun_cpu_s": again["cpu_s"],
            "rerun_wall_s": again["wall_s"],
            "rerun_peak_rss_mib": again["peak_rss_mib"],
            "rerun_share": again["cpu_s"] / first["cpu_s"],
        }
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/resnet20_cifar10.yaml")
    parser.add_argument("--trials", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="passed on as --set KEY=VALUE")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    extra = [item for value in args.overrides for item in ("--set", value)]
    runs = [measure(args.config, n, extra, env) for n in args.trials]
    for run in runs:
        print(f"{run['trials']:>6} trials: {run['cpu_s']:6.1f} CPU s, peak RSS {run['peak_rss_mib']:5.0f} MiB, "
              f"front HV (test) {run['front_hypervolume_test']:.4f}; re-run {run['rerun_cpu_s']:.1f} CPU s "
              f"({100 * run['rerun_share']:.0f}%)")
    result = {
        "benchmark": "search",
        "command": f"exitspace search {args.config} --trials N --run-dir <fresh> --no-report --json {' '.join(extra)}".strip(),
        "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count()},
        "goals": {"cpu_s_at_10000": 60.0, "peak_rss_mib_at_16000": 600.0, "rerun_share": 0.10},
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
