"""The analytical cost backend against ZigZag golden results (tests/goldens; no ZigZag needed).

Targets per golden file (one core, one layer set, one bit width), see docs/zigzag-agreement.md:
compute cycles and spatial utilization equal per layer; latency and energy within 10% mean and 20% max relative
error; in the K / C / OX sweeps, the latency staircase steps at the same positions.

Script mode prints the agreement table and writes benchmarks/results/agreement.json:

    python -m tests.test_cost_vs_zigzag [--goldens DIR] [--out FILE]
"""

from __future__ import annotations

import json
import statistics
import sys
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

from exitspace.cost.base import CostBackend, LayerCost
from exitspace.hardware.model import Core
from exitspace.workload.layer import Layer

ROOT = Path(__file__).resolve().parents[1]
GOLDEN_DIR = Path(__file__).resolve().parent / "goldens"
RESULTS = ROOT / "benchmarks" / "results" / "agreement.json"
SWEEPS = ("k_sweep", "c_sweep", "ox_sweep")
MEAN_LIMIT = 0.10
MAX_LIMIT = 0.20
STEP_THRESHOLD = 0.05  # a sweep point is a step when latency rises more than 5% over the previous point

# (golden file stem, check) -> measured gap; each entry needs a line in docs/zigzag-agreement.md and the notes.
KNOWN_GAPS: dict[tuple[str, str], str] = {
    ("edge_tpu_like_heldout_4b", "energy"): (
        "measured: energy max 32.9% at r8_pw (mean 1.5%): the analytical mapping keeps partial sums in the 2 MB SRAM "
        "where ZigZag's equal-latency mapping keeps them in the output register"
    ),
    ("edge_tpu_like_zigzag_heldout_4b", "energy"): (
        "measured: energy max 32.9% at r8_pw (mean 1.4%), the same partial-sum placement as on edge_tpu_like"
    ),
    # eyeriss_like (ZigZag's bundled 14x12 core), measured 2026-11-23 22:35 with the analytical backend of that time
    ("eyeriss_like_random_4b", "cycles"): "measured: 37/40 equal; ZigZag's float T=ceil(L/(L/ceil(L/U))) adds a pass",
    ("eyeriss_like_random_4b", "spatial"): "measured: 37/40 equal (same float artefact as the cycles)",
    ("eyeriss_like_random_4b", "energy"): "measured: energy mean 5.6%, max 28.2% at r6_conv",
    ("eyeriss_like_random_8b", "cycles"): "measured: 37/40 equal; ZigZag's float T=ceil(L/(L/ceil(L/U))) adds a pass",
    ("eyeriss_like_random_8b", "spatial"): "measured: 37/40 equal (same float artefact as the cycles)",
    ("eyeriss_like_random_8b", "latency"): "measured: latency mean 23.3%, max 285% at r27_conv (stall overestimated)",
    ("eyeriss_like_random_8b", "energy"): "measured: energy mean 3.7%, max 23.2% at r37_conv",
    ("eyeriss_like_mobilenetv2_8b", "latency"): "measured: latency mean 1.7%, max 24.2% at b11.project.0 (stall)",
    # issue 22's held-out set on ZigZag's other bundled cores (each read with its bundled mapping file), measured
    # 2026-12-08 00:10 with the analytical backend of that time: found misses, not yet fixed
    ("ascend_like_random22_8b", "energy"): (
        "measured: energy mean 167.7%, max 286.5% at r31_pw: ascend_like's DRAM serves D1, D2 only, and the "
        "analytical model counts its accesses once per replicated instance (4x on r0_conv) where ZigZag counts them once"
    ),
    ("meta_prototype_random22_8b", "energy"): "measured: energy mean 5.6%, max 84.6% (one layer)",
    ("eyeriss_like_depthwise_literal_8b", "energy"): "measured: energy mean 3.6%, max 39.2% at r67_dw (latency agrees)",
    # tesla_npu_like (core name npu_like): 7 layers' compute cycles differ; cause not analysed yet
    ("npu_like_random22_8b", "cycles"): "measured: 33/40 equal",
    ("npu_like_random22_8b", "spatial"): "measured: 33/40 equal",
    ("npu_like_random22_8b", "latency"): "measured: latency mean 1.2%, max 20.9%",
    ("npu_like_random22_8b", "energy"): "measured: energy mean 3.9%, max 25.4%",
}


def golden_files(directory: Path = GOLDEN_DIR) -> list[Path]:
    """Complete golden files (the generator marks a file complete once its last layer is in)."""
    return sorted(path for path in directory.glob("*.json") if load_golden(path).get("complete"))


@lru_cache(maxsize=None)
def load_golden(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def analytical_backend() -> CostBackend | None:
    """The analytical backend, through the registry when there is one; None while it does not exist."""
    try:
        from exitspace.cost.registry import get_backend  # type: ignore[import-not-found]

        return get_backend("analytical")
    except ImportError:
        pass
    try:
        from exitspace.cost.analytical import AnalyticalBackend  # type: ignore[import-not-found]

        return AnalyticalBackend()
    except ImportError:
        return None


def _backend_for(golden: dict[str, Any]) -> CostBackend | None:
    """The analytical backend in the variant the golden's ZigZag run used: ``+literal`` goldens mapped depthwise
    layers with the dataflow as written (ZigZag's default), so the analytical model does too."""
    if "+literal" in str(golden.get("backend_version", "")):
        from exitspace.cost.analytical import AnalyticalBackend
        from exitspace.cost.analytical.layers import ModelOptions

        return AnalyticalBackend(ModelOptions(depthwise_on_g=False))
    return analytical_backend()


def relative_error(ours: float, reference: float) -> float:
    if reference == 0:
        return 0.0 if ours == 0 else float("inf")
    return abs(ours - reference) / abs(reference)


def step_positions(values: list[float], threshold: float = STEP_THRESHOLD) -> list[int]:
    """Indices where a sweep's value rises by more than ``threshold`` over the previous point."""
    return [i for i in range(1, len(values)) if values[i] > values[i - 1] * (1 + threshold)]


@dataclass
class Agreement:
    """How one golden file compares."""

    file: str
    core: str
    layer_set: str
    bits: int
    layers: int
    cycles_equal: int
    spatial_equal: int
    latency_mean: float
    latency_max: float
    latency_worst: str
    energy_mean: float
    energy_max: float
    energy_worst: str
    steps_zigzag: list[int] | None
    steps_ours: list[int] | None


@lru_cache(maxsize=None)
def compare(path: Path) -> tuple[Agreement, tuple[tuple[Layer, LayerCost, LayerCost], ...]]:
    """Run the analytical backend on one golden file's layers and core."""
    golden = load_golden(path)
    backend = _backend_for(golden)
    assert backend is not None
    core = Core(**golden["core"])
    layers = [Layer.from_dict(entry["layer"]) for entry in golden["layers"]]
    references = [LayerCost.from_dict(entry["cost"]) for entry in golden["layers"]]
    ours = backend.evaluate(layers, core)
    rows = tuple(zip(layers, ours, references))
    lat = [relative_error(o.latency_cycles, r.latency_cycles) for _, o, r in rows]
    energy = [relative_error(o.energy_pj, r.energy_pj) for _, o, r in rows]
    sweep = golden["set"] in SWEEPS
    agreement = Agreement(
        file=path.stem,
        core=golden["core"]["name"],
        layer_set=golden["set"],
        bits=golden["bits"],
        layers=len(rows),
        cycles_equal=sum(o.compute_cycles == r.compute_cycles for _, o, r in rows),
        spatial_equal=sum(o.spatial_utilization == pytest.approx(r.spatial_utilization, rel=1e-9) for _, o, r in rows),
        latency_mean=statistics.fmean(lat) if lat else 0.0,
        latency_max=max(lat, default=0.0),
        latency_worst=rows[lat.index(max(lat))][0].name if lat else "",
        energy_mean=statistics.fmean(energy) if energy else 0.0,
        energy_max=max(energy, default=0.0),
        energy_worst=rows[energy.index(max(energy))][0].name if energy else "",
        steps_zigzag=step_positions([r.latency_cycles for _, _, r in rows]) if sweep else None,
        steps_ours=step_positions([o.latency_cycles for _, o, _ in rows]) if sweep else None,
    )
    return agreement, rows


def table(agreements: list[Agreement]) -> str:
    """The agreement table as fixed-width text."""
    head = (
        f"{'golden file':38} {'n':>3} {'cyc=':>4} {'spU=':>4} {'lat mean':>8} {'lat max':>8} "
        f"{'E mean':>8} {'E max':>8}  steps zz / ours"
    )
    lines = [head, "-" * len(head)]
    for a in agreements:
        steps = "" if a.steps_zigzag is None else f"{a.steps_zigzag} / {a.steps_ours}"
        lines.append(
            f"{a.file:38} {a.layers:>3} {a.cycles_equal:>4} {a.spatial_equal:>4} {a.latency_mean:>8.1%} "
            f"{a.latency_max:>8.1%} {a.energy_mean:>8.1%} {a.energy_max:>8.1%}  {steps}"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ tests

_FILES = golden_files()


def _params(check: str) -> list[Any]:
    params = []
    for path in _FILES:
        if check == "staircase" and load_golden(path)["set"] not in SWEEPS:
            continue
        reason = KNOWN_GAPS.get((path.stem, check))
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        params.append(pytest.param(path, id=path.stem, marks=marks))
    return params


@pytest.fixture()
def need_backend() -> None:
    if analytical_backend() is None:
        pytest.skip("exitspace.cost.analytical does not exist yet")


def test_golden_files_are_well_formed() -> None:
    if not _FILES:
        pytest.skip("no golden files in tests/goldens; generate them with scripts/generate_goldens.py")
    for path in _FILES:
        golden = load_golden(path)
        assert golden["format"] == "exitspace.goldens", path
        assert golden["layers"], f"{path}: no layers"
        Core(**golden["core"])
        for entry in golden["layers"]:
            cost = LayerCost.from_dict(entry["cost"])
            parts = cost.compute_cycles + cost.stall_cycles + cost.onload_cycles + cost.offload_cycles
            assert parts == pytest.approx(cost.latency_cycles), entry["names"]
            mem = sum(v for level in cost.mem_energy_pj.values() for v in level.values())
            assert cost.mac_energy_pj + mem == pytest.approx(cost.energy_pj, rel=1e-9), entry["names"]


def test_golden_cores_are_the_current_presets() -> None:
    """The goldens claim to be on the hardware presets; a changed preset means: regenerate them."""
    from exitspace.hardware import load_core

    for path in _FILES:
        golden = load_golden(path)
        if "core_origin" in golden:  # one of ZigZag's bundled cores, read with its mapping file (no preset)
            continue
        preset = load_core(golden["core"]["name"]).model_dump(mode="json")
        assert preset == golden["core"], (
            f"{path.name}: preset {golden['core']['name']!r} changed since the goldens were made; "
            "regenerate them with scripts/generate_goldens.py --force"
        )


def test_goldens_cover_the_paper_workloads() -> None:
    """Every MAC layer of today's MobileNetV2 / ResNet-20 workloads has a golden result."""
    from exitspace.cost.zigzag_backend import layer_key
    from exitspace.workload.layer import Precision
    from exitspace.workload.paper import paper_mobilenetv2_workload, resnet20_workload

    workloads = {"mobilenetv2": paper_mobilenetv2_workload(), "resnet20": resnet20_workload()}
    checked = 0
    for path in _FILES:
        golden = load_golden(path)
        if golden["set"] not in workloads:
            continue
        keys = {layer_key(Layer.from_dict(entry["layer"])) for entry in golden["layers"]}
        precision = Precision.uniform(golden["bits"])
        missing = [layer.name for layer in workloads[golden["set"]] if layer.op.is_mac
                   and layer_key(layer.with_precision(precision)) not in keys]
        assert not missing, f"{path.name}: no golden for {missing[:5]}; regenerate with scripts/generate_goldens.py"
        checked += 1
    if not checked:
        pytest.skip("no complete mobilenetv2 / resnet20 golden files")


@pytest.mark.parametrize("path", _params("cycles"))
def test_compute_cycles_equal(path: Path, need_backend: None) -> None:
    _, rows = compare(path)
    wrong = [(layer.name, ours.compute_cycles, ref.compute_cycles) for layer, ours, ref in rows
             if ours.compute_cycles != ref.compute_cycles]
    assert not wrong, f"compute cycles (ours, zigzag) differ: {wrong[:5]}"


@pytest.mark.parametrize("path", _params("spatial"))
def test_spatial_utilization_equal(path: Path, need_backend: None) -> None:
    _, rows = compare(path)
    wrong = [(layer.name, ours.spatial_utilization, ref.spatial_utilization) for layer, ours, ref in rows
             if ours.spatial_utilization != pytest.approx(ref.spatial_utilization, rel=1e-9)]
    assert not wrong, f"spatial utilization (ours, zigzag) differs: {wrong[:5]}"


@pytest.mark.parametrize("path", _params("latency"))
def test_latency_within_target(path: Path, need_backend: None) -> None:
    agreement, _ = compare(path)
    assert agreement.latency_mean <= MEAN_LIMIT and agreement.latency_max <= MAX_LIMIT, (
        f"latency error mean {agreement.latency_mean:.1%} (limit {MEAN_LIMIT:.0%}), "
        f"max {agreement.latency_max:.1%} at {agreement.latency_worst} (limit {MAX_LIMIT:.0%})"
    )


@pytest.mark.parametrize("path", _params("energy"))
def test_energy_within_target(path: Path, need_backend: None) -> None:
    agreement, _ = compare(path)
    assert agreement.energy_mean <= MEAN_LIMIT and agreement.energy_max <= MAX_LIMIT, (
        f"energy error mean {agreement.energy_mean:.1%} (limit {MEAN_LIMIT:.0%}), "
        f"max {agreement.energy_max:.1%} at {agreement.energy_worst} (limit {MAX_LIMIT:.0%})"
    )


@pytest.mark.parametrize("path", _params("staircase"))
def test_staircase_positions_equal(path: Path, need_backend: None) -> None:
    agreement, _ = compare(path)
    assert agreement.steps_zigzag, "the sweep has no latency step; it tests nothing"
    assert agreement.steps_ours == agreement.steps_zigzag


def test_print_agreement_table(need_backend: None) -> None:
    """Prints the per-file error table (``pytest -s``)."""
    agreements = [compare(path)[0] for path in _FILES]
    print("\n" + table(agreements))
    assert len(agreements) == len(_FILES)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Agreement of the analytical backend with ZigZag golden files")
    parser.add_argument("--goldens", type=Path, default=GOLDEN_DIR, help="directory of golden files")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the agreement JSON")
    args = parser.parse_args(argv)
    files = golden_files(args.goldens)
    if not files:
        print(f"no complete golden files in {args.goldens}", file=sys.stderr)
        return 1
    if analytical_backend() is None:
        print("exitspace.cost.analytical does not exist yet", file=sys.stderr)
        return 1
    agreements = [compare(path)[0] for path in files]
    print(table(agreements))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"targets": {"mean": MEAN_LIMIT, "max": MAX_LIMIT}, "files": [asdict(a) for a in agreements]}, indent=1
        )
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
