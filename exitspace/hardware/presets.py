"""Named accelerator presets, shipped as ZigZag / Stream YAML files in ``exitspace/hardware/presets/``
(cores in ``cores/``): each file is one preset, named by its file name, described by its first line
(``# preset: ...``), its core kind read from the file. Adding one is adding its file.

Cores (each also usable as a single-core System of the same name):

* ``edge_tpu_like``: the reference paper's compute core (8 x 8 x 4 x 4 MACs, 32-bit registers).
* ``edge_tpu_like_zigzag``: ZigZag's bundled variant (8-bit weight, 16-bit output registers).
* ``tpu_like``, ``eyeriss_like``: ZigZag's bundled cores of those names.
* ``edge_tpu_pooling``, ``edge_tpu_simd``, ``edge_tpu_offchip``: the paper's special cores.

Systems: ``edge_tpu_quad``, the paper's quad-core accelerator (4 compute + pooling + SIMD + off-chip);
``stream_eenn_quad``, the same system exactly as the paper's Stream fork describes it (its 2d_mesh graph),
the one the ``stream`` cost profile reproduces the paper's figures on.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from exitspace.errors import ConfigError
from exitspace.hardware.model import Core, CoreKind, System

PRESET_DIR = Path(__file__).with_name("presets")

PRESET_LINE = "# preset: "
"""The first line of a preset file: ``# preset: <one-line description>`` (shown by ``exitspace hardware list``)."""


def _presets(directory: Path) -> dict[str, str]:
    """Name (file stem) -> description of the preset files in ``directory``: a new preset is one YAML file."""
    found = {}
    for path in sorted(directory.glob("*.yaml")):
        first = path.read_text().split("\n", 1)[0]
        found[path.stem] = first.removeprefix(PRESET_LINE).strip() if first.startswith(PRESET_LINE) else path.stem
    return found


CORE_PRESETS: dict[str, str] = _presets(PRESET_DIR / "cores")
SYSTEM_PRESETS: dict[str, str] = _presets(PRESET_DIR)


def preset_names() -> dict[str, list[str]]:
    """Known preset names by category."""
    return {"cores": sorted(CORE_PRESETS), "systems": sorted(SYSTEM_PRESETS)}


def is_preset(name: str) -> bool:
    """Whether ``name`` names a core or system preset."""
    return name in CORE_PRESETS or name in SYSTEM_PRESETS


def preset_path(name: str) -> Path:
    """The YAML file of a preset (a ZigZag core file or a Stream system file)."""
    if name in CORE_PRESETS:
        return PRESET_DIR / "cores" / f"{name}.yaml"
    if name in SYSTEM_PRESETS:
        return PRESET_DIR / f"{name}.yaml"
    raise unknown_preset(name)


def unknown_preset(name: str) -> ConfigError:
    """The error for a name that is neither a preset nor an existing file."""
    known = ", ".join(sorted(CORE_PRESETS) + sorted(SYSTEM_PRESETS))
    return ConfigError(f"hardware: unknown preset or missing file {name!r}; known presets: {known}")


@lru_cache(maxsize=None)
def preset_core(name: str, core_id: int = 0) -> Core:
    """A core preset by name."""
    from exitspace.hardware.zigzag_yaml import load_zigzag_core

    if name not in CORE_PRESETS:
        if name in SYSTEM_PRESETS:
            raise ConfigError(f"hardware: {name!r} is a system preset; use load_system, or name a core: {sorted(CORE_PRESETS)}")
        raise unknown_preset(name)
    return load_zigzag_core(preset_path(name), core_id=core_id)  # the kind from the file (type, operator_types)


@lru_cache(maxsize=None)
def preset_system(name: str) -> System:
    """A system preset by name; a core preset gives a single-core System of the same name."""
    from exitspace.hardware.stream_yaml import load_stream_system

    if name in SYSTEM_PRESETS:
        return load_stream_system(preset_path(name))
    core = preset_core(name)
    return System(name=name, cores=(core,), offchip_core_id=core.id if core.kind == CoreKind.OFFCHIP else None)
