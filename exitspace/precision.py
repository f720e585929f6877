"""The precision vocabulary, its one owner: bit widths, (backbone bits, exit bits) pairs, their names and parsers.

A pair is written ``BACKBONE/EXITS``: ``"8/4"``; 32 bits is float and may be written ``fp32`` / ``float``
(``"fp32/8"``); where a command allows it, one width means both (``"8"`` -> 8/8). Exit tables are trained, and the search runs, at
:data:`TRAINED_BITS`; the cost model takes any width in :data:`COST_BITS`.
"""

from __future__ import annotations

from typing import Sequence

from exitspace.errors import ConfigError

FLOAT_BITS = 32
TRAINED_BITS: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8, FLOAT_BITS)
"""Bit widths of quantization-aware training, hence of exit tables and of the search's precision pairs."""
COST_BITS = range(1, FLOAT_BITS + 1)
"""Bit widths the cost model accepts (workload, profile, sweep, evaluate)."""
FLOAT_NAMES = ("fp32", "float", "float32")

PrecisionPair = tuple[int, int]


def check_bits(bits: int, where: str, allowed: Sequence[int] = COST_BITS) -> int:
    """``bits`` if it is one of ``allowed``; else a one-line ConfigError naming ``where``."""
    if bits not in allowed:
        choice = f"{allowed[0]}..{allowed[-1]}" if isinstance(allowed, range) else str(list(allowed))
        raise ConfigError(f"{where}: bit width {bits} is not supported; use one of {choice}")
    return int(bits)


def parse_bits(text: str, where: str) -> int:
    """``"8"`` -> 8, ``"fp32"`` / ``"float"`` -> 32 (not checked against a range)."""
    token = str(text).strip().lower()
    if token in FLOAT_NAMES:
        return FLOAT_BITS
    try:
        return int(token)
    except ValueError:
        raise ConfigError(f"{where}: {text!r} is not a bit width, e.g. 8 or fp32") from None


def parse_pair(text: str, where: str = "precision pair", allowed: Sequence[int] = TRAINED_BITS,
               one_means_both: bool = False) -> PrecisionPair:
    """``"8/4"`` or ``"FP32/8"`` (and ``"8"`` for 8/8 where ``one_means_both``) -> (backbone bits, exit bits),
    each one of ``allowed``."""
    parts = str(text).split("/")
    if len(parts) not in ((1, 2) if one_means_both else (2,)) or not all(part.strip() for part in parts):
        raise ConfigError(f"{where}: {text!r} is not BACKBONE/EXITS bit widths, e.g. 8/4 or 32/32")
    values = [parse_bits(part, where) for part in parts] * (3 - len(parts))
    return check_pair((values[0], values[1]), where, allowed)


def check_pair(pair: Sequence[int], where: str = "precision pair", allowed: Sequence[int] = TRAINED_BITS) -> PrecisionPair:
    """``pair`` as a (backbone bits, exit bits) tuple if both widths are ``allowed``; else a one-line ConfigError."""
    if len(pair) != 2:
        raise ConfigError(f"{where}: {list(pair)} is not [backbone bits, exit bits], e.g. [8, 8]")
    return check_bits(int(pair[0]), where, allowed), check_bits(int(pair[1]), where, allowed)


def pair_label(pair: Sequence[int]) -> str:
    """``(8, 4)`` -> ``"8/4"``, ``(32, 32)`` -> ``"FP32/FP32"``: the pair in design names, reports and results."""
    return "/".join("FP32" if int(b) == FLOAT_BITS else str(int(b)) for b in pair)


def pair_key(pair: Sequence[int]) -> str:
    """``(32, 32)`` -> ``"32/32"``: the pair as written in configs and in results.json's exit-table hashes."""
    return f"{int(pair[0])}/{int(pair[1])}"


def pair_slug(pair: Sequence[int]) -> str:
    """``(8, 4)`` -> ``"b8_e4"``: the pair in file and directory names."""
    return f"b{int(pair[0])}_e{int(pair[1])}"
