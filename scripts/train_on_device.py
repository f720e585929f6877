"""Train one config on a lent GPU machine and leave its exit tables under $OUT (docs/training.md, "On a lent GPU").

The machine has PyTorch with CUDA but not exitspace's other needs, and cannot reach ../shared/data: carry
pydantic's wheels and the CIFAR-10 archive in an ignored folder (default .carry/), then run, in one call:

    python3 scripts/train_on_device.py configs/train/mobilenetv2_cifar10.yaml --pairs 32/32,8/8

It installs the carried wheels into /tmp/site (when .carry/whl has any), points ``data.path`` at the carried
archive, sets ``runtime.device: auto``, trains into runs/NAME (resuming what a warm machine kept) and writes
``train-export``'s results folder to $OUT/NAME (to ./device-out/NAME where $OUT is unset).
It trains only what the train path needs (no optuna): the same code as `exitspace train`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def install_carried_wheels(carry: Path) -> None:
    """pip-install the wheels in ``carry/whl`` into /tmp/site and put it (and the checkout) on the import path."""
    wheels = sorted((carry / "whl").glob("*.whl"))
    if wheels:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                        "--upgrade", "--target", "/tmp/site", *map(str, wheels)], check=True)
        sys.path.insert(0, "/tmp/site")
    sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--pairs", default=None, help="precision pairs, e.g. 32/32,8/8 (default: the config's)")
    parser.add_argument("--carry", type=Path, default=ROOT / ".carry", help="folder with whl/ and the data archive")
    parser.add_argument("--heads", default=None, help="keep only these head types in the exported tables")
    args = parser.parse_args()
    install_carried_wheels(args.carry)

    from exitspace.train.config import load_train_config
    from exitspace.train.pipeline import run_training
    from exitspace.train.results import export_results

    config = load_train_config(args.config)
    archive = args.carry / Path(config.data.path or "").name
    if config.data.path and archive.is_file():
        config.data.path = str(archive)
    config.runtime.device = "auto"
    run_dir = ROOT / "runs" / config.name
    pairs = [p.strip() for p in args.pairs.split(",")] if args.pairs else None
    run_training(config, run_dir, pairs=pairs)
    out = Path(os.environ.get("OUT") or ROOT / "device-out") / config.name
    heads = [h.strip() for h in args.heads.split(",")] if args.heads else None
    info = export_results(run_dir, out, heads)
    print(f"wrote {out}: {sorted(info['exit_table_bytes'])}")


if __name__ == "__main__":
    main()
