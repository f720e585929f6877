"""Test fixtures for the search and report: a synthetic exit table and a small evaluator on it.

The evaluator scores exit subsets exactly from the table's logits (max-softmax, first exit whose confidence
reaches its threshold) and costs stages with a simple linear model; it stands in for the mapping and
dynamic stages so the search and the report can be tested fast and in isolation.
"""

from __future__ import annotations

import numpy as np

from exitspace.search.scored import ScoredDesign
from exitspace.search.space import Available, Design
from exitspace.train.exit_table import ExitTable

LABELS = ("A", "B", "C", "D", "K")
HEADS = ("fc1", "fc2")
PAIRS = ((8, 8), (8, 4), (4, 8), (4, 4))


def synthetic_table(n: int = 400, classes: int = 10, seed: int = 0, pair: tuple[int, int] = (8, 8),
                    labels: tuple[str, ...] = LABELS) -> ExitTable:
    """Logits whose quality grows with depth (deeper heads more accurate), per split."""
    rng = np.random.default_rng(seed)
    names = labels
    keys = [f"{label}:{head}" for label in names for head in HEADS]
    logits, labels = {}, {}
    for split in ("val", "test"):
        y = rng.integers(0, classes, n)
        difficulty = rng.random(n)
        z = rng.normal(0, 1, (n, len(keys), classes)).astype(np.float32)
        for h, key in enumerate(keys):
            depth = names.index(key[0]) + 1
            strength = 1.0 + depth * 0.9 * 4 / len(names) + (0.3 if key.endswith("fc2") else 0.0) - (4 - min(pair)) * 0.1
            z[np.arange(n), h, y] += strength * (1.2 - difficulty)
        logits[split], labels[split] = z, y
    return ExitTable(keys, list(range(len(keys))), logits, labels, {"precision_pair": list(pair)})


class ToyEvaluator:
    """Exact exit ratios from synthetic tables; linear stage costs; counts its calls."""

    def __init__(self, pairs: tuple[tuple[int, int], ...] = PAIRS, n: int = 400, labels: tuple[str, ...] = LABELS) -> None:
        self.labels = labels
        self.tables = {pair: synthetic_table(n=n, pair=pair, seed=i, labels=labels) for i, pair in enumerate(pairs)}
        self.calls = 0
        self.conf: dict[tuple[int, int], dict[str, np.ndarray]] = {}
        self.correct: dict[tuple[int, int], dict[str, np.ndarray]] = {}
        for pair, table in self.tables.items():
            self.conf[pair], self.correct[pair] = {}, {}
            for split, z in table.logits.items():
                e = np.exp(z - z.max(axis=2, keepdims=True))
                p = e / e.sum(axis=2, keepdims=True)
                self.conf[pair][split] = p.max(axis=2)
                self.correct[pair][split] = p.argmax(axis=2) == table.labels[split][:, None]

    def available(self) -> Available:
        table = next(iter(self.tables.values()))
        return Available.from_head_keys(table.head_keys, list(self.tables), ["greedy", "ga"])

    def evaluate(self, design: Design) -> ScoredDesign:
        self.calls += 1
        table = self.tables[design.precision]
        cols = [table.head_index(k) for k in design.head_keys]
        scale = (design.precision[0] / 8) ** 0.5
        head_scale = (design.precision[1] / 8) ** 0.5
        stage_e, stage_l, stage_macs, head_e = [], [], [], []
        prev = 0
        for label, key in zip(design.labels, design.head_keys):
            depth = self.labels.index(label) + 1
            seg = depth - prev
            prev = depth
            he = (2.0 if key.endswith("fc2") else 1.0) * head_scale
            stage_e.append(10.0 * seg * scale + he)
            stage_l.append((8.0 * seg + (1.0 if design.policy == "wait" else 0.2)) * (0.9 if design.allocation == "ga" else 1.0))
            stage_macs.append(100.0 * seg + 5)
            head_e.append(he)
        cum_e, cum_l, cum_m = np.cumsum(stage_e), np.cumsum(stage_l), np.cumsum(stage_macs)
        out: dict[str, dict[str, float]] = {}
        ratios: dict[str, list[float]] = {}
        accs: dict[str, list[float]] = {}
        for split in ("val", "test"):
            conf = self.conf[design.precision][split][:, cols]
            corr = self.correct[design.precision][split][:, cols]
            n = conf.shape[0]
            leave = np.full(n, len(cols) - 1)
            for i in range(len(cols) - 2, -1, -1):
                leave = np.where(conf[:, i] >= design.thresholds[i], i, leave)
            r = np.bincount(leave, minlength=len(cols)) / n
            ok = corr[np.arange(n), leave]
            acc_i = [float(ok[leave == i].mean()) if (leave == i).any() else 0.0 for i in range(len(cols))]
            lat = cum_l[leave]
            e_avg = float(r @ cum_e)
            head_avg = float(sum(r[i] * sum(head_e[: i + 1]) for i in range(len(cols))))
            out[split] = {
                "accuracy": float(ok.mean()),
                "elp": float(r @ (cum_e * cum_l)),
                "elp_product": e_avg * float(r @ cum_l),
                "e_avg": e_avg,
                "l_avg": float(r @ cum_l),
                "exit_overhead": head_avg / e_avg,
                "p50_latency": float(np.percentile(lat, 50)),
                "p95_latency": float(np.percentile(lat, 95)),
                "p99_latency": float(np.percentile(lat, 99)),
                "early_exit_share": float(1 - r[-1]),
                "macs_avg": float(r @ cum_m),
            }
            ratios[split], accs[split] = [float(x) for x in r], acc_i
        stages = [
            {"exit": label, "energy_pj": float(e), "latency_cycles": float(l), "cum_energy_pj": float(ce),
             "cum_latency_cycles": float(cl), "head_energy_pj": float(h)}
            for label, e, l, ce, cl, h in zip(design.labels, stage_e, stage_l, cum_e, cum_l, head_e)
        ]
        return ScoredDesign(design, out["val"], out["test"], ratios, accs, stages, memory_fit=True)
