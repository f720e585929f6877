"""Do the early exits' heads train stably at a given learning rate? Head-only SGD on frozen features.

Why: on MobileNetV2-CIFAR the max-pooled block outputs that feed the pool4 heads are large (mean squared
norm up to ~9,000), and single-linear heads diverged at the float phase's full learning rate.
`optim.head_lr_scale` (and `optim.final_head_lr_scale` for the final exit's heads) lowers their rate;
this script measures which factor keeps every head stable.

It loads a float checkpoint, caches the backbone's block outputs for some training batches (eval-mode
BatchNorm, no gradient into the backbone, as with `head_grad_scale: 0`), re-initialises the early heads
(or, with --final, the final exit's) and trains them alone at ``lr * scale`` (SGD, Nesterov momentum 0.9,
the config's weight decay) for each scale. Reported: each pool4 head's input energy and its mean cross-entropy over the last 30 steps (chance is
ln 10 = 2.30; tens mean diverged). Writes benchmarks/results/head_lr_stability.json. From the repository root:

    python benchmarks/head_lr_stability.py --checkpoint runs/mobilenetv2_cifar10/float/checkpoint.pt
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from exitspace.data.registry import load_splits
from exitspace.train.checkpoint import load_checkpoint
from exitspace.train.config import load_train_config
from exitspace.train.pipeline import build_float_model, make_loaders, model_spec

ROOT = Path(__file__).resolve().parents[1]


def cached_features(model: Any, loader: Any, batches: int) -> list[tuple[list[torch.Tensor], torch.Tensor]]:
    """Every block's output for ``batches`` augmented training batches, backbone in eval mode."""
    model.eval()
    cache = []
    with torch.no_grad():
        for index, (x, y) in enumerate(loader.epoch(0)):
            if index == batches:
                break
            outputs, h = [], model.backbone.stem(x)
            for block in model.backbone.blocks:
                h = block(h)
                outputs.append(h)
            cache.append((outputs, y))
    return cache


def train_heads(model: Any, cache: list, probed: list[tuple[str, int]], lr: float, weight_decay: float,
                steps: int) -> list[float]:
    """Re-initialise and train the (key, block) heads alone; mean cross-entropy per head over the last 30 steps."""
    torch.manual_seed(1)
    heads = [model.head(key) for key, _ in probed]
    for module in (m for head in heads for m in head.modules()):
        if isinstance(module, torch.nn.Linear):
            module.reset_parameters()
    params = [p for head in heads for p in head.parameters()]
    optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    history = []
    for step in range(steps):
        features, labels = cache[step % len(cache)]
        logits = torch.stack([head(features[block]) for head, (_, block) in zip(heads, probed)], dim=1)
        per_head = F.cross_entropy(logits.transpose(1, 2), labels[:, None].expand(-1, len(heads)), reduction="none").mean(0)
        optimizer.zero_grad()
        per_head.sum().backward()
        optimizer.step()
        history.append(per_head.detach())
    return torch.stack(history[-30:]).mean(0).tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "train" / "mobilenetv2_cifar10.yaml")
    parser.add_argument("--checkpoint", type=Path, required=True, help="a float checkpoint of that config")
    parser.add_argument("--scales", default="1,0.1,0.05,0.02,0.01")
    parser.add_argument("--lr", type=float, default=None, help="base rate (default: the config's peak optim.lr)")
    parser.add_argument("--final", action="store_true", help="probe the final exit's heads instead of the early ones")
    parser.add_argument("--steps", type=int, default=240)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "head_lr_stability.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_train_config(args.config)
    splits = load_splits(config.data)
    model = build_float_model(config, model_spec(config, splits))
    model.load_state_dict(load_checkpoint(args.checkpoint)["model"])
    model.share_pooling = False
    cache = cached_features(model, make_loaders(config, splits)["train"], args.batches)
    last = max(model.head_blocks)
    probed = [(key, block) for key, block in zip(model.head_keys, model.head_blocks) if (block == last) == args.final]
    energy = {}
    with torch.no_grad():
        for key, block in probed:
            head = model.head(key)
            if hasattr(head, "pooled"):  # pool4 heads; a gap_fc head's input is not the max-pooled map
                energy[key] = float((head.pooled(cache[0][0][block]).flatten(1) ** 2).sum(1).mean())
    lr = args.lr if args.lr is not None else config.optim.lr
    results: dict[str, Any] = {"config": str(args.config), "checkpoint": str(args.checkpoint), "base_lr": lr,
                               "steps": args.steps, "batches": args.batches, "final": args.final, "input_energy": energy,
                               "cross_entropy": {}}
    for scale in (float(s) for s in args.scales.split(",")):
        losses = train_heads(model, cache, probed, lr * scale, config.optim.weight_decay, args.steps)
        results["cross_entropy"][str(scale)] = {key: loss for (key, _), loss in zip(probed, losses)}
        listed = ", ".join(f"{key} {loss:.2f}" for (key, _), loss in zip(probed, losses))
        print(f"scale {scale:g}: max CE {max(losses):.2f} ({listed})", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
