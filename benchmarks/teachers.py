"""Distillation teachers' cost per training batch: eager vs ``torch.compile``d ``TeacherEnsemble``.

Why: with ``loss.teachers``, every training batch also runs each teacher's final exit; four ResNet-20
teachers took the KD run's epochs from 34 s to 62 s. ``runtime.compile`` now compiles the teachers too.
Writes benchmarks/results/teachers.json. Run from the repository root:

    nice -n 15 python benchmarks/teachers.py [--teachers 4] [--threads 1] [--repeats 7]

Teachers are freshly initialised networks cut to their final exit (as ``load_teachers`` cuts finished
runs; the weights do not change the cost). Images per second are medians of ``--repeats`` batches after
one warm-up batch; the compiled case's first batch (the compile) is timed on its own.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from exitspace.models import build_eenn  # noqa: E402
from exitspace.models.common import keep_depthwise_in_float  # noqa: E402
from exitspace.train.teachers import TeacherEnsemble  # noqa: E402


def _final_exits(backbone: str, heads: list[str], count: int) -> list[torch.nn.Module]:
    """``count`` networks of ``backbone`` cut to their final-exit heads, channels_last and with depthwise convs in
    float32 like ``load_teachers``' teachers."""
    models = []
    for seed in range(count):
        torch.manual_seed(seed)
        supernet = build_eenn(backbone=backbone, head_types=heads)
        keep_depthwise_in_float(supernet)
        final_exit = supernet.final_exit()
        models.append(final_exit.to(memory_format=torch.channels_last))  # type: ignore[call-overload]
    return models


def _rate(ensemble: TeacherEnsemble, x: torch.Tensor, repeats: int) -> tuple[float, list[float]]:
    """Median images per second over ``repeats`` batches, and every batch's rate."""
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        ensemble(x)
        rates.append(x.shape[0] / (time.perf_counter() - started))
    return statistics.median(rates), rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet20")
    parser.add_argument("--heads", default="pool4_fc1,pool4_fc2,gap_fc")
    parser.add_argument("--teachers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "teachers.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = _final_exits(args.backbone, args.heads.split(","), args.teachers)
    x = torch.randn(args.batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    load_before = os.getloadavg()
    eager = TeacherEnsemble(models, 3.0)
    reference = eager(x)  # warm-up
    eager_rate, eager_runs = _rate(eager, x, args.repeats)
    started = time.perf_counter()
    compiled = TeacherEnsemble(models, 3.0, compile=True, log=print)
    first = compiled(x)
    compile_s = time.perf_counter() - started
    compiled_rate, compiled_runs = _rate(compiled, x, args.repeats)
    report = {
        "benchmark": "distillation teachers per batch (images/s), medians",
        "command": "python benchmarks/teachers.py " + " ".join(sys.argv[1:]),
        "backbone": args.backbone, "head_types": args.heads.split(","), "teachers": args.teachers,
        "batch": args.batch, "repeats": args.repeats, "threads": args.threads, "bf16_autocast": True,
        "torch": torch.__version__, "cpu_count": os.cpu_count(),
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "eager_images_per_s": eager_rate, "eager_runs": eager_runs,
        "compiled_images_per_s": compiled_rate, "compiled_runs": compiled_runs,
        "compile_first_batch_s": compile_s,
        "compiled_speedup": compiled_rate / eager_rate,
        "max_abs_difference_of_soft_labels": float((first - reference).abs().max()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(json.dumps({k: report[k] for k in ("eager_images_per_s", "compiled_images_per_s", "compiled_speedup",
                                              "compile_first_batch_s", "max_abs_difference_of_soft_labels")}, indent=1))


if __name__ == "__main__":
    main()
