"""Mapping stage on hand-computable cases: two compute cores, four tiny FC layers (two exits).

Fake backend: energy = MACs x unit energy, latency = MACs / units. Core 0: 1 unit at 1 pJ; core 1:
2 units at 2 pJ. Layers (8-bit): c0 (8 MACs, block b0), head A (8 MACs, after b0), c1 (16 MACs, b1),
head B (8 MACs, after b1, final). c0's output is 4 values = 32 bits.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from exitspace.cost.base import LayerCost
from exitspace.dynamic.metrics import dynamic_metrics
from exitspace.errors import ConfigError
from exitspace.hardware.model import Core, CoreKind, Link, MemoryLevel, OperationalArray, System
from exitspace.mapping import Allocation, Mapper, resolve_exits
from exitspace.mapping.allocation import to_array
from exitspace.mapping.costs import LayerCostCache
from exitspace.workload.layer import Layer, OpType, Workload


class FakeBackend:
    """energy = MACs * unit energy, latency = MACs / units; counts the layers it is asked about."""

    name = "fake"
    version = "1"

    def __init__(self) -> None:
        self.calls = 0

    def evaluate(self, layers, core):
        self.calls += len(layers)
        array = core.operational_array
        out = []
        for layer in layers:
            energy = layer.macs * array.unit_energy_pj
            cycles = layer.macs / array.units
            out.append(LayerCost(layer.name, core.name, self.name, energy, cycles, cycles, 0, 0, 0, energy, 1, 1))
        return out


def mem(name: str, size: int, operands: tuple[str, ...], bw: int = 64, cost: float = 0.0) -> MemoryLevel:
    return MemoryLevel(name=name, size_bits=size, r_bw=bw, w_bw=bw, r_cost=cost, w_cost=cost, operands=operands)


def compute_core(core_id: int, units: int, energy: float, weight_bits: int = 10**9) -> Core:
    return Core(
        id=core_id,
        name=f"pe{core_id}",
        operational_array=OperationalArray(unit_energy_pj=energy, sizes={"D1": units}),
        memories=(mem("w_sram", weight_bits, ("W",)), mem("act_sram", 10**9, ("I", "O"))),
    )


def two_core_system(offchip: bool = False, weight_bits: int = 10**9, pooling: bool = False) -> System:
    cores = [compute_core(0, 1, 1.0, weight_bits), compute_core(1, 2, 2.0, weight_bits)]
    links = [Link(a=0, b=1, bandwidth=8, energy_per_bit_pj=0.5)]
    if pooling:
        cores.append(
            Core(
                id=3,
                name="pool",
                kind=CoreKind.POOLING,
                operational_array=OperationalArray(unit_energy_pj=0.1, sizes={"D1": 4}),
                memories=(mem("sram", 10**6, ("I", "W", "O")),),
            )
        )
        links += [Link(a=0, b=3, bandwidth=8), Link(a=1, b=3, bandwidth=8)]
    if offchip:
        cores.append(
            Core(
                id=2,
                name="dram",
                kind=CoreKind.OFFCHIP,
                operational_array=OperationalArray(unit_energy_pj=0.0, sizes={"D1": 1}),
                memories=(mem("dram", 10**12, ("I", "W", "O"), bw=16, cost=10.0),),
            )
        )
    return System(name="two", cores=tuple(cores), links=tuple(links), offchip_core_id=2 if offchip else None)


def fc(name: str, k: int, c: int, block: str, inputs: tuple[str, ...], exit: str | None = None) -> Layer:
    return Layer(name=name, op=OpType.FC, K=k, C=c, block=block, exit=exit, inputs=inputs)


def toy_workload() -> Workload:
    return Workload(
        "toy",
        [
            fc("c0", 4, 2, "b0", ()),
            fc("A:h.fc", 2, 4, "b0", ("c0",), "A:h"),
            fc("c1", 4, 4, "b1", ("c0",)),
            fc("B:h.fc", 2, 4, "b1", ("c1",), "B:h"),
        ],
    )


EXITS = ["A:h", "B:h"]
NAMES = ["c0", "A:h.fc", "c1", "B:h.fc"]


def alloc(*cores: int) -> Allocation:
    return Allocation(dict(zip(NAMES, cores)))


@pytest.fixture
def mapper() -> Mapper:
    return Mapper(toy_workload(), two_core_system(), FakeBackend())


def test_wait_schedule_is_the_sum_of_layer_costs(mapper: Mapper) -> None:
    net = mapper.network(EXITS)
    schedule = mapper.schedule(net, alloc(0, 0, 0, 0))
    assert schedule.cum_energy.tolist() == [16.0, 40.0]
    assert schedule.cum_latency.tolist() == [16.0, 40.0]
    assert [s.head_energy_pj for s in schedule.stages] == [8.0, 8.0]
    assert [s.backbone_energy_pj for s in schedule.stages] == [8.0, 16.0]
    assert schedule.stages[1].energy_pj == 24.0


def test_metric_definitions_on_the_hand_case(mapper: Mapper) -> None:
    net = mapper.network(EXITS)
    schedule = mapper.schedule(net, alloc(0, 0, 0, 0))
    static = mapper.schedule(mapper.static("B:h"), Allocation({"c0": 0, "c1": 0, "B:h.fc": 0}))
    assert static.cum_energy.tolist() == [32.0] and static.cum_latency.tolist() == [32.0]
    metrics = dynamic_metrics(schedule, [0.25, 0.75], static, exit_accuracy=[0.9, 0.7])
    assert metrics.energy_avg_pj == pytest.approx(0.25 * 16 + 0.75 * 40)
    assert metrics.latency_avg_cycles == pytest.approx(34.0)
    assert metrics.avg_product == pytest.approx(0.25 * 16 * 16 + 0.75 * 40 * 40)  # 1264
    assert metrics.product_of_averages == pytest.approx(34.0 * 34.0)
    assert metrics.static.product == pytest.approx(1024.0)
    assert metrics.reduction_avg_product == pytest.approx(1 - 1264 / 1024)
    assert metrics.reduction_product_of_averages == pytest.approx(1 - 1156 / 1024)
    assert metrics.reduction_energy == pytest.approx(1 - 34 / 32)
    # overhead: heads run by the average sample = .25 * 8 + .75 * (8 + 8)
    assert metrics.overhead_energy_pj == pytest.approx(14.0)
    assert metrics.overhead_energy_share == pytest.approx(14.0 / 34.0)
    assert metrics.overhead_latency_cycles == pytest.approx(14.0)
    assert metrics.wasted_energy_pj == 0.0
    assert metrics.accuracy == pytest.approx(0.25 * 0.9 + 0.75 * 0.7)
    assert metrics.latency_percentiles == {"p50": 40.0, "p95": 40.0, "p99": 40.0}
    assert metrics.macs_avg == pytest.approx(0.25 * 16 + 0.75 * 40)  # MACs equal to energy on core 0
    assert metrics.early_exit_share == pytest.approx(0.25)
    assert dynamic_metrics(schedule, [0.6, 0.4]).latency_percentiles["p50"] == 16.0


def test_transfer_between_cores_is_counted_on_the_consumer(mapper: Mapper) -> None:
    net = mapper.network(EXITS)
    schedule = mapper.schedule(net, alloc(0, 1, 0, 0))
    first = schedule.stages[0]
    # c0 on core 0 (8 pJ, 8 cycles); head A on core 1 (16 pJ, 4 cycles); 32 bits over the 8 bit/cycle link
    assert first.transfer_energy_pj == pytest.approx(32 * 0.5)
    assert first.transfer_latency_cycles == pytest.approx(32 / 8)
    assert schedule.cum_energy.tolist() == [40.0, 64.0]
    assert schedule.cum_latency.tolist() == [16.0, 40.0]


def test_overlap_runs_the_next_segment_while_the_head_decides(mapper: Mapper) -> None:
    net = mapper.network(EXITS)
    schedule = mapper.schedule(net, alloc(0, 1, 0, 0), policy="overlap")
    # head A: ready at 8 + 4 (transfer), done at 16; c1 runs on core 0 from 8 to 24; head B 24..32
    assert schedule.cum_latency.tolist() == [16.0, 32.0]
    # a sample leaving at A also paid for c1 (started at 8 < 16): 16 pJ wasted
    assert schedule.cum_energy.tolist() == [56.0, 64.0]
    assert schedule.wasted_energy.tolist() == [16.0, 0.0]
    metrics = dynamic_metrics(schedule, [0.5, 0.5])
    assert metrics.wasted_energy_pj == pytest.approx(8.0)
    # heads (head A's energy includes its 16 pJ inbound transfer) + wasted work
    assert metrics.overhead_energy_pj == pytest.approx(0.5 * (32 + 16) + 0.5 * (32 + 8))


def test_overlap_never_lowers_a_samples_energy(mapper: Mapper) -> None:
    net = mapper.network(EXITS)
    for cores in itertools.product((0, 1), repeat=4):
        wait = mapper.schedule(net, alloc(*cores), "wait")
        overlap = mapper.schedule(net, alloc(*cores), "overlap")
        assert np.all(overlap.cum_energy >= wait.cum_energy - 1e-9), cores
        assert overlap.cum_energy[-1] == pytest.approx(wait.cum_energy[-1])
        assert np.all(overlap.cum_latency <= wait.cum_latency + 1e-9), cores


def test_offchip_rule_streams_weights_beyond_the_pinned_prefix() -> None:
    system = two_core_system(offchip=True, weight_bits=80)
    mapper = Mapper(toy_workload(), system, FakeBackend())
    schedule = mapper.schedule(mapper.network(EXITS), alloc(0, 0, 0, 0))
    # weights 64, 64, 128, 64 bits; 80 bits pinned: only c0 fits. 16 bit/cycle, 10 pJ per access.
    # network input 2 values = 16 bits: 1 access. Streamed: head A 4, c1 8, head B 4 accesses.
    assert schedule.cum_energy.tolist() == [8 + 10 + 8 + 40, 66 + 16 + 80 + 8 + 40]
    assert schedule.cum_latency.tolist() == [8 + 1 + 8 + 4, 21 + 16 + 8 + 8 + 4]
    assert schedule.stages[1].offchip_energy_pj == pytest.approx(120.0)
    assert [s.streamed_weight_bits for s in schedule.stages] == [64.0, 192.0]
    # head A alone on core 1 is pinned there; core 0 pins c0 and streams c1 and head B
    moved = mapper.schedule(mapper.network(EXITS), alloc(0, 1, 0, 0))
    assert moved.stages[0].offchip_energy_pj == pytest.approx(10.0)


def test_network_without_the_final_exit_is_rejected(mapper: Mapper) -> None:
    with pytest.raises(ConfigError, match="final exit"):
        mapper.network(["A:h"])


def test_exit_after_a_missing_block_is_a_clear_error() -> None:
    layers = toy_workload().layers + [fc("Z:h.fc", 2, 4, "b7", ("c1",), "Z:h")]
    mapper = Mapper(Workload("toy", layers), two_core_system(), FakeBackend())
    with pytest.raises(ConfigError, match="block 'b7', which the backbone does not have"):
        mapper.network(["A:h", "Z:h", "B:h"])
    with pytest.raises(ConfigError, match="no head 'Q:h'"):
        resolve_exits(mapper.workload, ["Q", "B"], ["h"])


def test_unknown_core_and_bad_ratios_are_clear_errors(mapper: Mapper) -> None:
    net = mapper.network(EXITS)
    with pytest.raises(ConfigError, match="unknown core 9"):
        mapper.schedule(net, alloc(0, 9, 0, 0))
    with pytest.raises(ConfigError, match="has no core"):
        mapper.schedule(net, Allocation({"c0": 0}))
    with pytest.raises(ConfigError, match="sum to 0.9000, not 1"):
        mapper.allocate(net, "greedy", [0.5, 0.4])
    with pytest.raises(ConfigError, match="2 exits"):
        dynamic_metrics(mapper.schedule(net, alloc(0, 0, 0, 0)), [1.0])
    with pytest.raises(ConfigError, match="unknown strategy"):
        mapper.allocate(net, "annealing", [0.5, 0.5])
    with pytest.raises(ConfigError, match="policy"):
        mapper.schedule(net, alloc(0, 0, 0, 0), policy="eager")


def test_strategies_are_deterministic_and_ga_is_at_least_as_good_as_greedy(mapper: Mapper) -> None:
    net = mapper.network(EXITS)
    ratios = [0.3, 0.7]
    values = {s: mapper.allocate(net, s, ratios).objective_value for s in ("single", "round_robin", "greedy")}
    first = mapper.allocate(net, "ga", ratios, seed=3)
    again = mapper.allocate(net, "ga", ratios, seed=3)
    assert first.cores == again.cores and first.objective_value == again.objective_value
    assert first.objective_value <= values["greedy"] + 1e-9 <= min(values["single"], values["round_robin"]) + 1e-9
    brute = min(
        mapper.evaluator(net).objective(to_array(mapper.model, net, alloc(*c)), np.array(ratios))[0]
        for c in itertools.product((0, 1), repeat=4)
    )
    assert first.objective_value == pytest.approx(brute)


def test_heuristics_place_layers_as_documented() -> None:
    layers = [
        fc("c0", 4, 2, "b0", ()),
        Layer("A:h.pool", OpType.POOL, K=4, C=4, groups=4, block="b0", exit="A:h", inputs=("c0",)),
        fc("A:h.fc", 2, 4, "b0", ("A:h.pool",), "A:h"),
        fc("c1", 4, 4, "b1", ("c0",)),
        fc("B:h.fc", 2, 4, "b1", ("c1",), "B:h"),
    ]
    mapper = Mapper(Workload("toy", layers), two_core_system(pooling=True), FakeBackend())
    net = mapper.network(EXITS)
    rr = mapper.allocate(net, "round_robin", [0.5, 0.5]).cores
    assert rr == {"c0": 0, "A:h.pool": 3, "A:h.fc": 0, "c1": 1, "B:h.fc": 1}
    single = mapper.allocate(net, "single", [0.5, 0.5]).cores
    assert single["A:h.pool"] == 3 and len({single[n] for n in ("c0", "A:h.fc", "c1", "B:h.fc")}) == 1
    with pytest.raises(ConfigError, match="may not run"):
        mapper.schedule(net, Allocation({**rr, "A:h.pool": 0}))


def test_backend_costs_are_cached_per_layer_and_core() -> None:
    backend = FakeBackend()
    cache = LayerCostCache()
    Mapper(toy_workload(), two_core_system(), backend, cache=cache)
    assert backend.calls == 8 and cache.misses == 8
    Mapper(toy_workload(), two_core_system(), backend, cache=cache)
    assert backend.calls == 8 and cache.hits == 8
    slower = two_core_system().model_copy(update={"name": "other"})
    Mapper(toy_workload(), slower, backend, cache=cache)  # same cores: still cached
    assert backend.calls == 8


def test_routes_take_the_widest_of_the_shortest_paths() -> None:
    base = two_core_system()
    bus = Link(a=0, b=1, bandwidth=32, energy_per_bit_pj=0.25, bus="bus0")
    system = base.model_copy(update={"links": base.links + (bus,)})
    mapper = Mapper(toy_workload(), system, FakeBackend())
    assert mapper.model.transfer_cycles_per_bit[0, 1] == pytest.approx(1 / 32)
    assert mapper.model.transfer_energy_per_bit[0, 1] == pytest.approx(0.25)


def test_batched_overlap_schedule_matches_one_allocation_at_a_time(mapper: Mapper) -> None:
    net = mapper.network(EXITS)
    evaluator = mapper.evaluator(net)
    combos = list(itertools.product((0, 1), repeat=4))
    batch = np.array([to_array(mapper.model, net, alloc(*c)) for c in combos])
    cum_e, cum_l = evaluator.cumulative(batch, "overlap")
    for row, cores in enumerate(combos):
        one = mapper.schedule(net, alloc(*cores), "overlap")
        assert cum_e[row].tolist() == pytest.approx(one.cum_energy.tolist())
        assert cum_l[row].tolist() == pytest.approx(one.cum_latency.tolist())


def test_allocation_files_round_trip_and_reject_bad_ids(mapper: Mapper, tmp_path) -> None:
    net = mapper.network(EXITS)
    found = mapper.allocate(net, "ga", [0.5, 0.5], seed=1)
    path = tmp_path / "alloc.json"
    path.write_text(__import__("json").dumps(found.to_dict()))
    again = Allocation.load(path)
    assert again.cores == found.cores and again.strategy == "ga"
    assert mapper.schedule(net, again).to_dict()["stages"] == mapper.schedule(net, found).to_dict()["stages"]
    path.write_text('{"c0": "zero"}')
    with pytest.raises(ConfigError, match="must be an integer"):
        Allocation.load(path)
    with pytest.raises(ConfigError, match="not found"):
        Allocation.load(tmp_path / "missing.json")


def test_paper_style_takes_each_stage_from_its_own_best_allocation(mapper: Mapper) -> None:
    from exitspace.dynamic.paper_style import paper_style_metrics

    net = mapper.network(EXITS)
    paper = paper_style_metrics(mapper, net, [0.5, 0.5], strategy="ga", seed=0)
    stage_products = []
    for cores in itertools.product((0, 1), repeat=4):
        stages = mapper.schedule(net, alloc(*cores)).stages
        stage_products.append([s.energy_pj * s.latency_cycles for s in stages])
    best = np.min(np.array(stage_products), axis=0)
    got = np.array(paper.stage_energy_pj) * np.array(paper.stage_latency_cycles)
    assert got.tolist() == pytest.approx(best.tolist())
    assert paper.static_energy_pj == pytest.approx(paper.cum_energy_pj[-1])  # every head's energy
    assert paper.static_latency_cycles < paper.cum_latency_cycles[-1]  # backbone latency only
