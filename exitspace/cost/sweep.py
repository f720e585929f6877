"""Analytical design-space sweeps: vary one layer dimension and watch cost jump at array-size multiples.

The paper's second claim is that small architectural changes cause disproportionate hardware cost changes
through tensor-dimension alignment and dataflow. A sweep costs one template layer over a range of one
dimension (K, C, OX, OY, kernel size or bit width) on one core in a single vectorised call, and marks the
"steps": values where compute cycles jump although the work (MACs) grew only by one channel / row.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence, cast

from exitspace.cost.base import CostBackend, LayerCost
from exitspace.cost.cache import layer_key
from exitspace.errors import ConfigError
from exitspace.files import atomic_output, atomic_write_text
from exitspace.hardware.model import Core
from exitspace.workload.layer import Layer, OpType, Precision, Workload

SWEEP_DIMS = ("K", "C", "OX", "OY", "kernel", "bits")

TEMPLATES: dict[str, Layer] = {
    "conv": Layer("conv", OpType.CONV, K=32, C=32, OY=16, OX=16, FY=3, FX=3, padding=(1, 1)),
    "dw": Layer("dw", OpType.DEPTHWISE, K=32, C=32, OY=16, OX=16, FY=3, FX=3, groups=32, padding=(1, 1)),
    "pw": Layer("pw", OpType.POINTWISE, K=32, C=32, OY=16, OX=16),
    "fc": Layer("fc", OpType.FC, K=10, C=512),
}


def parse_range(text: str) -> list[int]:
    """``"24:40"`` (inclusive), ``"24:40:2"`` or ``"8,16,32"`` -> values; a one-line error otherwise."""
    try:
        if ":" in text:
            parts = [int(p) for p in text.split(":")]
            if len(parts) not in (2, 3):
                raise ValueError
            start, stop = parts[0], parts[1]
            step = parts[2] if len(parts) == 3 else 1
            if step < 1 or stop < start:
                raise ValueError
            values = list(range(start, stop + 1, step))
        else:
            values = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise ConfigError(f"--range: {text!r} is not START:STOP[:STEP] (inclusive, STOP >= START) or a comma list") from None
    if not values or min(values) < 1:
        raise ConfigError(f"--range: {text!r} must give positive integers")
    return values


def template_layer(name: str, sizes: dict[str, int] | None = None, bits: int = 8) -> Layer:
    """A template layer, optionally resized (``sizes`` keys K, C, OX, OY, FX, FY), at ``bits``."""
    if name not in TEMPLATES:
        raise ConfigError(f"--layer: unknown template {name!r}; use one of {sorted(TEMPLATES)}")
    layer = TEMPLATES[name].with_precision(Precision.uniform(bits))
    for key, value in (sizes or {}).items():
        layer = vary(layer, key, value)
    return layer


def vary(layer: Layer, dim: str, value: int) -> Layer:
    """``layer`` with one dimension set to ``value`` (depthwise keeps K = C = groups; kernel sets FX = FY)."""
    if dim not in SWEEP_DIMS and dim not in ("FX", "FY"):
        raise ConfigError(f"--dim: unknown dimension {dim!r}; use one of {list(SWEEP_DIMS)}")
    if value < 1:
        raise ConfigError(f"--dim {dim}: value {value} must be >= 1")
    name = f"{layer.name.split('@')[0]}@{dim}={value}"
    if dim == "bits":
        return replace(layer.with_precision(Precision.uniform(value)), name=name)
    if dim == "kernel":
        return replace(layer, FX=value, FY=value, padding=(value // 2, value // 2), name=name)
    # cast: mypy checks a **dict[str, int] against every field of Layer
    if dim in ("FX", "FY"):
        return replace(layer, **cast(dict[str, Any], {dim: value}), name=name)
    if layer.is_depthwise and dim in ("K", "C"):
        return replace(layer, K=value, C=value, groups=value, name=name)
    if layer.op == OpType.FC and dim in ("OX", "OY"):
        raise ConfigError(f"--dim {dim}: a fully connected layer has no spatial size; sweep K or C")
    return replace(layer, **cast(dict[str, Any], {dim: value}), name=name)


def sweep(
    backend: CostBackend, core: Core, layer: Layer, dim: str, values: Sequence[int]
) -> list[dict[str, Any]]:
    """One row per value: MACs, latency and its parts, energy, utilizations, per-MAC figures, step flag."""
    layers = [vary(layer, dim, v) for v in values]
    costs: list[LayerCost] = backend.evaluate(layers, core)
    rows: list[dict[str, Any]] = []
    previous: LayerCost | None = None
    for value, lay, cost in zip(values, layers, costs):
        macs = lay.macs
        rows.append(
            {
                dim: value,
                "macs": macs,
                "latency_cycles": cost.latency_cycles,
                "compute_cycles": cost.compute_cycles,
                "stall_cycles": cost.stall_cycles,
                "onload_cycles": cost.onload_cycles,
                "offload_cycles": cost.offload_cycles,
                "energy_pj": cost.energy_pj,
                "mac_energy_pj": cost.mac_energy_pj,
                "spatial_utilization": cost.spatial_utilization,
                "utilization": cost.utilization,
                "latency_per_mac": cost.latency_cycles / macs,
                "energy_per_mac_pj": cost.energy_pj / macs,
                # an alignment step: more compute cycles AND a lower share of busy MACs than the previous value
                "step": previous is not None and cost.compute_cycles > previous.compute_cycles * (1 + 1e-9)
                and cost.spatial_utilization < previous.spatial_utilization - 1e-9,
            }
        )
        previous = cost
    return rows


def alignment_sweep(workload: Workload, core: Core, backend: CostBackend, top: int, span: int = 12) -> dict[str, Any]:
    """Energy and latency of the ``top`` most energy-costly backbone MAC layer shapes (8-bit, on ``core``) as
    their output channels K (depthwise: channels) vary by up to ``span`` around the network's value."""
    layers = [layer.with_precision(Precision.uniform(8)) for layer in workload.backbone() if layer.op.is_mac]
    costs = backend.evaluate(layers, core)
    total = sum(c.energy_pj for c in costs)
    groups: dict[tuple[Any, ...], list[tuple[Layer, LayerCost]]] = {}
    for layer, cost in zip(layers, costs):  # layers of one shape behave alike: sweep one per shape
        groups.setdefault(layer_key(layer), []).append((layer, cost))
    ranked = sorted(groups.values(), key=lambda g: -sum(c.energy_pj for _, c in g))[:top]
    out = []
    for group in ranked:
        layer = group[0][0]
        values = list(range(max(1, layer.K - span), layer.K + span + 1))
        if not layer.is_depthwise:
            values = [v for v in values if v % layer.groups == 0]
        swept = [vary(layer, "K", v) for v in values]
        results = backend.evaluate(swept, core)
        out.append({
            "name": layer.name, "dim": "channels" if layer.is_depthwise else "K", "actual": layer.K, "values": values,
            "energy_pj": [r.energy_pj for r in results], "latency_cycles": [r.latency_cycles for r in results],
            "macs": [s.macs for s in swept], "share": sum(c.energy_pj for _, c in group) / total if total else 0.0,
            "same_shape": [other.name for other, _ in group[1:]],
            "spatial_utilization": [r.spatial_utilization for r in results],
        })
    array = core.operational_array.sizes
    unrolled = {d: "+".join(core.dataflow.get(d, ())) for d in array}
    dims = ", ".join(f"{d}={n} ({unrolled[d] or '-'})" for d, n in array.items())
    return {
        "core": core.name,
        "layers": out,
        "note": (f"The {len(out)} backbone layer shapes with the most energy at 8 bits on {core.name} (on-chip "
                 f"levels; layers of one shape counted together), swept over their output channels; steps show where "
                 f"the channel count stops filling the MAC array's unrolled dimensions ({dims})."),
    }


def steps(rows: Sequence[dict[str, Any]], dim: str) -> list[int]:
    """Values at which compute cycles jump while spatial utilization drops (the staircase positions)."""
    return [row[dim] for row in rows if row["step"]]


def write_outputs(rows: Sequence[dict[str, Any]], dim: str, meta: dict[str, Any], out: Path) -> dict[str, Path]:
    """CSV, JSON and a PNG plot (latency / MAC, energy / MAC, utilizations) under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    stem = f"sweep_{meta['layer']}_{dim}_{meta['core']}"
    paths = {"csv": out / f"{stem}.csv", "json": out / f"{stem}.json", "png": out / f"{stem}.png"}
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(paths["csv"], table.getvalue())
    payload = {"format": "exitspace.sweep", "version": 1, **meta, "dim": dim, "steps": steps(rows, dim), "rows": list(rows)}
    atomic_write_text(paths["json"], json.dumps(payload, indent=1))
    plot(rows, dim, meta, paths["png"])
    return paths


def plot(rows: Sequence[dict[str, Any]], dim: str, meta: dict[str, Any], path: Path) -> None:
    """Three panels over the swept dimension: latency per MAC, energy per MAC, utilization."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [row[dim] for row in rows]
    fig, axes = plt.subplots(3, 1, figsize=(7, 8), sharex=True)
    axes[0].step(xs, [r["latency_per_mac"] for r in rows], where="mid", marker="o", ms=3)
    axes[0].set_ylabel("latency / MAC (cycles)")
    axes[1].step(xs, [r["energy_per_mac_pj"] for r in rows], where="mid", marker="o", ms=3, color="tab:red")
    axes[1].set_ylabel("energy / MAC (pJ)")
    axes[2].step(xs, [r["spatial_utilization"] for r in rows], where="mid", marker="o", ms=3, label="spatial")
    axes[2].step(xs, [r["utilization"] for r in rows], where="mid", marker="s", ms=3, label="overall")
    axes[2].set_ylabel("MAC utilization")
    axes[2].set_ylim(0, 1.05)
    axes[2].legend()
    axes[2].set_xlabel(dim)
    for x in steps(rows, dim):
        for ax in axes:
            ax.axvline(x, color="grey", lw=0.6, ls=":")
    fig.suptitle(f"{meta['layer']} layer on {meta['core']} ({meta['backend']}): sweep of {dim}")
    fig.tight_layout()
    with atomic_output(path) as handle:
        fig.savefig(handle, format=Path(path).suffix.lstrip(".") or "png", dpi=110)
    plt.close(fig)
