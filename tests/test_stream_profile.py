"""The paper's system as a preset and the ``stream`` cost profile against the Stream fork's own figures.

Goldens: ``tests/goldens/stream/*.json``, per-stage figures the paper's Stream fork produced (how: see
docs/stream-references.md). Targets (issue 22): per stage, block and head latency within 5% and stage energy
within 10%; per model, average ET within 5%; rank correlation of average ET across models >= 0.95.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

from exitspace.cost.analytical import AnalyticalBackend
from exitspace.cost.analytical.layers import ModelOptions
from exitspace.hardware import load_core, load_system
from exitspace.hardware.model import CoreKind
from exitspace.hardware.stream_yaml import UNLIMITED_BANDWIDTH, dump_stream_system
from exitspace.mapping.stream_profile import PAPER_RULES, StreamFigures, StreamRules, stream_figures
from exitspace.workload.layer import Layer, OpType, Precision
from exitspace.workload.paper import paper_mobilenetv2_workload

GOLDENS = Path(__file__).resolve().parent / "goldens" / "stream"
PRESET = "stream_eenn_quad"


def _reference_models() -> list[dict[str, Any]]:
    models: list[dict[str, Any]] = []
    for path in sorted(GOLDENS.glob("*.json")):
        models += json.loads(path.read_text())["models"]
    return models


MODELS = _reference_models()


@lru_cache(maxsize=None)
def _figures(nas_model: str) -> StreamFigures:
    model = next(m for m in MODELS if m["nas_model"] == nas_model)
    keys = [f"{e}:{h}" for e, h in zip(model["exits"], model["heads"])]
    return stream_figures(paper_mobilenetv2_workload(), keys, load_system(PRESET), model["exit_ratios"])


def _rel(ours: float, ref: float) -> float:
    return abs(ours - ref) / abs(ref)


# ------------------------------------------------------------------------------------------------ preset


def test_preset_is_the_forks_system() -> None:
    system = load_system(PRESET)
    compute = system.cores_of(CoreKind.COMPUTE)
    assert len(compute) == 4
    for core in compute:
        dram = core.memories[-1]
        assert (dram.r_bw, dram.w_bw, dram.r_cost, dram.w_cost) == (64, 64, 700, 750)
        assert set(dram.operands) == {"W", "I", "O"}
        assert core.operational_array.units == 1024
    (pool,) = system.cores_of(CoreKind.POOLING)
    assert pool.operational_array.units == 72 and pool.memories[0].size_bits == 128 * 1024 * 8
    (simd,) = system.cores_of(CoreKind.SIMD)
    assert simd.operational_array.units == 64
    offchip = system.offchip
    assert offchip is not None and offchip.memories[0].r_bw == 64
    assert (offchip.memories[0].r_cost, offchip.memories[0].w_cost) == (1000, 1000)
    ids = {core.id for core in compute}
    mesh = [link for link in system.links if link.a in ids and link.b in ids]
    assert len(mesh) == 4 and all(link.bandwidth == 32 and link.energy_per_bit_pj == 0 for link in mesh)
    to_simd = [link for link in system.links if simd.id in (link.a, link.b) and offchip.id not in (link.a, link.b)]
    assert to_simd and all(link.bandwidth == UNLIMITED_BANDWIDTH for link in to_simd)


def test_preset_round_trips_through_streams_yaml(tmp_path: Path) -> None:
    system = load_system(PRESET)
    path = dump_stream_system(system, tmp_path)
    again = load_system(path)

    def ends(links: tuple) -> list[tuple[int, int, int, float]]:
        return sorted((min(l.a, l.b), max(l.a, l.b), l.bandwidth, l.energy_per_bit_pj) for l in links)

    assert ends(again.links) == ends(system.links)  # the off-chip star is written as links (no bus in between)
    assert [c.model_dump(exclude={"name"}) for c in again.cores] == [c.model_dump(exclude={"name"}) for c in system.cores]


def test_preset_loads_from_the_forks_graph_dialect(tmp_path: Path) -> None:
    """The fork's own file (cores as a list, a 2d_mesh graph) gives the same system."""
    cores = tmp_path / "cores"
    cores.mkdir()
    from exitspace.hardware.zigzag_yaml import dump_zigzag_core

    preset = load_system(PRESET)
    names = []
    for core in preset.cores:
        name = f"{core.name}.yaml"
        dump_zigzag_core(core, cores / name)
        names.append(f"cores/{name}")
    text = {"name": "sys_EEEE", "cores": names,
            "graph": {"type": "2d_mesh", "nb_rows": 2, "nb_cols": 2, "bandwidth": 32, "unit_energy_cost": 0,
                      "pooling_core_id": 4, "simd_core_id": 5, "offchip_core_id": 6}}
    (tmp_path / "sys.yaml").write_text(json.dumps(text))
    loaded = load_system(tmp_path / "sys.yaml")
    assert loaded.links == preset.links and loaded.offchip_core_id == 6


# ------------------------------------------------------------------------------------------------ mechanisms


def test_pooling_channel_loop_costs_the_forks_final_head_pool() -> None:
    """stream-reference.md: the final exit's max-pool (C=320, 8x8 -> 4x4, kernel 2) takes 205,438 cycles and
    2.83e7 pJ on the pooling core under the fork's parser; without the spurious loop it is C times less work."""
    pool = load_core("edge_tpu_pooling")
    layer = Layer("pool", OpType.POOL, K=320, C=320, groups=320, OY=4, OX=4, FY=2, FX=2, stride=(2, 2),
                  precision=Precision(8, 8, 8, 8))
    fork = AnalyticalBackend(ModelOptions(pool_channel_loop=True, borrow_bandwidth=False)).evaluate([layer], pool)[0]
    assert fork.latency_cycles == 205_438
    assert fork.energy_pj == pytest.approx(2.83e7, rel=0.01)
    plain = AnalyticalBackend().evaluate([layer], pool)[0]
    assert fork.compute_cycles == 320 * plain.compute_cycles


def test_default_accounting_is_untouched_by_the_profile() -> None:
    """The profile's variants are separate backend versions: the default backend's figures do not move."""
    assert AnalyticalBackend().version == AnalyticalBackend(ModelOptions()).version
    assert AnalyticalBackend(PAPER_RULES.model_options()).version != AnalyticalBackend().version


def test_rules_switch_their_mechanism_off() -> None:
    model = MODELS[0]
    keys = [f"{e}:{h}" for e, h in zip(model["exits"], model["heads"])]
    system, workload = load_system(PRESET), paper_mobilenetv2_workload()
    paper = _figures(model["nas_model"])
    no_pool = stream_figures(workload, keys, system, model["exit_ratios"], StreamRules(pool_channel_loop=False))
    no_weights = stream_figures(workload, keys, system, model["exit_ratios"], StreamRules(weight_prefetch=False))
    assert no_pool.head_latency_share < paper.head_latency_share / 3
    assert all(s.weight_fetch_energy_pj == 0 for s in no_weights.stages)
    assert no_weights.avg_energy_j < paper.avg_energy_j


# ------------------------------------------------------------------------------------------------ goldens


@pytest.mark.parametrize("nas_model", [m["nas_model"] for m in MODELS])
def test_stages_within_bounds(nas_model: str) -> None:
    model = next(m for m in MODELS if m["nas_model"] == nas_model)
    figures = _figures(nas_model)
    assert [s.exit for s in figures.stages] == model["exits"]
    for ours, ref in zip(figures.stages, model["stages"]):
        assert _rel(ours.block_latency_cycles, ref["block_latency_cycles"]) <= 0.05, (ref["exit"], "block")
        assert _rel(ours.head_latency_cycles, ref["head_latency_cycles"]) <= 0.05, (ref["exit"], "head")
        assert _rel(ours.stage_energy_pj, ref["stage_energy_pj"]) <= 0.10, (ref["exit"], "energy")
    assert _rel(figures.avg_et_j_cycles, model["avg_et_j_cycles"]) <= 0.05


def test_rank_correlation_of_average_et() -> None:
    if len(MODELS) < 3:
        pytest.skip("fewer than three reference models")
    ours = [_figures(m["nas_model"]).avg_et_j_cycles for m in MODELS]
    refs = [m["avg_et_j_cycles"] for m in MODELS]

    def ranks(values: list[float]) -> list[int]:
        order = sorted(range(len(values)), key=lambda i: values[i])
        out = [0] * len(values)
        for rank, i in enumerate(order):
            out[i] = rank
        return out

    a, b = ranks(ours), ranks(refs)
    n = len(a)
    rho = 1 - 6 * sum((x - y) ** 2 for x, y in zip(a, b)) / (n * (n * n - 1))
    assert rho >= 0.95, (rho, ours, refs)
