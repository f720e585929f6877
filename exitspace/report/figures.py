"""Report figures (matplotlib, Agg backend): Pareto front, per-stage costs, hypervolume, alignment sweep."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
from exitspace.files import atomic_output

from exitspace.precision import pair_label  # noqa: E402
from exitspace.search.results import AlignmentSweepRecord, ResultsDocument, ScoredRecord  # noqa: E402

PAIR_COLOURS = {"FP32/FP32": "#7f7f7f", "8/8": "#1f77b4", "8/4": "#2ca02c", "4/8": "#d62728", "4/4": "#9467bd"}
DPI = 130


def _save(fig: plt.Figure, path: Path) -> Path:
    with atomic_output(path) as handle:
        fig.savefig(handle, format=path.suffix.lstrip(".") or "png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def pareto_figure(results: ResultsDocument, path: Path, split: str = "test") -> Path:
    """Accuracy vs ELP (relative to the static reference network), every trial in grey, baselines marked."""
    ref = results.static_reference_entry().split(split)
    fig, ax = plt.subplots(figsize=(8.2, 5.6))

    def elp_pct(elp: float) -> float:  # the x unit: % of the static reference's ELP
        return 100 * elp / ref["elp"]

    _plot_trials(ax, results, split, elp_pct)
    front: list[ScoredRecord] = sorted(results.pareto, key=lambda e: e.split(split)["elp"])
    marked = _plot_designs(ax, results, front, split, elp_pct)
    head = results.headline
    chosen = next((e for e in front if e.name == head.design), None)
    if chosen is not None:
        x, y = elp_pct(chosen.split(split)["elp"]), 100 * chosen.split(split)["accuracy"]
        ax.scatter([x], [y], s=220, facecolors="none", edgecolors="black", linewidths=1.5, zorder=7)
        ax.annotate(f"-{100 * (head.elp_reduction or 0.0):.0f}% ELP", (x, y), textcoords="offset points", xytext=(10, 12),
                    fontsize=9, weight="bold", zorder=8,
                    bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.85})
    ax.axhline(100 * (ref["accuracy"] - head.max_loss_points / 100), color="grey", lw=0.8, ls="--")
    ax.set_xlabel(f"ELP ({results.elp_definition} definition), % of static {results.static_reference} ({split})")
    ax.set_ylabel(f"top-1 accuracy, % ({split})")
    accs = ([100 * e.split(split)["accuracy"] for e in front]
            + [100 * s.split(split)["accuracy"] for s in results.static.values()])
    ax.set_ylim(max(0.0, min(accs) - 8), min(100.9, max(accs) + 1.5))
    _set_elp_axis(ax, results, split, elp_pct, marked)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right", framealpha=0.9)
    ax.set_title(f"{results.name}: accuracy vs energy-latency product")
    return _save(fig, path)


def _plot_trials(ax: Any, results: ResultsDocument, split: str, elp_pct: Callable[[float], float]) -> None:
    """Every trial as a grey dot, infeasible ones lighter."""
    cols = results.trials_columns
    acc_i, elp_i, feas_i = cols.index(f"{split}_accuracy"), cols.index(f"{split}_elp"), cols.index("feasible")
    rows = results.trials
    feas = [r for r in rows if r[feas_i]]
    infeas = [r for r in rows if not r[feas_i]]
    if infeas:
        ax.scatter([elp_pct(r[elp_i]) for r in infeas], [100 * r[acc_i] for r in infeas], s=5, c="#e0e0e0",
                   label="infeasible trials", zorder=1, rasterized=True)
    ax.scatter([elp_pct(r[elp_i]) for r in feas], [100 * r[acc_i] for r in feas], s=5, c="#b0b0b0",
               label="feasible trials", zorder=2, rasterized=True)


def _plot_designs(ax: Any, results: ResultsDocument, front: list[ScoredRecord], split: str,
                  elp_pct: Callable[[float], float]) -> list[float]:
    """The Pareto designs per precision pair, the MAC-proxy front, the static networks and the paper's
    designs; returns the x positions of everything marked (to fit the axis to)."""

    def xs(entries: list[ScoredRecord]) -> list[float]:
        return [elp_pct(e.split(split)["elp"]) for e in entries]

    def ys(entries: list[ScoredRecord]) -> list[float]:
        return [100 * e.split(split)["accuracy"] for e in entries]

    for pair in sorted({pair_label(e.design.precision) for e in front}):
        pts = [e for e in front if pair_label(e.design.precision) == pair]
        ax.scatter(xs(pts), ys(pts), s=28, c=PAIR_COLOURS.get(pair, "#17becf"), edgecolors="black", linewidths=0.4,
                   zorder=4, label=f"Pareto designs {pair}")
    mac_front = list(results.mac_proxy.front) if results.mac_proxy is not None else []
    if mac_front:
        ax.scatter(xs(mac_front), ys(mac_front), s=34, marker="x", c="#ff7f0e", zorder=5,
                   label="MAC-proxy search, re-costed")
    for name, static in results.static.items():
        ax.scatter(xs([static]), ys([static]), s=80, marker="s",
                   c=PAIR_COLOURS.get(name, "black"), edgecolors="black", linewidths=1.2, zorder=6)
        ax.annotate(f"static {name}", (xs([static])[0], ys([static])[0]),
                    textcoords="offset points", xytext=(6, -10), fontsize=8)
    paper = list(results.paper_designs)
    if paper:
        ax.scatter(xs(paper), ys(paper), s=60, marker="^", c="#8c564b", edgecolors="black", zorder=6,
                   label="paper's designs (8/8)")
    return xs(front) + xs(list(results.static.values())) + xs(paper + mac_front)


def _set_elp_axis(ax: Any, results: ResultsDocument, split: str, elp_pct: Callable[[float], float],
                  marked: list[float]) -> None:
    """Fit the ELP axis to the marked points (log scale over a wide range); count the trials cut off."""
    right = 1.15 * max(marked + [100.0])
    elp_i = results.trials_columns.index(f"{split}_elp")
    hidden = sum(1 for r in results.trials if elp_pct(r[elp_i]) > right)
    left = 0.8 * min(m for m in marked if m > 0)
    if right / left > 15:  # a wide range: log scale keeps the front readable
        ax.set_xscale("log")
        ax.set_xlim(left, right)
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    else:
        ax.set_xlim(0, right)
    if hidden:
        ax.text(0.01, 0.01, f"{hidden} trials beyond {right:.0f}% not shown", transform=ax.transAxes, ha="left",
                va="bottom", fontsize=7, color="grey")


def stage_cost_figure(designs: Sequence[ScoredRecord], path: Path) -> Path:
    """Per exit stage: energy (backbone segment and head) and latency, one row per design."""
    n = len(designs)
    fig, axes = plt.subplots(n, 2, figsize=(9.0, 1.9 * n + 0.6), squeeze=False)
    for row, design in enumerate(designs):
        stages = design.stages
        labels = [s["exit"] for s in stages]
        head = [s.get("head_energy_pj", 0.0) / 1e6 for s in stages]
        total = [s["energy_pj"] / 1e6 for s in stages]
        backbone = [t - h for t, h in zip(total, head)]
        ax_e, ax_l = axes[row]
        ax_e.bar(labels, backbone, color="#1f77b4", label="backbone segment")
        ax_e.bar(labels, head, bottom=backbone, color="#ff7f0e", label="exit head")
        ax_e.set_ylabel("energy (uJ)", fontsize=8)
        ax_l.bar(labels, [s["latency_cycles"] / 1e3 for s in stages], color="#2ca02c")
        ax_l.set_ylabel("latency (k cycles)", fontsize=8)
        ratios = design.exit_ratios.get("test", [])
        for ax in (ax_e, ax_l):
            ax.tick_params(labelsize=8)
            ax.grid(axis="y", alpha=0.3)
        if ratios:
            ax_l.set_xticks(range(len(labels)), [f"{lab}\n{100 * r:.0f}%" for lab, r in zip(labels, ratios)], fontsize=8)
            ax_e.set_xticks(range(len(labels)), [f"{lab}\n{100 * r:.0f}%" for lab, r in zip(labels, ratios)], fontsize=8)
        ax_e.set_title(design.name, fontsize=9, loc="left")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.suptitle("Per-stage cost (tick labels: exit and its test exit share)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.legend(handles, labels, loc="upper right", ncol=2, fontsize=7, frameon=False)
    return _save(fig, path)


def hypervolume_figure(results: ResultsDocument, path: Path) -> Path:
    """Hypervolume after each generation."""
    curve = results.hypervolume.curve
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.plot([c.trials for c in curve], [c.hypervolume for c in curve], marker=".", color="#1f77b4")
    ax.set_xlabel("trials (end of each generation)")
    ax.set_ylabel("hypervolume (validation)")
    ref = results.hypervolume.reference_point
    objs = results.objectives
    ax.set_title("reference point: " + ", ".join(f"{o}={ref[o]:g}" for o in objs), fontsize=9)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def alignment_figure(sweep: AlignmentSweepRecord, path: Path) -> Path:
    """Energy and latency per MAC of the most costly layers as one loop dimension is swept."""
    layers = sweep.layers
    fig, axes = plt.subplots(1, len(layers), figsize=(4.0 * len(layers), 3.4), squeeze=False)
    for ax, layer in zip(axes[0], layers):
        xs = layer.values
        e_per = [e / m for e, m in zip(layer.energy_pj, layer.macs)]
        l_per = [1e3 * c / m for c, m in zip(layer.latency_cycles, layer.macs)]
        ax.plot(xs, e_per, color="#1f77b4", marker=".", label="energy / MAC (pJ)")
        ax.set_xlabel(f"{layer.dim} of {layer.name}", fontsize=8)
        ax.set_ylabel("pJ per MAC", color="#1f77b4", fontsize=8)
        twin = ax.twinx()
        twin.plot(xs, l_per, color="#d62728", marker=".", label="cycles / 1000 MACs")
        twin.set_ylabel("cycles per 1000 MACs", color="#d62728", fontsize=8)
        ax.axvline(layer.actual, color="black", ls="--", lw=0.8)
        more = len(layer.same_shape)
        label = layer.name + (f" +{more} alike" if more else "")
        ax.set_title(f"{label} ({layer.share:.0%} of energy)", fontsize=9)
        ax.tick_params(labelsize=8)
        twin.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(f"Alignment sweep on {sweep.core or 'core'} (dashed: the network's value)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)
