"""Name -> function tables that a module fills with a decorator (confidence measures, threshold modes)."""

from __future__ import annotations

from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable[..., object])


def registrar(table: dict[str, F]) -> Callable[[str], Callable[[F], F]]:
    """A decorator factory: ``@register("name")`` puts the decorated function into ``table`` under ``name``."""

    def register(name: str) -> Callable[[F], F]:
        def add(function: F) -> F:
            table[name] = function
            return function

        return add

    return register
