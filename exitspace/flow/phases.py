"""Progress of the flow's phases, as the driver reports it (the CLI draws it)."""

from __future__ import annotations


class Phases:
    """Progress of the flow's phases; the default prints nothing."""

    def start(self, name: str, total: int | None = None) -> None:
        """A phase begins."""

    def update(self, name: str, done: int, total: int) -> None:
        """Progress inside a phase."""

    def done(self, name: str, message: str = "") -> None:
        """A phase ends."""

    def log(self, message: str) -> None:
        """A line of information."""
