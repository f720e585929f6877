"""Cost backends by name: "analytical" (default, built in) and "zigzag" (optional extra, imported lazily)."""

from __future__ import annotations

from exitspace.cost.base import CostBackend
from exitspace.errors import ConfigError

BACKENDS = ("analytical", "zigzag")


def get_backend(name: str = "analytical") -> CostBackend:
    """The backend called ``name``; a one-line ConfigError for an unknown name or a missing extra."""
    if name == "analytical":
        from exitspace.cost.analytical import AnalyticalBackend

        return AnalyticalBackend()
    if name == "zigzag":
        try:
            import zigzag  # noqa: F401
        except ImportError:
            raise ConfigError("backend 'zigzag' needs the zigzag extra: pip install -e '.[zigzag]'") from None
        try:
            from exitspace.cost.zigzag_backend import ZigZagBackend
        except ImportError as exc:
            raise ConfigError(f"backend 'zigzag': could not load exitspace.cost.zigzag_backend ({exc})") from None
        return ZigZagBackend()
    raise ConfigError(f"cost.backend: unknown backend {name!r}; use one of {list(BACKENDS)}")
