"""Depthwise conv forward+backward time on CPU: bf16 autocast vs float32, channels_last vs contiguous.

Why: MobileNetV2-CIFAR's 7x7 depthwise layers dominate its training step on CPU. Writes
benchmarks/results/depthwise_precision.json. Run from the repository root:

    nice -n 15 python benchmarks/depthwise_precision.py [--threads 1] [--repeats 5]

Shapes are the paper backbone's largest depthwise layers at batch 32; milliseconds are medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
LAYERS = [  # (channels, input size, kernel, stride)
    (960, 8, 7, 1), (576, 16, 7, 2), (576, 16, 7, 1), (384, 16, 7, 1), (192, 32, 3, 2), (144, 32, 3, 1),
]


def step_ms(channels: int, size: int, kernel: int, stride: int, bf16: bool, channels_last: bool, repeats: int) -> float:
    """Median ms of one forward+backward of a depthwise conv on a [32, C, H, W] input."""
    conv = torch.nn.Conv2d(channels, channels, kernel, stride, kernel // 2, groups=channels, bias=False)
    x = torch.randn(32, channels, size, size)
    if channels_last:
        x, conv = x.contiguous(memory_format=torch.channels_last), conv.to(memory_format=torch.channels_last)
    x.requires_grad_()

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y = conv(x)
        y.float().sum().backward()

    step()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "depthwise_precision.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    rows = []
    for channels, size, kernel, stride in LAYERS:
        row = {"channels": channels, "size": size, "kernel": kernel, "stride": stride}
        for name, bf16, cl in (("bf16_cl", True, True), ("bf16", True, False), ("fp32_cl", False, True), ("fp32", False, False)):
            row[f"{name}_ms"] = step_ms(channels, size, kernel, stride, bf16, cl, args.repeats)
        row["bf16_cl_over_fp32_cl"] = row["bf16_cl_ms"] / row["fp32_cl_ms"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    report = {"benchmark": "depthwise conv fwd+bwd, batch 32, median ms", "threads": args.threads,
              "repeats": args.repeats, "torch": torch.__version__, "load_average_before": load_before,
              "load_average_after": os.getloadavg(), "layers": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
