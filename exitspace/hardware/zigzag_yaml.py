"""Read and write one core in ZigZag's hardware YAML schema.

Two dialects are read:

* ZigZag 3.x (zigzag-dse 3.9.1, Stream since mid 2024): per memory ``size``, ``r_cost``, ``w_cost``,
  ``area``, ``latency``, ``operands`` ([I1, I2, O]), ``ports`` (a list of ``{name, type,
  bandwidth_min, bandwidth_max, allocation: ["I1, tl", ...]}``), ``served_dimensions``; and
  ``operational_array: {unit_energy, unit_area, dimensions, sizes}``; optional ``dataflows``
  (``D1: ["K, 8"]``).
* the older ZigZag 2 / Stream 2024 one: per memory ``r_bw``, ``w_bw``, ``r_port``, ``w_port``,
  ``rw_port``, ``min_r_granularity``, ``min_w_granularity`` and ``ports`` as one ``{fh: w_port_1,
  tl: r_port_1, ...}`` mapping per operand; ``multiplier_energy`` / ``multiplier_area``.

Written is always the ZigZag 3.x dialect, which zigzag-dse 3.9.1 validates. Mapping to our model:
I1 -> ``I`` (input activations), I2 -> ``W`` (weights), O -> ``O``; ``size`` -> ``size_bits``; the
widest read (write) port's ``bandwidth_max`` -> ``r_bw`` (``w_bw``); a ``bandwidth_min`` below the
width -> ``min_r_granularity`` / ``min_w_granularity``; port counts -> ``r_port`` / ``w_port`` /
``rw_port``. Ports that the widths and counts do not imply (unequal widths, unusual allocation) are
kept verbatim in ``MemoryLevel.ports``. Stream's core extensions ``type`` (``zigzag.offchip``) and
``operator_types`` (ONNX op names) set ``Core.kind`` and ``Core.supported_ops``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence, cast

import yaml
from pydantic import ValidationError

from exitspace.errors import ConfigError
from exitspace.files import atomic_write_text
from exitspace.hardware._fields import FieldReader, read_document, validation_error_line
from exitspace.hardware.model import (
    DEFAULT_OPS,
    Core,
    CoreKind,
    MemoryLevel,
    MemoryPort,
    OperationalArray,
)
from exitspace.workload.layer import OpType

ZIGZAG_TO_OPERAND = {"I1": "I", "I2": "W", "O": "O"}
OPERAND_TO_ZIGZAG = {ours: theirs for theirs, ours in ZIGZAG_TO_OPERAND.items()}
DIRECTIONS = ("fh", "tl", "fl", "th")
LOOP_DIMS = ("K", "C", "OX", "OY", "FX", "FY", "G", "B")

# ONNX operator names (Stream's ``operator_types``) <-> our op kinds.
ONNX_TO_OPS: dict[str, tuple[OpType, ...]] = {
    "Conv": (OpType.CONV, OpType.DEPTHWISE, OpType.POINTWISE),
    "Gemm": (OpType.FC,),
    "MatMul": (OpType.FC,),
    "MaxPool": (OpType.POOL,),
    "AveragePool": (OpType.POOL,),
    "GlobalAveragePool": (OpType.POOL,),
    "GlobalMaxPool": (OpType.POOL,),
    "Add": (OpType.ADD,),
    "Sub": (OpType.ADD,),
    "Mul": (OpType.ADD,),
    "Div": (OpType.ADD,),
    "Relu": (OpType.ACT,),
    "Clip": (OpType.ACT,),
    "Sigmoid": (OpType.ACT,),
    "Tanh": (OpType.ACT,),
    "Gelu": (OpType.ACT,),
    "Silu": (OpType.ACT,),
    "Exp": (OpType.ACT,),
    "Pow": (OpType.ACT,),
    "HardSigmoid": (OpType.ACT,),
    "HardSwish": (OpType.ACT,),
}
OPS_TO_ONNX: dict[OpType, tuple[str, ...]] = {
    OpType.CONV: ("Conv",),
    OpType.DEPTHWISE: ("Conv",),
    OpType.POINTWISE: ("Conv",),
    OpType.FC: ("Gemm", "MatMul"),
    OpType.POOL: ("MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"),
    OpType.ADD: ("Add", "Sub", "Mul", "Div"),
    OpType.ACT: ("Relu", "Clip", "Sigmoid", "Tanh", "Gelu", "Silu", "Exp", "Pow", "HardSigmoid", "HardSwish"),
}
_MODEL_FIELD_NAMES = {"size_bits": "size", "unit_energy_pj": "unit_energy"}


# ----------------------------------------------------------------------------------------------- read


def load_zigzag_core(
    source: str | Path | dict[str, Any],
    core_id: int = 0,
    kind: CoreKind | str | None = None,
    mapping: str | Path | dict[str, Any] | list[Any] | None = None,
    source_name: str | None = None,
) -> Core:
    """Read one core from a ZigZag hardware YAML file (or its parsed dict).

    ``kind`` overrides what the file says (Stream's ``type`` / ``operator_types``); ``mapping`` is an
    optional ZigZag mapping file whose ``default`` entry's ``spatial_mapping`` becomes the dataflow
    when the core file has no ``dataflows``.
    """
    if isinstance(source, dict):
        data: Any = source
        label = source_name or str(source.get("name", "core"))
    else:
        path = Path(source)
        data = read_document(path)
        label = source_name or path.name
    reader = FieldReader(label)
    core = parse_zigzag_core(reader.mapping(data, ""), reader, core_id=core_id, kind=kind)
    if mapping is not None and not core.dataflow:
        core = _with_mapping_dataflow(core, mapping)
    return core


def parse_zigzag_core(
    data: dict[str, Any],
    reader: FieldReader,
    core_id: int = 0,
    kind: CoreKind | str | None = None,
    file_stem: str = "",
) -> Core:
    """Build a Core from a parsed ZigZag core mapping; errors name the file and the field."""
    name = reader.string(reader.get(data, "name", ""), "name")
    resolved_kind = _resolve_kind(data, reader, kind, name, file_stem)
    if "operational_array" not in data and isinstance(data.get("multipliers"), dict):
        data = {**data, "operational_array": data["multipliers"]}  # Stream 2024's older key
    array_data = reader.mapping(reader.get(data, "operational_array", ""), "operational_array")
    if array_data.get("is_imc"):
        reader.fail("operational_array.is_imc", "in-memory-computing arrays are not supported; describe a digital MAC array")
    dims, sizes = _read_dimensions(array_data, reader)
    if resolved_kind == CoreKind.OFFCHIP:
        sizes = [max(size, 1) for size in sizes]  # Stream writes an off-chip core's array as zeros
    unit_energy = reader.number(
        _first(array_data, ("unit_energy", "multiplier_energy"), reader, "operational_array.unit_energy"),
        "operational_array.unit_energy",
    )
    unit_area = reader.number(_first(array_data, ("unit_area", "multiplier_area"), None, "", 1.0), "operational_array.unit_area")
    for dim, size in zip(dims, sizes):
        if size < 1:
            reader.fail(f"operational_array.sizes[{dims.index(dim)}]", f"must be >= 1 (got {size}); size of array dimension {dim}")
    array = OperationalArray(unit_energy_pj=unit_energy, unit_area=unit_area, sizes=dict(zip(dims, sizes)))

    memories_data = reader.mapping(reader.get(data, "memories", ""), "memories")
    if not memories_data:
        reader.fail("memories", "needs at least one memory")
    memories = tuple(
        _read_memory(str(mem_name), reader.mapping(mem, f"memories.{mem_name}"), reader, dims)
        for mem_name, mem in memories_data.items()
    )
    dataflow = _read_dataflows(data.get("dataflows"), reader, dims, "dataflows")
    supported_ops = _read_operator_types(data, reader, resolved_kind)
    try:
        return Core(
            id=core_id,
            name=name,
            kind=resolved_kind,
            operational_array=array,
            memories=memories,
            dataflow=dataflow,
            supported_ops=supported_ops,
        )
    except ValidationError as exc:
        raise validation_error_line(exc, reader.source, _MODEL_FIELD_NAMES) from None


def _first(data: dict[str, Any], keys: tuple[str, ...], reader: FieldReader | None, path: str, default: Any = ...) -> Any:
    for key in keys:
        if data.get(key) is not None:
            return data[key]
    if reader is not None and default is ...:
        reader.fail(path, "required field is missing")
    return default


def _read_dimensions(array_data: dict[str, Any], reader: FieldReader) -> tuple[list[str], list[int]]:
    dims = [reader.string(d, f"operational_array.dimensions[{i}]") for i, d in enumerate(
        reader.seq(reader.get(array_data, "dimensions", "operational_array"), "operational_array.dimensions", 1)
    )]
    if len(set(dims)) != len(dims):
        reader.fail("operational_array.dimensions", f"names must be unique (got {dims})")
    raw_sizes = array_data.get("sizes")
    if raw_sizes is None:  # Stream's older off-chip cores leave the sizes out
        raw_sizes = [0] * len(dims)
    sizes = [reader.integer(s, f"operational_array.sizes[{i}]", minimum=0) for i, s in enumerate(
        reader.seq(raw_sizes, "operational_array.sizes")
    )]
    if len(sizes) != len(dims):
        reader.fail("operational_array.sizes", f"needs one size per dimension {dims} (got {sizes})")
    return dims, sizes


def _resolve_kind(
    data: dict[str, Any], reader: FieldReader, kind: CoreKind | str | None, name: str, file_stem: str
) -> CoreKind:
    if kind is not None:
        try:
            return CoreKind(kind)
        except ValueError:
            reader.fail("kind", f"unknown core kind {kind!r}; use one of {[k.value for k in CoreKind]}")
    core_type = data.get("type")
    if core_type is not None:
        namespace, _, suffix = str(core_type).rpartition(".")
        if namespace not in ("", "zigzag"):
            reader.fail("type", f"{core_type!r}: only ZigZag cores are supported (not {namespace!r}); use zigzag.compute or zigzag.offchip")
        if suffix == "offchip":
            return CoreKind.OFFCHIP
        if suffix != "compute":
            reader.fail("type", f"{core_type!r}: only compute and off-chip cores are modelled; use zigzag.compute or zigzag.offchip")
    ops = data.get("operator_types")
    if isinstance(ops, list) and ops:
        kinds: set[OpType] = set()
        for op in ops:
            kinds.update(ONNX_TO_OPS.get(str(op), ()))
        if kinds and kinds <= {OpType.POOL}:
            return CoreKind.POOLING
        if kinds and kinds <= {OpType.ADD, OpType.ACT}:
            return CoreKind.SIMD
        if kinds:
            return CoreKind.COMPUTE
    for text in (file_stem.lower(), name.lower()):
        if "simd" in text:
            return CoreKind.SIMD
        if "pool" in text:
            return CoreKind.POOLING
        if "offchip" in text or "off_chip" in text:
            return CoreKind.OFFCHIP
    return CoreKind.COMPUTE


def _read_operator_types(data: dict[str, Any], reader: FieldReader, kind: CoreKind) -> tuple[OpType, ...] | None:
    raw = data.get("operator_types")
    if raw is None:
        return None
    ops: set[OpType] = set()
    for i, op in enumerate(reader.seq(raw, "operator_types")):
        op_name = reader.string(op, f"operator_types[{i}]")
        if op_name not in ONNX_TO_OPS:
            continue  # an ONNX op we never emit (Stream lists forward-looking supersets)
        ops.update(ONNX_TO_OPS[op_name])
    ordered = tuple(op for op in OpType if op in ops)
    if set(ordered) == set(DEFAULT_OPS[kind]):
        return None
    return ordered


def _read_operands(raw: Any, reader: FieldReader, path: str) -> tuple[str, ...]:
    operands: list[str] = []
    for i, operand in enumerate(reader.seq(raw, path, 1)):
        text = reader.string(operand, f"{path}[{i}]")
        if text not in ZIGZAG_TO_OPERAND:
            reader.fail(f"{path}[{i}]", f"unknown operand {text!r}; use I1 (inputs), I2 (weights) or O (outputs)")
        if ZIGZAG_TO_OPERAND[text] in operands:
            reader.fail(path, f"operand {text} listed twice; list it once")
        operands.append(ZIGZAG_TO_OPERAND[text])
    return tuple(operands)


def _read_memory(name: str, mem: dict[str, Any], reader: FieldReader, dims: list[str]) -> MemoryLevel:
    path = f"memories.{name}"
    if mem.get("auto_cost_extraction") and (mem.get("r_cost") is None or mem.get("w_cost") is None):
        reader.fail(f"{path}.r_cost", "CACTI cost extraction is not supported; give r_cost and w_cost in pJ")
    size = reader.integer(reader.get(mem, "size", path), f"{path}.size", strict_positive=True)
    r_cost = reader.number(reader.get(mem, "r_cost", path, hint="energy per read access in pJ"), f"{path}.r_cost")
    w_cost = reader.number(reader.get(mem, "w_cost", path, hint="energy per write access in pJ"), f"{path}.w_cost")
    area = reader.number(mem.get("area") if mem.get("area") is not None else 0.0, f"{path}.area")
    latency = reader.integer(mem.get("latency", 1), f"{path}.latency", minimum=0)
    operands = _read_operands(reader.get(mem, "operands", path), reader, f"{path}.operands")
    served = tuple(
        reader.string(d, f"{path}.served_dimensions[{i}]")
        for i, d in enumerate(reader.seq(reader.get(mem, "served_dimensions", path, default=[]), f"{path}.served_dimensions"))
    )
    for i, dim in enumerate(served):
        if dim not in dims:
            reader.fail(f"{path}.served_dimensions[{i}]", f"unknown array dimension {dim!r}; the array has {dims}")
    common = dict(
        name=name, size_bits=size, r_cost=r_cost, w_cost=w_cost, operands=operands,
        served_dimensions=served, latency=latency, area=area,
    )
    raw_ports = mem.get("ports")
    is_v3 = isinstance(raw_ports, list) and raw_ports and all(isinstance(p, dict) and "name" in p for p in raw_ports)
    if is_v3:
        widths = _ports_v3(cast(list[Any], raw_ports), reader, f"{path}.ports", operands)  # cast: is_v3 checked it
    else:
        widths = _ports_legacy(mem, reader, path)
    try:
        level = MemoryLevel(**common, **widths)
        if is_v3 and level.ports is not None and implied_ports(level.model_copy(update={"ports": None})) == level.ports:
            level = level.model_copy(update={"ports": None})
        return level
    except ValidationError as exc:
        line = validation_error_line(exc, "", _MODEL_FIELD_NAMES)
        reader.fail(path, str(line))


def _ports_v3(raw: list[Any], reader: FieldReader, path: str, operands: tuple[str, ...]) -> dict[str, Any]:
    ports: list[MemoryPort] = []
    for i, raw_port in enumerate(raw):
        where = f"{path}[{i}]"
        port = reader.mapping(raw_port, where)
        port_type = reader.string(reader.get(port, "type", where), f"{where}.type")
        if port_type not in ("read", "write", "read_write"):
            reader.fail(f"{where}.type", f"must be read, write or read_write (got {port_type!r})")
        bw_max = reader.integer(reader.get(port, "bandwidth_max", where), f"{where}.bandwidth_max", strict_positive=True)
        bw_min = reader.integer(port.get("bandwidth_min", bw_max), f"{where}.bandwidth_min", strict_positive=True)
        if bw_min > bw_max:
            reader.fail(f"{where}.bandwidth_min", f"must be <= bandwidth_max {bw_max} (got {bw_min})")
        allocation = []
        for j, entry in enumerate(reader.seq(port.get("allocation", []), f"{where}.allocation")):
            text = reader.string(entry, f"{where}.allocation[{j}]")
            parts = [part.strip() for part in text.split(",")]
            if len(parts) != 2 or parts[0] not in ZIGZAG_TO_OPERAND or parts[1] not in DIRECTIONS:
                reader.fail(f"{where}.allocation[{j}]", f"must read '<I1|I2|O>, <fh|tl|fl|th>' (got {text!r})")
            operand = ZIGZAG_TO_OPERAND[parts[0]]
            if operand not in operands:
                reader.fail(f"{where}.allocation[{j}]", f"operand {parts[0]} is not in this memory's operands")
            if parts[1] in ("fh", "fl") and port_type == "read":
                reader.fail(f"{where}.allocation[{j}]", f"write direction {parts[1]} on read port")
            if parts[1] in ("tl", "th") and port_type == "write":
                reader.fail(f"{where}.allocation[{j}]", f"read direction {parts[1]} on write port")
            allocation.append((operand, parts[1]))
        name = reader.string(reader.get(port, "name", where), f"{where}.name")
        ports.append(MemoryPort(name=name, type=port_type, bandwidth_min=bw_min, bandwidth_max=bw_max, allocation=tuple(allocation)))
    readable = [p for p in ports if p.type != "write"]
    writable = [p for p in ports if p.type != "read"]
    if not readable or not writable:
        reader.fail(path, "needs at least one read and one write port (or a read_write port)")
    r_bw = max(p.bandwidth_max for p in readable)
    w_bw = max(p.bandwidth_max for p in writable)
    r_min = min(p.bandwidth_min for p in readable)
    w_min = min(p.bandwidth_min for p in writable)
    return dict(
        r_bw=r_bw, w_bw=w_bw,
        min_r_granularity=r_min if r_min < r_bw else None,
        min_w_granularity=w_min if w_min < w_bw else None,
        r_port=sum(p.type == "read" for p in ports),
        w_port=sum(p.type == "write" for p in ports),
        rw_port=sum(p.type == "read_write" for p in ports),
        ports=tuple(ports),
    )


def _ports_legacy(mem: dict[str, Any], reader: FieldReader, path: str) -> dict[str, Any]:
    hint = "give 'ports' (ZigZag 3) or r_bw/w_bw in bits per cycle"
    r_bw = reader.integer(reader.get(mem, "r_bw", path, hint=hint), f"{path}.r_bw", strict_positive=True)
    w_bw = reader.integer(reader.get(mem, "w_bw", path, hint=hint), f"{path}.w_bw", strict_positive=True)
    out: dict[str, Any] = dict(
        r_bw=r_bw, w_bw=w_bw,
        r_port=reader.integer(mem.get("r_port", 1), f"{path}.r_port", minimum=0),
        w_port=reader.integer(mem.get("w_port", 1), f"{path}.w_port", minimum=0),
        rw_port=reader.integer(mem.get("rw_port", 0), f"{path}.rw_port", minimum=0),
    )
    for key, width in (("min_r_granularity", r_bw), ("min_w_granularity", w_bw)):
        raw = mem.get(key)
        if raw is not None:
            value = reader.integer(raw, f"{path}.{key}", strict_positive=True)
            out[key] = value if value < width else None
    if out["r_port"] + out["rw_port"] == 0 or out["w_port"] + out["rw_port"] == 0:
        reader.fail(f"{path}.rw_port", "needs at least one read and one write port (r_port/w_port or rw_port)")
    return out


def _read_dataflows(raw: Any, reader: FieldReader, dims: list[str], path: str) -> dict[str, tuple[str, ...]]:
    if raw is None:
        return {}
    dataflow: dict[str, tuple[str, ...]] = {}
    for dim, entries in reader.mapping(raw, path).items():
        where = f"{path}.{dim}"
        if str(dim) not in dims:
            reader.fail(where, f"unknown array dimension {dim!r}; the array has {dims}")
        entries = [entries] if isinstance(entries, str) else reader.seq(entries, where)
        # Stream 2024 wrote "D1: [K, 32]" (a list of two scalars) as well as "D1: ['K, 32']".
        if len(entries) == 2 and all(not isinstance(e, str) or "," not in e for e in entries) and isinstance(entries[1], int):
            entries = [f"{entries[0]}, {entries[1]}"]
        loops: list[str] = []
        for i, entry in enumerate(entries):
            text = reader.string(entry, f"{where}[{i}]")
            parts = [part.strip() for part in text.split(",")]
            if parts[0] not in LOOP_DIMS:
                reader.fail(f"{where}[{i}]", f"unknown loop dimension {parts[0]!r}; use one of {list(LOOP_DIMS)}")
            if len(parts) > 1:
                reader.integer(int(parts[1]) if parts[1].isdigit() else parts[1], f"{where}[{i}]", minimum=1)
            loops.append(parts[0])
        dataflow[str(dim)] = tuple(loops)
    return dataflow


def _with_mapping_dataflow(core: Core, mapping: str | Path | dict[str, Any] | list[Any]) -> Core:
    label = "mapping"
    if isinstance(mapping, (str, Path)):
        label = Path(mapping).name
        mapping = read_document(Path(mapping))
    reader = FieldReader(label)
    entries = mapping if isinstance(mapping, list) else [mapping]
    chosen = None
    for entry in entries:
        if isinstance(entry, dict) and entry.get("name", "default") == "default":
            chosen = entry
            break
    if chosen is None:
        reader.fail("", "no entry named 'default' with a spatial_mapping")
    dataflow = _read_dataflows(chosen.get("spatial_mapping"), reader, list(core.operational_array.sizes), "spatial_mapping")
    try:
        return Core.model_validate({**core.model_dump(), "dataflow": dataflow})
    except ValidationError as exc:
        raise validation_error_line(exc, label) from None


# ---------------------------------------------------------------------------------------------- write


def implied_ports(level: MemoryLevel) -> tuple[MemoryPort, ...]:
    """The ZigZag 3 ports implied by a level's widths, granularities and port counts.

    Reads of ``I``/``W`` (``tl``) and writes from above (``fh``) use port 1; an output also reads
    towards the higher level (``th``) and is written from below (``fl``), on port 2 where there is one.
    With only read_write ports, a single port carries everything; with two or more, port 1 takes the
    writes and port 2 the reads (Stream's SIMD core).
    """
    if level.ports is not None:
        return level.ports
    r_min = level.min_r_granularity or level.r_bw
    w_min = level.min_w_granularity or level.w_bw
    ports: list[MemoryPort] = []
    if level.r_port or level.w_port:
        reads: list[list[tuple[str, str]]] = [[] for _ in range(max(level.r_port, 1))]
        writes: list[list[tuple[str, str]]] = [[] for _ in range(max(level.w_port, 1))]
        for operand in level.operands:
            reads[0].append((operand, "tl"))
            if operand == "O":
                reads[1 if len(reads) > 1 else 0].append((operand, "th"))
        for operand in level.operands:
            writes[0].append((operand, "fh"))
            if operand == "O":
                writes[1 if len(writes) > 1 else 0].append((operand, "fl"))
        if level.r_port == 0 or level.w_port == 0:  # the missing direction goes to the read_write port
            shared = reads if level.r_port == 0 else writes
            rw_alloc = shared[0]
            shared.clear()
        for i, alloc in enumerate(reads):
            ports.append(MemoryPort(name=f"r_port_{i + 1}", type="read", bandwidth_min=r_min, bandwidth_max=level.r_bw, allocation=tuple(alloc)))
        for i, alloc in enumerate(writes):
            ports.append(MemoryPort(name=f"w_port_{i + 1}", type="write", bandwidth_min=w_min, bandwidth_max=level.w_bw, allocation=tuple(alloc)))
        for i in range(level.rw_port):
            alloc = rw_alloc if (i == 0 and (level.r_port == 0 or level.w_port == 0)) else []
            ports.append(_rw_port(level, i, alloc))
        return tuple(ports)
    if level.rw_port == 1:
        alloc = []
        for operand in level.operands:
            alloc += [(operand, "fh"), (operand, "tl")] + ([(operand, "fl"), (operand, "th")] if operand == "O" else [])
        return (_rw_port(level, 0, alloc),)
    write_alloc = [(op, d) for op in level.operands for d in (("fh", "fl") if op == "O" else ("fh",))]
    read_alloc = [(op, d) for op in level.operands for d in (("tl", "th") if op == "O" else ("tl",))]
    return tuple(_rw_port(level, i, write_alloc if i == 0 else read_alloc if i == 1 else []) for i in range(level.rw_port))


def _rw_port(level: MemoryLevel, index: int, alloc: Sequence[tuple[str, str]]) -> MemoryPort:
    width = max(level.r_bw, level.w_bw)
    minimum = min(level.min_r_granularity or level.r_bw, level.min_w_granularity or level.w_bw)
    return MemoryPort(name=f"rw_port_{index + 1}", type="read_write", bandwidth_min=minimum, bandwidth_max=width, allocation=tuple(alloc))


def zigzag_core_dict(core: Core, stream_fields: bool = False) -> dict[str, Any]:
    """The ZigZag 3 hardware mapping of ``core``; ``stream_fields`` adds Stream's ``type`` and
    ``operator_types`` (which plain ZigZag rejects)."""
    dims = list(core.operational_array.sizes)
    data: dict[str, Any] = {"name": core.name}
    if stream_fields:
        data["type"] = "zigzag.offchip" if core.kind == CoreKind.OFFCHIP else "zigzag.compute"
    memories: dict[str, Any] = {}
    for level in core.memories:
        memories[level.name] = {
            "size": level.size_bits,
            "r_cost": level.r_cost,
            "w_cost": level.w_cost,
            "area": level.area,
            "latency": level.latency,
            "operands": [OPERAND_TO_ZIGZAG[op] for op in level.operands],
            "ports": [
                {
                    "name": port.name,
                    "type": port.type,
                    "bandwidth_min": port.bandwidth_min,
                    "bandwidth_max": port.bandwidth_max,
                    "allocation": [f"{OPERAND_TO_ZIGZAG[op]}, {direction}" for op, direction in port.allocation],
                }
                for port in implied_ports(level)
            ],
            "served_dimensions": list(level.served_dimensions),
        }
    data["memories"] = memories
    offchip = core.kind == CoreKind.OFFCHIP
    data["operational_array"] = {
        "unit_energy": core.operational_array.unit_energy_pj,
        "unit_area": core.operational_array.unit_area,
        "dimensions": dims,
        "sizes": [0 if offchip else core.operational_array.sizes[d] for d in dims],
    }
    if core.dataflow:
        data["dataflows"] = {
            dim: [f"{loop}, {core.operational_array.sizes[dim]}" for loop in loops] for dim, loops in core.dataflow.items()
        }
    if stream_fields and (core.supported_ops is not None or core.kind in (CoreKind.POOLING, CoreKind.SIMD)):
        names: list[str] = []
        for op in core.ops:
            names += [name for name in OPS_TO_ONNX[op] if name not in names]
        data["operator_types"] = names
    return data


def dump_zigzag_core(core: Core, path: str | Path | None = None, stream_fields: bool = False) -> str:
    """The ZigZag 3 YAML text of ``core``; also written to ``path`` when given."""
    text = yaml.safe_dump(zigzag_core_dict(core, stream_fields), sort_keys=False, default_flow_style=None, width=120)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
    return text


__all__ = [
    "ConfigError",
    "dump_zigzag_core",
    "implied_ports",
    "load_zigzag_core",
    "parse_zigzag_core",
    "zigzag_core_dict",
]
