"""Exit rules: how the search draws a design's exit thresholds (``search.space.thresholds.mode``), the one owner
of their names. A mode is a function ``(draw, candidates, on) -> thresholds`` registered with :func:`mode`:
``draw(name)`` samples one named threshold from the grid, ``candidates`` are every candidate exit label and
``on`` the early exits switched on; it returns one threshold per exit in ``on``. Adding a rule is one function
here (and its test). A sample leaves at the first exit whose confidence reaches its threshold
(:mod:`exitspace.dynamic.exits`).
"""

from __future__ import annotations

from typing import Callable, Sequence

from exitspace.errors import ConfigError
from exitspace.registries import registrar

Draw = Callable[[str], float]
ThresholdMode = Callable[[Draw, Sequence[str], Sequence[str]], tuple[float, ...]]
MODES: dict[str, ThresholdMode] = {}
mode = registrar(MODES)
"""``@mode("name")`` registers a threshold mode under the name ``search.space.thresholds.mode`` uses."""


@mode("shared")
def shared(draw: Draw, candidates: Sequence[str], on: Sequence[str]) -> tuple[float, ...]:
    """One threshold for every exit (the paper's rule)."""
    value = draw("threshold")
    return tuple(value for _ in on)


@mode("per_exit")
def per_exit(draw: Draw, candidates: Sequence[str], on: Sequence[str]) -> tuple[float, ...]:
    """One threshold per candidate exit (drawn for every candidate, so a parameter keeps its meaning)."""
    values = {label: draw(f"threshold_{label}") for label in candidates}
    return tuple(values[label] for label in on)


def check_mode(name: str, where: str = "thresholds.mode") -> str:
    """``name`` if it is a threshold mode; else a one-line error naming ``where``."""
    if name not in MODES:
        raise ConfigError(f"{where}: unknown threshold mode {name!r}; use one of {list(MODES)}")
    return name
