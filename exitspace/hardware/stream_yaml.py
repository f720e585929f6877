"""Read and write a multi-core system in Stream's accelerator YAML schema.

Read are Stream's two file-based dialects:

* current (Stream >= mid 2025): ``cores: {id: core file or inline core}``, ``offchip_core_id``,
  ``unit_energy_cost`` (default link energy), ``core_connectivity: [{type: link|bus, cores: [ids],
  bandwidth, unit_energy_cost?}]``; ``core_coordinates`` and the other costing annotations are accepted
  and not kept.
* Stream 2024: ``cores: {id: file}``, ``offchip_core: file`` (it gets id max + 1), ``core_connectivity:
  ["0, 1", ...]`` with one top-level ``bandwidth`` and ``unit_energy_cost``. As in that Stream, the
  off-chip core reaches every core over one shared medium as wide as its memory's read port; here it
  becomes a bus named ``offchip``.

Written is the current dialect: one ``<name>.yaml`` and a ``cores/`` folder with one ZigZag file per
distinct core. Mapping: a ``link`` -> one :class:`Link`; a ``bus`` over cores S -> one Link per pair of
S, all with ``bus="bus<i>"`` (they share one medium); ``unit_energy_cost`` <-> ``energy_per_bit_pj``.
Core file paths resolve relative to the system file (``./x.yaml``, ``cores/x.yaml``), and a bare name
is looked for in ``cores/`` next to it first, then next to it.
"""

from __future__ import annotations

import re
from collections import Counter
from itertools import combinations
from pathlib import Path
from typing import Any, cast

import yaml
from pydantic import ValidationError

from exitspace.files import atomic_write_text, safe_file_name
from exitspace.hardware._fields import FieldReader, read_document, validation_error_line
from exitspace.hardware.model import Core, CoreKind, Link, System
from exitspace.hardware.zigzag_yaml import parse_zigzag_core, zigzag_core_dict


UNLIMITED_BANDWIDTH = 2**31 - 1
"""Stand-in for Stream 2024's infinite-bandwidth SIMD links (bits per cycle)."""


def is_stream_system(data: Any) -> bool:
    """Whether a parsed document looks like a Stream system file (cores given as a mapping, or the
    2024 ``graph`` dialect with a list of core files)."""
    if not isinstance(data, dict):
        return False
    if isinstance(data.get("graph"), dict) and isinstance(data.get("cores"), list):
        return True
    return isinstance(data.get("cores"), dict) and (
        "core_connectivity" in data or "offchip_core" in data or "offchip_core_id" in data
    )


def load_stream_system(path: str | Path) -> System:
    """Read a Stream system file and the core files it names."""
    path = Path(path)
    data = read_document(path, strict=True)
    return parse_stream_system(data, path.name, path.parent)


def parse_stream_system(data: Any, label: str, base_dir: Path) -> System:
    """Build a System from a parsed Stream system mapping; ``base_dir`` resolves core file paths."""
    reader = FieldReader(label)
    data = reader.mapping(data, "")
    name = reader.string(reader.get(data, "name", ""), "name")
    if isinstance(data.get("graph"), dict) and isinstance(data.get("cores"), list):
        return _parse_graph_dialect(data, reader, name, base_dir)
    cores_data = reader.mapping(reader.get(data, "cores", ""), "cores")
    if not cores_data:
        reader.fail("cores", "needs at least one core")
    offchip_id: int | None = None
    if data.get("offchip_core_id") is not None:
        offchip_id = reader.integer(data["offchip_core_id"], "offchip_core_id", minimum=0)
    entries: list[tuple[int, Any, str]] = []
    for key, entry in cores_data.items():
        core_id = reader.integer(key, f"cores.{key}", minimum=0)
        entries.append((core_id, entry, f"cores.{key}"))
    legacy_offchip = data.get("offchip_core")
    if legacy_offchip is not None:
        offchip_id = max(core_id for core_id, _, _ in entries) + 1
        entries.append((offchip_id, legacy_offchip, "offchip_core"))
    if offchip_id is not None and offchip_id not in {core_id for core_id, _, _ in entries}:
        reader.fail("offchip_core_id", f"{offchip_id} is not a core id {sorted(c for c, _, _ in entries)}")
    cores = [
        _read_core(entry, core_id, where, base_dir, reader, CoreKind.OFFCHIP if core_id == offchip_id else None)
        for core_id, entry, where in entries
    ]
    ids = [core.id for core in cores]
    default_energy = reader.number(data.get("unit_energy_cost", 0.0), "unit_energy_cost")
    links = _read_connectivity(data, reader, ids, default_energy)
    if legacy_offchip is not None:
        offchip = next(core for core in cores if core.id == offchip_id)
        width = max(level.r_bw for level in offchip.memories)
        links += [
            Link(a=core_id, b=offchip_id, bandwidth=width, energy_per_bit_pj=default_energy, bus="offchip")
            for core_id in ids
            if core_id != offchip_id
        ]
    try:
        return System(name=name, cores=tuple(cores), links=tuple(links), offchip_core_id=offchip_id)
    except ValidationError as exc:
        raise validation_error_line(exc, label) from None


def _read_core(
    entry: Any, core_id: int, where: str, base_dir: Path, reader: FieldReader, kind: CoreKind | None
) -> Core:
    if isinstance(entry, dict):
        inline = FieldReader(f"{reader.source}: {where}")
        return parse_zigzag_core(entry, inline, core_id=core_id, kind=kind)
    file_name = reader.string(entry, where)
    core_path = resolve_core_path(file_name, base_dir)
    if core_path is None:
        reader.fail(where, f"core file {file_name!r} not found (looked next to the system file and in its cores/ folder)")
    core_data = read_document(core_path)
    core_reader = FieldReader(core_path.name)
    return parse_zigzag_core(core_reader.mapping(core_data, ""), core_reader, core_id=core_id, kind=kind, file_stem=core_path.stem)


def resolve_core_path(file_name: str, base_dir: Path) -> Path | None:
    """Where a ``cores:`` entry points: relative to the system file (a bare name: its ``cores/``
    folder first); a path like ``stream/inputs/.../x.yaml`` (Stream resolves those from its
    repository root) also relative to the system file's ancestors."""
    names = [file_name] if re.search(r"\.ya?ml$", file_name) else [file_name + ".yaml", file_name + ".yml", file_name]
    for name in names:
        candidates = [base_dir / name]
        if "/" not in name:
            candidates.insert(0, base_dir / "cores" / name)
        else:
            candidates.append(Path(name))
            if not name.startswith("."):
                candidates += [ancestor / name for ancestor in base_dir.resolve().parents]
        for candidate in candidates:
            if candidate.is_file():
                return candidate
    return None


def _parse_graph_dialect(data: dict[str, Any], reader: FieldReader, name: str, base_dir: Path) -> System:
    """Stream's 2024 dialect: ``cores`` a list (index = id) and ``graph: {type: 2d_mesh | bus, ...}``.

    As that Stream built it: the compute cores on a mesh (column-major placement) or one shared bus at
    ``bandwidth``; the pooling core linked to every compute core at ``bandwidth``; the SIMD core linked
    to every compute core and the pooling core with unlimited bandwidth and no energy; the off-chip
    core reaching every core over one shared medium as wide as its memory's port.
    """
    files = reader.seq(data["cores"], "cores", 1)
    graph = reader.mapping(data["graph"], "graph")
    kind = reader.string(reader.get(graph, "type", "graph"), "graph.type")
    if kind not in ("2d_mesh", "bus"):
        reader.fail("graph.type", f"must be 2d_mesh or bus (got {kind!r})")
    special: dict[str, int | None] = {}
    for key in ("pooling_core_id", "simd_core_id", "offchip_core_id"):
        value = graph.get(key)
        special[key] = None if value is None else reader.integer(value, f"graph.{key}", minimum=0)
        if special[key] is not None and cast(int, special[key]) >= len(files):  # cast: mypy does not narrow special[key]
            reader.fail(f"graph.{key}", f"{special[key]} is not a core id (0..{len(files) - 1})")
    kinds = {
        special["pooling_core_id"]: CoreKind.POOLING,
        special["simd_core_id"]: CoreKind.SIMD,
        special["offchip_core_id"]: CoreKind.OFFCHIP,
    }
    cores = [
        _read_core(entry, core_id, f"cores[{core_id}]", base_dir, reader, kinds.get(core_id))
        for core_id, entry in enumerate(files)
    ]
    bandwidth = reader.integer(reader.get(graph, "bandwidth", "graph"), "graph.bandwidth", strict_positive=True)
    energy = reader.number(graph.get("unit_energy_cost", 0.0), "graph.unit_energy_cost")
    compute = [core.id for core in cores if core.id not in kinds]
    links: list[Link] = []
    if kind == "2d_mesh":
        rows = reader.integer(reader.get(graph, "nb_rows", "graph"), "graph.nb_rows", strict_positive=True)
        cols = reader.integer(reader.get(graph, "nb_cols", "graph"), "graph.nb_cols", strict_positive=True)
        if rows * cols != len(compute):
            reader.fail("graph.nb_rows", f"nb_rows x nb_cols = {rows * cols} must equal the {len(compute)} compute cores")
        grid = [[compute[col * rows + row] for col in range(cols)] for row in range(rows)]
        pairs = [(grid[r][c], grid[r][c + 1]) for r in range(rows) for c in range(cols - 1)]
        pairs += [(grid[r][c], grid[r + 1][c]) for c in range(cols) for r in range(rows - 1)]
        links += [Link(a=a, b=b, bandwidth=bandwidth, energy_per_bit_pj=energy) for a, b in pairs]
    else:
        links += [Link(a=a, b=b, bandwidth=bandwidth, energy_per_bit_pj=energy, bus="bus") for a, b in combinations(compute, 2)]
    pool, simd, offchip = special["pooling_core_id"], special["simd_core_id"], special["offchip_core_id"]
    if pool is not None:
        links += [Link(a=core_id, b=pool, bandwidth=bandwidth, energy_per_bit_pj=energy) for core_id in compute]
    if simd is not None:
        peers = compute + ([pool] if pool is not None else [])
        links += [Link(a=core_id, b=simd, bandwidth=UNLIMITED_BANDWIDTH) for core_id in peers]
    if offchip is not None:
        width = max(level.r_bw for level in cores[offchip].memories)
        links += [
            Link(a=core.id, b=offchip, bandwidth=width, energy_per_bit_pj=energy, bus="offchip")
            for core in cores
            if core.id != offchip
        ]
    try:
        return System(name=name, cores=tuple(cores), links=tuple(links), offchip_core_id=offchip)
    except ValidationError as exc:
        raise validation_error_line(exc, reader.source) from None


def _read_connectivity(data: dict[str, Any], reader: FieldReader, ids: list[int], default_energy: float) -> list[Link]:
    raw = data.get("core_connectivity")
    if raw is None:
        return []
    links: list[Link] = []
    legacy_bw = data.get("bandwidth")
    for i, conn in enumerate(reader.seq(raw, "core_connectivity")):
        where = f"core_connectivity[{i}]"
        if isinstance(conn, str):  # Stream 2024: "0, 1" with one global bandwidth
            kind = "link"
            try:
                members = [int(part) for part in conn.split(",")]
            except ValueError:
                reader.fail(where, f"must list core ids like '0, 1' (got {conn!r})")
            bandwidth = reader.number(reader.get(data, "bandwidth", "", hint="the link width in bits per cycle") if legacy_bw is None else legacy_bw, "bandwidth")
            energy = default_energy
        else:
            conn = reader.mapping(conn, where)
            kind = reader.string(conn.get("type", "link"), f"{where}.type")
            if kind not in ("link", "bus"):
                reader.fail(f"{where}.type", f"must be link or bus (got {kind!r})")
            members = [reader.integer(c, f"{where}.cores[{j}]", minimum=0) for j, c in enumerate(
                reader.seq(reader.get(conn, "cores", where), f"{where}.cores", 2)
            )]
            bandwidth = reader.number(reader.get(conn, "bandwidth", where, hint="bits per cycle"), f"{where}.bandwidth")
            energy = reader.number(conn.get("unit_energy_cost", default_energy), f"{where}.unit_energy_cost")
        if bandwidth <= 0 or int(bandwidth) != bandwidth:
            reader.fail(f"{where}.bandwidth", f"must be a whole number of bits per cycle > 0 (got {bandwidth:g})")
        for j, member in enumerate(members):
            if member not in ids:
                reader.fail(f"{where}.cores[{j}]", f"core id {member} does not exist; known ids {ids}")
        if len(set(members)) != len(members):
            reader.fail(f"{where}.cores", f"lists a core twice (got {members})")
        if kind == "link" and len(members) != 2:
            reader.fail(f"{where}.cores", f"a link joins exactly two cores (got {members}); use type: bus for more")
        bus = f"bus{i}" if kind == "bus" else None
        for a, b in combinations(members, 2):
            links.append(Link(a=a, b=b, bandwidth=int(bandwidth), energy_per_bit_pj=energy, bus=bus))
    return links


# ---------------------------------------------------------------------------------------------- write


def stream_system_dict(system: System) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The Stream system mapping and its core files (file name -> ZigZag core mapping)."""
    files: dict[str, dict[str, Any]] = {}
    core_refs: dict[int, str] = {}
    for core in system.cores:
        core_data = zigzag_core_dict(core, stream_fields=True)
        stem = safe_file_name(core.name) or "core"
        file_name, suffix = f"{stem}.yaml", 1
        while file_name in files and files[file_name] != core_data:
            suffix += 1
            file_name = f"{stem}_{suffix}.yaml"
        files[file_name] = core_data
        core_refs[core.id] = f"./cores/{file_name}"
    energies = Counter(link.energy_per_bit_pj for link in system.links)
    default_energy = energies.most_common(1)[0][0] if energies else 0.0
    connectivity: list[dict[str, Any]] = []
    buses: dict[str, dict[str, Any]] = {}
    stars = _star_buses(system)
    for link in system.links:
        if link.bus is None or link.bus in stars:  # a star (Stream 2024's off-chip medium) is no bus among its leaves
            entry: dict[str, Any] = {"type": "link", "cores": [link.a, link.b], "bandwidth": link.bandwidth}
            if link.energy_per_bit_pj != default_energy:
                entry["unit_energy_cost"] = link.energy_per_bit_pj
            connectivity.append(entry)
            continue
        if link.bus not in buses:
            buses[link.bus] = {"type": "bus", "cores": [], "bandwidth": link.bandwidth}
            if link.energy_per_bit_pj != default_energy:
                buses[link.bus]["unit_energy_cost"] = link.energy_per_bit_pj
            connectivity.append(buses[link.bus])
        members = buses[link.bus]["cores"]
        members += [end for end in (link.a, link.b) if end not in members]
    data: dict[str, Any] = {"name": system.name, "cores": core_refs}
    if system.offchip_core_id is not None:
        data["offchip_core_id"] = system.offchip_core_id
    data["unit_energy_cost"] = default_energy
    data["core_connectivity"] = connectivity
    return data, files


def _star_buses(system: System) -> set[str]:
    """Buses whose links all meet one core without linking every pair (Stream 2024's off-chip medium): written
    as links, because a bus in the current dialect would join the leaves to each other too."""
    members: dict[str, list[Link]] = {}
    for link in system.links:
        if link.bus is not None:
            members.setdefault(link.bus, []).append(link)
    stars = set()
    for bus, links in members.items():
        ends = {end for link in links for end in (link.a, link.b)}
        if len(links) == len(ends) * (len(ends) - 1) // 2:
            continue  # every pair: a real bus
        if any(all(hub in (link.a, link.b) for link in links) for hub in ends):
            stars.add(bus)
    return stars


def dump_stream_system(system: System, directory: str | Path) -> Path:
    """Write ``system`` as ``<directory>/<name>.yaml`` plus ``<directory>/cores/*.yaml``; returns the system file."""
    directory = Path(directory)
    data, files = stream_system_dict(system)
    (directory / "cores").mkdir(parents=True, exist_ok=True)
    for file_name, core_data in files.items():
        atomic_write_text(directory / "cores" / file_name,
                          yaml.safe_dump(core_data, sort_keys=False, default_flow_style=None, width=120))
    stem = safe_file_name(system.name) or "system"
    target = directory / f"{stem}.yaml"
    parts = [
        yaml.safe_dump({key: value}, sort_keys=False, default_flow_style=None if key == "core_connectivity" else False, width=120)
        for key, value in data.items()
    ]
    atomic_write_text(target, "".join(parts))
    return target


__all__ = ["dump_stream_system", "is_stream_system", "load_stream_system", "parse_stream_system", "stream_system_dict"]
