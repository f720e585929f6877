"""The "zigzag" cost backend: costs MAC layers through zigzag-dse's mapping search (optional extra).

Conversion rules (shared with the analytical backend, see docs/zigzag-agreement.md):

- loops follow ZigZag's ONNX convention: G = groups, K = K/G, C = C/G, ``ix = stride*ox + fx``, padding on IX/IY;
  a fully connected layer is a 1x1 conv on a 1x1 map;
- operand precisions: W and I at the layer's widths, O (partial sums) at ``precision.psum``, final outputs at
  ``precision.output``;
- the spatial mapping is the core's ``dataflow`` (one loop dimension per array dimension, unrolled over the whole
  array dimension; ZigZag clamps it to the loop size). For a grouped layer with one output channel per group
  (depthwise), the dataflow's K entry unrolls G instead; an empty dataflow lets ZigZag search spatial mappings;
- the temporal mapping is searched by ZigZag's LOMA engine with minimal latency as the criterion
  (ties broken by energy), every operand starting and ending at the outermost level that holds it.
"""

from __future__ import annotations

import logging
import re
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence, cast

import yaml

from exitspace.cost.base import LayerCost
from exitspace.errors import ConfigError, ExitspaceError
from exitspace.hardware.model import Core
from exitspace.hardware.zigzag_yaml import zigzag_core_dict
from exitspace.workload.layer import Layer

if TYPE_CHECKING:
    from zigzag.stages.stage import StageCallable

ADAPTER_VERSION = "1"
_LOOP_DIMS = ("B", "K", "G", "OX", "OY", "C", "FX", "FY")
_EQUATION = "O[b][g][k][oy][ox]+=W[g][k][c][fy][fx]*I[b][g][c][iy][ix]"


def _zigzag_version() -> str | None:
    try:
        return metadata.version("zigzag-dse")
    except metadata.PackageNotFoundError:
        return None


def _require_zigzag() -> None:
    try:
        import zigzag  # noqa: F401
    except ImportError:
        raise ExitspaceError(
            "cost backend 'zigzag': zigzag-dse is not installed; run `pip install -e .[zigzag]` or use backend 'analytical'"
        ) from None


def layer_key(layer: Layer) -> tuple[Any, ...]:
    """What decides a layer's cost: shape, stride, padding and precision (not its name or place in the graph)."""
    return (
        layer.op.value,
        layer.K,
        layer.C,
        layer.OY,
        layer.OX,
        layer.FY,
        layer.FX,
        layer.B,
        layer.groups,
        tuple(layer.stride),
        tuple(layer.padding),
        layer.precision,
    )


# ----------------------------------------------------------------------------------------------------------------
# Core -> ZigZag accelerator description


def accelerator_dict(core: Core) -> tuple[dict[str, Any], dict[str, str]]:
    """ZigZag's accelerator YAML content for ``core`` (the hardware stage's writer) and the map ZigZag memory
    name -> our level name."""
    accelerator = zigzag_core_dict(core)
    accelerator.pop("dataflows", None)  # the spatial mapping goes through the mapping file instead
    for dim in accelerator["operational_array"]["dimensions"]:
        if not re.fullmatch(r"D\d", dim):
            raise ConfigError(
                f"core {core.name!r}.operational_array.sizes: dimension {dim!r} must be named D1..D9 for zigzag"
            )
    return accelerator, {mem.name: mem.name for mem in core.memories}


# ----------------------------------------------------------------------------------------------------------------
# Layer -> ZigZag workload and mapping


def _zz_sizes(layer: Layer) -> dict[str, int]:
    return {
        "B": layer.B,
        "K": layer.K // layer.groups,
        "G": layer.groups,
        "OX": layer.OX,
        "OY": layer.OY,
        "C": layer.C // layer.groups,
        "FX": layer.FX,
        "FY": layer.FY,
    }


def workload_entry(layer: Layer, layer_id: int, zz_name: str) -> dict[str, Any]:
    """One layer in ZigZag's workload format."""
    if not layer.op.is_mac:
        raise ConfigError(
            f"layer {layer.name!r}.op: the zigzag backend costs MAC layers only (conv, dwconv, pwconv, fc), "
            f"not {layer.op.value!r}; cost it with the 'analytical' backend"
        )
    sizes = _zz_sizes(layer)
    return {
        "id": layer_id,
        "name": zz_name,
        "operator_type": "Conv",
        "equation": _EQUATION,
        "dimension_relations": [f"ix={layer.stride[1]}*ox+1*fx", f"iy={layer.stride[0]}*oy+1*fy"],
        "loop_dims": list(_LOOP_DIMS),
        "loop_sizes": [sizes[d] for d in _LOOP_DIMS],
        "operand_precision": {
            "W": layer.precision.weight,
            "I": layer.precision.input,
            "O": layer.precision.psum,
            "O_final": layer.precision.output,
        },
        "operand_source": {"W": layer_id, "I": layer_id},
        "pr_loop_dims": ["IX", "IY"],
        "padding": [[layer.padding[1], layer.padding[1]], [layer.padding[0], layer.padding[0]]],
    }


def spatial_unrolling(layer: Layer, core: Core, depthwise_on_g: bool = True) -> dict[str, list[str]] | None:
    """The spatial mapping handed to ZigZag (``{array dim: ["LOOP, size"]}``), or None to let ZigZag search."""
    if not core.dataflow:
        return None
    sizes = _zz_sizes(layer)
    mapping: dict[str, list[str]] = {}
    for dim, loops in core.dataflow.items():
        if len(loops) != 1:
            raise ConfigError(
                f"core {core.name!r}.dataflow.{dim}: the zigzag backend takes one loop dimension per array dimension "
                f"(got {list(loops)})"
            )
        loop = loops[0]
        if depthwise_on_g and loop == "K" and layer.groups > 1 and sizes["K"] == 1:
            loop = "G"
        mapping[dim] = [f"{loop}, {core.operational_array.sizes[dim]}"]
    return mapping


def mapping_entries(
    layers: Sequence[tuple[str, Layer]], core: Core, depthwise_on_g: bool = True
) -> list[dict[str, Any]]:
    """ZigZag's mapping YAML content: a default entry plus one entry per (ZigZag layer name, layer)."""
    links = {"O": "O", "W": "I2", "I": "I1"}
    entries: list[dict[str, Any]] = [{"name": "default", "memory_operand_links": links}]
    for zz_name, layer in layers:
        entry: dict[str, Any] = {"name": zz_name, "memory_operand_links": links}
        spatial = spatial_unrolling(layer, core, depthwise_on_g)
        if spatial is not None:
            entry["spatial_mapping"] = spatial
        entries.append(entry)
    return entries


# ----------------------------------------------------------------------------------------------------------------
# The backend


@dataclass(frozen=True)
class ZigZagDetail:
    """Everything ZigZag reported for one layer (what the golden files keep)."""

    cost: LayerCost
    ideal_cycles: float
    ideal_temporal_cycles: float
    systolic_drain_cycles: float
    spatial_mapping: dict[str, dict[str, float]]
    spatial_mapping_int: dict[str, list[list[list[Any]]]]
    temporal_mapping: dict[str, list[list[str]]]
    mem_accesses: dict[str, dict[str, dict[str, float]]]
    mem_energy_by_direction: dict[str, dict[str, dict[str, float]]]
    seconds: float
    zigzag_version: str


class ZigZagBackend:
    """Costs layers with zigzag-dse (``pip install -e .[zigzag]``); seconds per layer, the reference for "analytical"."""

    name = "zigzag"

    def __init__(self, lpf_limit: int = 6, depthwise_on_g: bool = True) -> None:
        self.lpf_limit = lpf_limit
        self.depthwise_on_g = depthwise_on_g
        zz = _zigzag_version() or "missing"
        self.version = f"zigzag-dse-{zz}+adapter{ADAPTER_VERSION}+lpf{lpf_limit}{'' if depthwise_on_g else '+literal'}"

    def evaluate(self, layers: Sequence[Layer], core: Core) -> list[LayerCost]:
        """Cost of each layer on ``core``, in order (identical layers are costed once)."""
        return [detail.cost for detail in self.evaluate_detailed(layers, core)]

    def evaluate_detailed(self, layers: Sequence[Layer], core: Core) -> list[ZigZagDetail]:
        """As :meth:`evaluate`, with ZigZag's mappings and raw figures."""
        if core.operational_array.precision_scaling is not None:
            raise ConfigError(
                f"core {core.name!r}.operational_array.precision_scaling: zigzag does not model precision-scalable "
                "MACs; remove it or use the 'analytical' backend"
            )
        for layer in layers:
            if not layer.op.is_mac:
                workload_entry(layer, 0, "x")  # raises the one-line error
            if layer.op not in core.ops:
                raise ConfigError(
                    f"layer {layer.name!r}.op: core {core.name!r} ({core.kind.value}) does not run {layer.op.value!r} "
                    f"layers; it runs {[op.value for op in core.ops]}"
                )
        _require_zigzag()
        unique: dict[tuple[Any, ...], ZigZagDetail] = {}
        out: list[ZigZagDetail] = []
        for layer in layers:
            key = layer_key(layer)
            if key not in unique:
                unique[key] = self._run_one(layer, core)
            detail = unique[key]
            if detail.cost.layer != layer.name:
                cost = LayerCost.from_dict({**detail.cost.to_dict(), "layer": layer.name})
                detail = ZigZagDetail(**{**detail.__dict__, "cost": cost})
            out.append(detail)
        return out

    # -- one ZigZag run ------------------------------------------------------------------------------------------

    def _run_one(self, layer: Layer, core: Core) -> ZigZagDetail:
        zz_name = "layer0"
        accelerator, mem_names = accelerator_dict(core)
        workload = [workload_entry(layer, 0, zz_name)]
        mapping = mapping_entries([(zz_name, layer)], core, self.depthwise_on_g)
        logger = logging.getLogger("zigzag")
        previous_level = logger.level
        logger.setLevel(logging.ERROR)
        start = time.perf_counter()
        try:
            answers = self._search(accelerator, workload, mapping)
        except ExitspaceError:
            raise
        except Exception as exc:  # ZigZag raises bare asserts / ValueErrors on what it cannot map
            raise ExitspaceError(
                f"layer {layer.name!r}: zigzag could not cost it on core {core.name!r} ({type(exc).__name__}: {exc})"
            ) from None
        finally:
            logger.setLevel(previous_level)
        seconds = time.perf_counter() - start
        if len(answers) != 1:
            raise ExitspaceError(f"layer {layer.name!r}: zigzag returned {len(answers)} results, expected 1")
        cme = answers[0][0]
        return _detail_from_cme(cme, layer, core, mem_names, self.name, seconds)

    def _search(self, accelerator: dict[str, Any], workload: list[dict[str, Any]], mapping: list[dict[str, Any]]) -> list[Any]:
        """ZigZag's mapping search and cost model on one layer (accelerator and mapping as YAML files)."""
        from zigzag.mapping.temporal_mapping import TemporalMappingType
        from zigzag.stages.evaluation.cost_model_evaluation import CostModelStage
        from zigzag.stages.main import MainStage
        from zigzag.stages.mapping.spatial_mapping_generation import SpatialMappingGeneratorStage
        from zigzag.stages.mapping.temporal_mapping_generator_stage import TemporalMappingGeneratorStage
        from zigzag.stages.parser.accelerator_parser import AcceleratorParserStage
        from zigzag.stages.parser.workload_parser import WorkloadParserStage
        from zigzag.stages.results.reduce_stages import MinimalLatencyStage
        from zigzag.stages.workload_iterator import WorkloadStage

        stages = [
            WorkloadParserStage, AcceleratorParserStage, WorkloadStage, MinimalLatencyStage,
            SpatialMappingGeneratorStage, MinimalLatencyStage, TemporalMappingGeneratorStage, CostModelStage,
        ]
        with tempfile.TemporaryDirectory(prefix="exitspace-zigzag-") as tmp:
            acc_path = Path(tmp) / "accelerator.yaml"
            map_path = Path(tmp) / "mapping.yaml"
            acc_path.write_text(yaml.safe_dump(accelerator, sort_keys=False))
            map_path.write_text(yaml.safe_dump(mapping, sort_keys=False))
            main = MainStage(
                # cast: these stage classes take keyword-only arguments that ZigZag's own StageCallable omits
                list_of_callables=cast("list[StageCallable]", stages),
                accelerator=str(acc_path),
                workload=workload,
                mapping=str(map_path),
                loma_lpf_limit=self.lpf_limit,
                loma_show_progress_bar=False,
                nb_mappings_generated=3,
                enable_mix_spatial_mapping_generation=False,
                access_same_data_considered_as_no_access=True,
                temporal_mapping_type=TemporalMappingType("uneven"),
            )
            return list(main.run())


def _operand_name(layer_op: Any) -> str:
    return str(getattr(layer_op, "name", layer_op))


def _memory_breakdown(cme: Any, mem_names: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Per memory (our names) and operand: energy, energy per data direction, word accesses per
    direction, and traffic in bits (accesses times the port width of each direction)."""
    from zigzag.mapping.data_movement import DataDirection

    hierarchy = cme.accelerator.memory_hierarchy
    links = cme.layer.memory_operand_links
    energy: dict[str, dict[str, float]] = {}
    energy_dir: dict[str, dict[str, dict[str, float]]] = {}
    accesses: dict[str, dict[str, dict[str, float]]] = {}
    traffic: dict[str, dict[str, float]] = {}
    for layer_op, per_level in cme.mem_energy_breakdown.items():
        operand = _operand_name(layer_op)
        mem_op = links.layer_to_mem_op(layer_op)
        for index, (level, value) in enumerate(zip(hierarchy.get_memory_levels(mem_op), per_level)):
            name = mem_names.get(level.name, level.name)
            energy.setdefault(name, {})[operand] = float(value)
            further = cme.mem_energy_breakdown_further[layer_op][index]
            count = cme.memory_word_access[layer_op][index]
            energy_dir.setdefault(name, {})[operand] = {str(d.name): float(further.get(d)) for d in DataDirection}
            accesses.setdefault(name, {})[operand] = {str(d.name): float(count.get(d)) for d in DataDirection}
            traffic.setdefault(name, {})[operand] = sum(
                (float(count.get(d)) * (level.get_max_bandwidth(mem_op, d) or 0) for d in DataDirection), 0.0)
    return energy, energy_dir, accesses, traffic


def _mappings(cme: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """ZigZag's chosen spatial mapping (per array dimension), its per-operand integer form and the
    temporal mapping (loops per memory level), as plain JSON-able values."""
    spatial = {
        str(oa_dim): {str(dim): float(factor) for dim, factor in single.items()}
        for oa_dim, single in cme.layer.spatial_mapping.items()
    }
    spatial_int = {
        _operand_name(op): [[[str(dim), float(f)] for dim, f in lvl] for lvl in levels]
        for op, levels in cme.spatial_mapping_int.mapping_dict_origin.items()
    }
    temporal = {
        _operand_name(op): [[str(loop) for loop in lvl] for lvl in levels]
        for op, levels in cme.temporal_mapping.mapping_dic_stationary.items()
    }
    return spatial, spatial_int, temporal
    return spatial, spatial_int, temporal


def _detail_from_cme(
    cme: Any, layer: Layer, core: Core, mem_names: dict[str, str], backend: str, seconds: float
) -> ZigZagDetail:
    energy, energy_dir, accesses, traffic = _memory_breakdown(cme, mem_names)
    drain = float(getattr(cme, "systolic_drain_cycle", 0.0))
    cost = LayerCost(
        layer=layer.name,
        core=core.name,
        backend=backend,
        energy_pj=float(cme.energy_total),
        latency_cycles=float(cme.latency_total2),
        compute_cycles=float(cme.ideal_temporal_cycle),
        stall_cycles=float(cme.stall_slack_comb) + drain,
        onload_cycles=float(cme.data_onloading_cycle),
        offload_cycles=float(cme.data_offloading_cycle),
        mac_energy_pj=float(cme.mac_energy),
        spatial_utilization=float(cme.mac_spatial_utilization),
        utilization=float(cme.mac_utilization2),
        mem_energy_pj=energy,
        mem_traffic_bits=traffic,
    )
    spatial, spatial_int, temporal = _mappings(cme)
    return ZigZagDetail(
        cost=cost,
        ideal_cycles=float(cme.ideal_cycle),
        ideal_temporal_cycles=float(cme.ideal_temporal_cycle),
        systolic_drain_cycles=drain,
        spatial_mapping=spatial,
        spatial_mapping_int=spatial_int,
        temporal_mapping=temporal,
        mem_accesses=accesses,
        mem_energy_by_direction=energy_dir,
        seconds=seconds,
        zigzag_version=_zigzag_version() or "missing",
    )
