"""Per-operand memory transfers: their energy and traffic, and the links that on-load and off-load data."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from exitspace.cost.analytical.cases import CaseArrays
from exitspace.cost.analytical.levels import Elements, LevelData, Window
from exitspace.cost.analytical.plan import ChainLevel, OperandView


@dataclass
class Transfer:
    """One periodic data movement of one operand at one memory (per instance of that memory)."""

    level: int  # core.memories index
    is_read: bool
    toward_high: bool  # direction relative to this memory: True = to/from the level above
    operand: str
    bits: np.ndarray  # bits per period per instance
    periods: np.ndarray  # period count
    period: np.ndarray  # cycles per period
    allowed: np.ndarray  # cycles allowed per period
    units: np.ndarray  # instances


@dataclass
class Ledger:
    """What the transfers of one case run add up to: energy and traffic per memory and operand, and the
    transfers themselves (for the port stalls)."""

    mem_energy: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    mem_traffic: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    transfers: list[Transfer] = field(default_factory=list)


@dataclass(frozen=True)
class LinkSide:
    """One end of a link between two levels of a chain."""

    level: int  # core.memories index
    is_read: bool
    bits: np.ndarray  # bits per instance
    periods: np.ndarray
    toward_high: bool


Link = tuple[LinkSide, LinkSide]


@dataclass(frozen=True)
class OperandLinks:
    """The links between consecutive levels of one operand's chain, innermost first."""

    operand: str
    links: list[Link]
    innermost_bits: np.ndarray  # bits one innermost tile holds (the floor of a one-shot transfer)


def record(
    ledger: Ledger, view: OperandView, level: ChainLevel, is_read: bool, toward_high: bool, bits_el: np.ndarray,
    elements: Elements, window: Window,
) -> None:
    """Book one transfer of ``view``'s operand at ``level``: accesses (at the memory's granularity), energy,
    traffic, and the transfer for the latency side."""
    mem = level.mem
    bits = elements.energy * bits_el
    bw = mem.r_bw if is_read else mem.w_bw
    gran = (mem.min_r_granularity if is_read else mem.min_w_granularity) or bw
    gran = min(gran, bw)
    accesses = np.floor(np.ceil(np.round(bits / gran, 9)) * (gran / bw) * window.periods * window.units + 1e-9)
    cost = mem.r_cost if is_read else mem.w_cost
    e = ledger.mem_energy.setdefault(level.index, {})
    e[view.store] = e.get(view.store, 0.0) + accesses * cost
    t = ledger.mem_traffic.setdefault(level.index, {})
    t[view.store] = t.get(view.store, 0.0) + bits * window.periods * window.units
    ledger.transfers.append(
        Transfer(level.index, is_read, toward_high, view.operand, elements.latency * bits_el, window.periods,
                 window.period, window.allowed, window.units)
    )


def input_transfers(
    ledger: Ledger, case: CaseArrays, view: OperandView, levels: LevelData
) -> OperandLinks:
    """Book an input's reads towards the array and refills from above; its on-loading links."""
    p_in = case.prec[view.operand]
    chain = view.chain
    links: list[Link] = []
    for m, lvl in enumerate(chain):
        # reads towards the level below (or the array)
        record(ledger, view, lvl, True, False, p_in, levels.below[m], levels.low_window(m, case.total))
        if m < len(chain) - 1:
            high = levels.high_window(m, case.total)
            record(ledger, view, lvl, False, True, p_in, levels.held[m], high)
            # on-loading link m <- m+1
            links.append((
                LinkSide(lvl.index, False, levels.held[m].latency * p_in, high.periods, True),
                LinkSide(chain[m + 1].index, True, levels.below[m + 1].latency * p_in, high.periods, False),
            ))
    return OperandLinks(view.operand, links, levels.held[0].latency * p_in)


def output_transfers(
    ledger: Ledger, case: CaseArrays, view: OperandView, levels: LevelData
) -> OperandLinks:
    """Book the output's writes from below and flushes upwards (with partial sums read back); its off-loading
    links."""
    chain = view.chain
    links: list[Link] = []
    for m, lvl in enumerate(chain):
        pbits_low = _output_bits(case, levels.psum[m])
        _record_with_psums(ledger, view, lvl, False, pbits_low, levels.psum[m], levels.below[m],
                           levels.low_window(m, case.total))
        if m < len(chain) - 1:
            high = levels.high_window(m, case.total)
            pbits_h = _output_bits(case, levels.psum[m + 1])
            _record_with_psums(ledger, view, lvl, True, pbits_h, levels.psum[m + 1], levels.held[m], high)
            links.append((
                LinkSide(lvl.index, True, levels.held[m].latency * pbits_h, high.periods, True),
                LinkSide(chain[m + 1].index, False, levels.below[m + 1].latency * pbits_h, high.periods, False),
            ))
    return OperandLinks(view.operand, links, levels.held[0].latency * _output_bits(case, levels.psum[0]))


def _output_bits(case: CaseArrays, psum: np.ndarray) -> np.ndarray:
    """Bits per output element: partial-sum width where ``psum``, else the final width."""
    return np.where(psum, case.prec["Op"], case.prec["Of"])


def _record_with_psums(
    ledger: Ledger, view: OperandView, level: ChainLevel, toward_high: bool, bits: np.ndarray, psum: np.ndarray,
    elements: Elements, window: Window,
) -> None:
    """Book outputs moving away from the array at ``level`` (written from below, or read to go up), then the
    partial sums moving back the other way (only where ``psum``)."""
    record(ledger, view, level, toward_high, toward_high, bits, elements, window)
    record(ledger, view, level, not toward_high, toward_high, np.where(psum, bits, 0.0), elements, window)
