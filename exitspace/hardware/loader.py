"""One entry point for hardware descriptions: a preset name or a file in any supported schema.

A ZigZag core file may come with its mapping file, ``CORE.yaml,MAPPING.yaml`` (ZigZag 3 keeps the spatial
dataflow in the mapping); as a system (what the commands cost), a ZigZag compute core that ends up with no
dataflow is refused in one line.

Files are recognised by content: a Stream system file (``cores`` is a mapping of ids), a ZigZag core
file (``memories`` is a mapping of names), or exitspace's own YAML/JSON (the pydantic ``Core`` or
``System`` dumped: ``memories`` / ``cores`` are lists).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from exitspace.errors import ConfigError
from exitspace.files import atomic_write_text
from exitspace.hardware._fields import FieldReader, read_document, validation_error_line
from exitspace.hardware.model import Core, CoreKind, System
from exitspace.hardware.presets import SYSTEM_PRESETS, is_preset, preset_core, preset_system, unknown_preset
from exitspace.hardware.stream_yaml import is_stream_system, parse_stream_system
from exitspace.hardware.zigzag_yaml import load_zigzag_core, parse_zigzag_core

HardwareSpec = str | Path | Core | System
FileKind = Literal["stream", "zigzag", "exitspace-core", "exitspace-system"]


def detect_kind(data: Any, label: str) -> FileKind:
    """Which schema a parsed hardware document follows."""
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: a hardware file must hold a mapping at the top (got {type(data).__name__})")
    if is_stream_system(data):
        return "stream"
    if isinstance(data.get("cores"), list):
        return "exitspace-system"
    if isinstance(data.get("cores"), dict):
        return "stream"
    if "memories" in data:
        array = data.get("operational_array")
        zigzag_array = isinstance(array, dict) and ("dimensions" in array or "unit_energy" in array)
        if isinstance(data["memories"], dict) or (zigzag_array and "id" not in data):
            return "zigzag"
        return "exitspace-core"
    raise ConfigError(
        f"{label}: not a hardware description; expected 'memories' (a core, ZigZag schema) or 'cores' (a system, Stream schema); give such a file"
    )


def _read(path: Path) -> tuple[Any, FileKind]:
    data = read_document(path, strict=path.suffix.lower() != ".json")
    return data, detect_kind(data, path.name)


def _read_lenient(path: Path) -> tuple[Any, FileKind]:
    # ZigZag core files may repeat a key (the bundled tpu_like.yaml does); systems may not.
    try:
        return _read(path)
    except ConfigError as exc:
        if "duplicate key" not in str(exc):
            raise
        data = read_document(path)
        kind = detect_kind(data, path.name)
        if kind != "zigzag":
            raise
        return data, kind


def _split_mapping(spec: str | Path) -> tuple[str | Path, Path | None]:
    """``CORE.yaml,MAPPING.yaml``: a ZigZag core file and the mapping file whose ``default`` entry's spatial
    mapping is the core's dataflow (ZigZag 3 keeps the dataflow there, not in the core file)."""
    if isinstance(spec, str) and "," in spec:
        core_file, _, mapping_file = spec.partition(",")
        mapping = Path(mapping_file.strip())
        if not mapping.is_file():
            raise ConfigError(f"hardware: mapping file {mapping_file.strip()!r} not found; give CORE.yaml,MAPPING.yaml")
        return core_file.strip(), mapping
    return spec, None


def _zigzag_core(data: Any, path: Path, core_id: int, kind: CoreKind | str | None, mapping: Path | None) -> Core:
    """A ZigZag core file's core, its dataflow from the mapping file where given."""
    reader = FieldReader(path.name)
    core = parse_zigzag_core(data, reader, core_id=core_id, kind=kind, file_stem=path.stem)
    if mapping is not None:
        core = load_zigzag_core(data, core_id=core_id, kind=core.kind, mapping=mapping, source_name=path.name)
    return core


def _require_dataflow(core: Core, path: Path) -> None:
    """One-line refusal of a compute core that names no spatial dataflow (costed, it would unroll one loop on
    one array dimension: 32 of tpu_like's 1024 PEs)."""
    if core.kind == CoreKind.COMPUTE and not core.dataflow:
        raise ConfigError(
            f"{path.name}: core {core.name!r} names no spatial dataflow ('dataflows:'); give its ZigZag mapping file "
            f"as --hardware {path},MAPPING.yaml or add dataflows to the core"
        )


def _resolve(spec: str | Path) -> Path | None:
    path = Path(spec)
    if path.is_file():
        return path
    if isinstance(spec, str) and is_preset(spec):
        return None
    if path.suffix.lower() in (".yaml", ".yml", ".json") or "/" in str(spec):
        raise ConfigError(f"{spec}: file not found; give the path of a hardware YAML/JSON file or a preset name")
    raise unknown_preset(str(spec))


def load_core(spec: HardwareSpec, core_id: int | None = None, kind: CoreKind | str | None = None) -> Core:
    """A core from a preset name, a ZigZag core file, exitspace's core YAML/JSON, or a system file
    (then ``core_id`` picks the core; without it the system must have exactly one compute core)."""
    if isinstance(spec, Core):
        return spec
    if isinstance(spec, System):
        return _pick_core(spec, core_id, spec.name)
    spec, mapping = _split_mapping(spec)
    path = _resolve(spec)
    if path is None:
        if str(spec) in SYSTEM_PRESETS:
            return _pick_core(preset_system(str(spec)), core_id, str(spec))
        core = preset_core(str(spec))
        return core if core_id is None else core.model_copy(update={"id": core_id})
    data, file_kind = _read_lenient(path)
    if file_kind == "zigzag":
        return _zigzag_core(data, path, core_id or 0, kind, mapping)
    if file_kind == "exitspace-core":
        core = _validate(Core, data, path.name)
        return core if core_id is None else core.model_copy(update={"id": core_id})
    system = _system_from(data, file_kind, path)
    return _pick_core(system, core_id, path.name)


def load_system(spec: HardwareSpec) -> System:
    """A system from a preset name, a Stream system file, exitspace's system YAML/JSON, or any core
    (file or preset), which becomes a single-core system of the same name."""
    if isinstance(spec, System):
        return spec
    if isinstance(spec, Core):
        return _single(spec)
    whole = spec
    spec, _ = _split_mapping(spec)
    path = _resolve(spec)
    if path is None:
        return preset_system(str(spec))
    data, file_kind = _read_lenient(path)
    if file_kind in ("zigzag", "exitspace-core"):
        system = _single(load_core(whole if isinstance(whole, str) else path))
        if file_kind == "zigzag":
            _require_dataflow(system.cores[0], path)
    else:
        system = _system_from(data, file_kind, path)
    unbacked = system.unbacked_core()
    if unbacked is not None:
        raise ConfigError(f"{path.name}: core {unbacked.name!r} has no off-chip memory level (e.g. DRAM) and the system "
                          "no off-chip core, so tensors larger than its on-chip memories have nowhere to live; add a "
                          "DRAM level holding I1, I2 and O as its outermost memory")
    return system


def _system_from(data: Any, file_kind: FileKind, path: Path) -> System:
    if file_kind == "stream":
        return parse_stream_system(data, path.name, path.parent)
    return _validate(System, data, path.name)


def _single(core: Core) -> System:
    return System(name=core.name, cores=(core,), offchip_core_id=core.id if core.kind == CoreKind.OFFCHIP else None)


def _pick_core(system: System, core_id: int | None, label: str) -> Core:
    if core_id is not None:
        try:
            return system.core(core_id)
        except KeyError:
            raise ConfigError(f"{label}: core id {core_id} does not exist; known ids {[c.id for c in system.cores]}") from None
    compute = system.cores_of(CoreKind.COMPUTE)
    if len(system.cores) == 1:
        return system.cores[0]
    if compute and all(c.model_dump(exclude={"id"}) == compute[0].model_dump(exclude={"id"}) for c in compute):
        return compute[0]  # identical compute cores: any one describes them all
    raise ConfigError(f"{label}: holds {len(system.cores)} cores; pick one with core_id from {[c.id for c in system.cores]}")


def _validate(model: type[Core] | type[System], data: Any, label: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error_line(exc, label) from None


def dump_native(obj: Core | System, path: str | Path | None = None) -> str:
    """exitspace's own format: the pydantic model as YAML (``.json`` paths get JSON)."""
    data = obj.model_dump(mode="json", exclude_defaults=True)
    data.setdefault("name", obj.name)
    is_json = path is not None and str(path).lower().endswith(".json")
    text = json.dumps(data, indent=2) if is_json else yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=120)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
    return text


__all__ = ["detect_kind", "dump_native", "load_core", "load_system"]
