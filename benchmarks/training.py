"""Benchmark of the training step: EENN framework step vs a plain PyTorch loop, and QAT vs float.

Writes benchmarks/results/training.json. Run from the repository root (ideally on an idle machine):

    nice -n 15 python benchmarks/training.py [--backbone resnet20] [--repeats 5] [--steps 4] [--threads 1]

All in one process, on random 32x32 batches (data loading excluded), medians of ``--repeats`` runs of
``--steps`` steps each, after warm-up:
- ``eenn_framework``: exitspace's ``train_step`` (joint weighted loss + distillation) on the EENN
  with every head (the config's head types at every candidate point and at the final exit);
- ``eenn_plain_loop``: a hand-written loop (forward, summed cross-entropy, backward, SGD) on the same EENN;
  framework overhead = this / the framework's step;
- ``backbone_plain_loop``: the same backbone with only the final head (``build_plain``): what the heads cost;
- ``qat_8_8`` / ``qat_4_4``: the framework step on the fake-quantized EENN;
- ``eenn_framework_fp32``: the framework step without bf16 autocast (what autocast buys);
- ``*_compiled``: the same steps on ``torch.compile``d models (``runtime.compile``; ``qat_8_8_compiled``:
  ``runtime.compile_qat``; first-step compile seconds recorded; skip with ``--no-compile``).
``--cases a,b`` runs only those cases (ratios whose cases did not run are left out).
Ratios are of images per second within this run. The load average is recorded: other jobs skew figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from exitspace.models import build_eenn, build_plain  # noqa: E402
from exitspace.models.common import keep_depthwise_in_float  # noqa: E402
from exitspace.train.losses import head_loss_weights  # noqa: E402
from exitspace.train.quant import quantize_model  # noqa: E402
from exitspace.train.trainer import PhaseSettings, train_step  # noqa: E402


def _measure(step: Callable[[], None], steps: int, repeats: int, batch: int) -> dict[str, Any]:
    for _ in range(2):
        step()
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(steps):
            step()
        rates.append(steps * batch / (time.perf_counter() - started))
    return {"images_per_s_median": statistics.median(rates), "images_per_s_runs": rates}


RATIOS = {  # name: (numerator case, denominator case), images per second
    "framework_vs_plain_loop_same_eenn": ("eenn_framework", "eenn_plain_loop"),
    "eenn_framework_vs_backbone_plain_loop": ("eenn_framework", "backbone_plain_loop"),
    "eenn_unshared_pooling_vs_backbone_plain_loop": ("eenn_framework_unshared_pooling", "backbone_plain_loop"),
    "qat_8_8_vs_float": ("qat_8_8", "eenn_framework"),
    "qat_4_4_vs_float": ("qat_4_4", "eenn_framework"),
    "bf16_autocast_speedup": ("eenn_framework", "eenn_framework_fp32"),
    "compile_speedup_eenn": ("eenn_framework_compiled", "eenn_framework"),
    "eenn_compiled_vs_backbone_plain_loop": ("eenn_framework_compiled", "backbone_plain_loop"),
    "eenn_compiled_vs_backbone_plain_loop_compiled": ("eenn_framework_compiled", "backbone_plain_loop_compiled"),
    "compile_speedup_qat_8_8": ("qat_8_8_compiled", "qat_8_8"),
}


def _ratios(rate: dict[str, float]) -> dict[str, float]:
    """The ratios of ``RATIOS`` whose two cases both ran."""
    return {name: rate[top] / rate[bottom] for name, (top, bottom) in RATIOS.items() if top in rate and bottom in rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet20")
    parser.add_argument("--heads", default="pool4_fc1,pool4_fc2,gap_fc")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-bf16", action="store_true")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile cases")
    parser.add_argument("--cases", default=None, help="comma-separated subset of the cases (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "training.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bf16 = not args.no_bf16
    heads = args.heads.split(",")
    x = torch.randn(args.batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (args.batch,))

    def eenn(pair: tuple[int, int] | None = None, share_pooling: bool = True) -> torch.nn.Module:
        torch.manual_seed(0)
        model = build_eenn(backbone=args.backbone, head_types=heads)
        model.share_pooling = share_pooling  # as `exitspace train` runs it
        keep_depthwise_in_float(model)  # likewise (no-op without depthwise convs)
        if pair is not None:
            quantize_model(model, pair)
        return model.to(memory_format=torch.channels_last).train()

    def framework_step(model: torch.nn.Module, use_bf16: bool | None = None, compiled: bool = False) -> Callable[[], None]:
        step_model = torch.compile(model) if compiled else model
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
        last = max(model.head_blocks)
        settings = PhaseSettings(
            epochs=1, make_optimizer=lambda m: optimizer, make_scheduler=lambda o, t: scheduler,
            weights=head_loss_weights(model.head_blocks, "increasing"),
            final_mask=torch.tensor([b == last for b in model.head_blocks]), distill_weight=0.5,
            bf16=bf16 if use_bf16 is None else use_bf16,
        )
        return lambda: (train_step(step_model, optimizer, scheduler, x, y, settings), None)[1]

    def plain_step(model: torch.nn.Module, compiled: bool = False) -> Callable[[], None]:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
        step_model = torch.compile(model) if compiled else model

        def step() -> None:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = step_model(x)
            out = out.float()
            loss = F.cross_entropy(out.transpose(1, 2), y[:, None].expand(-1, out.shape[1])) if out.dim() == 3 \
                else F.cross_entropy(out, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        return step

    torch.manual_seed(0)
    plain_model = build_plain({"backbone": args.backbone, "head_types": heads}).to(memory_format=torch.channels_last).train()
    keep_depthwise_in_float(plain_model)  # the same numerics as the EENN cases: compare what the heads cost
    load_before = os.getloadavg()
    cases = {
        "eenn_framework": framework_step(eenn()),
        "eenn_framework_unshared_pooling": framework_step(eenn(share_pooling=False)),
        "eenn_plain_loop": plain_step(eenn()),
        "backbone_plain_loop": plain_step(plain_model),
        "qat_8_8": framework_step(eenn((8, 8))),
        "qat_4_4": framework_step(eenn((4, 4))),
        "eenn_framework_fp32": framework_step(eenn(), use_bf16=False),
    }
    if not args.no_compile:
        cases["eenn_framework_compiled"] = framework_step(eenn(), compiled=True)
        cases["backbone_plain_loop_compiled"] = plain_step(plain_model, compiled=True)  # same weights, compiled
        cases["qat_8_8_compiled"] = framework_step(eenn((8, 8)), compiled=True)
    if args.cases:
        chosen = args.cases.split(",")
        unknown = sorted(set(chosen) - set(cases))
        if unknown:
            parser.error(f"--cases: unknown {unknown}; choose from {sorted(cases)}")
        cases = {name: cases[name] for name in chosen}
    results = {}
    for name, step in cases.items():
        started = time.perf_counter()
        step()  # compiles, for the compiled cases
        first_step_s = time.perf_counter() - started
        results[name] = {**_measure(step, args.steps, args.repeats, args.batch), "first_step_s": first_step_s}
        print(f"{name}: {results[name]['images_per_s_median']:.0f} img/s", flush=True)
    rate = {k: v["images_per_s_median"] for k, v in results.items()}
    report = {
        "benchmark": "training step throughput (images/s), medians",
        "command": "python benchmarks/training.py " + " ".join(sys.argv[1:]),
        "backbone": args.backbone, "head_types": heads, "num_heads": len(eenn().head_keys), "batch": args.batch,
        "steps_per_run": args.steps, "repeats": args.repeats, "threads": args.threads, "bf16_autocast": bf16,
        "channels_last": True, "torch": torch.__version__, "cpu_count": os.cpu_count(), "machine": platform.machine(),
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "results": results,
        "ratios": _ratios(rate),
        "target": "issue 3: EENN framework step within 10% of a plain loop on the backbone without heads "
                  "(eenn_framework_vs_backbone_plain_loop >= 0.9)",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report["ratios"], indent=1))


if __name__ == "__main__":
    main()
