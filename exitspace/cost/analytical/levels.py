"""Per-level quantities of one allocated operand: tile sizes, refill periods, update windows, instances."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from exitspace.cost.analytical.cases import CaseArrays
from exitspace.cost.analytical.footprint import footprint
from exitspace.cost.analytical.loops import ND, OUTPUT_IRRELEVANT
from exitspace.cost.analytical.plan import OperandView


@dataclass(frozen=True)
class Elements:
    """Elements per instance of a memory for one transfer."""

    energy: np.ndarray  # at the fractional unroll (energy and traffic)
    latency: np.ndarray  # at the integer unroll ZigZag's latency side uses


@dataclass(frozen=True)
class Window:
    """Timing of one periodic transfer."""

    periods: np.ndarray  # period count
    period: np.ndarray  # cycles per period
    allowed: np.ndarray  # cycles allowed per period
    units: np.ndarray  # instances of the memory


@dataclass(frozen=True)
class LevelData:
    """Per level m of one operand's chain (lists indexed by m), per case."""

    cycles: np.ndarray  # (nlev, N) temporal iterations at levels <= m
    held: list[Elements]  # what level m holds (temporal <= m, spatial served <= m)
    below: list[Elements]  # what one refill of the level below fetches (temporal < m)
    units: list[np.ndarray]  # instances of level m
    psum: list[np.ndarray]  # outputs only: partial sums live at level m (nlev + 1 entries, the last False)
    stationary: np.ndarray  # inputs: iterations of the innermost level that re-read the same data; else 1
    top_irrelevant: list[np.ndarray]  # product of the outermost irrelevant loops at level m
    double_buffered: list[np.ndarray]  # level m holds at most half its capacity

    def low_window(self, m: int, total: np.ndarray) -> Window:
        """Transfers between level m and the level below (or the array)."""
        period = self.stationary if m == 0 else self.cycles[m - 1]
        allowed = (
            np.where(self.double_buffered[m - 1], period, period / self.top_irrelevant[m - 1]) if m > 0 else period
        )
        return Window(total / period, period, allowed, self.units[m])

    def high_window(self, m: int, total: np.ndarray) -> Window:
        """Transfers between level m and the level above."""
        period = self.cycles[m]
        allowed = np.where(self.double_buffered[m], period, period / self.top_irrelevant[m])
        return Window(total / period, period, allowed, self.units[m])


def level_data(
    case: CaseArrays, view: OperandView, array_dims: tuple[str, ...], alloc: np.ndarray,
    used_bits: dict[int, np.ndarray],
) -> LevelData:
    """Tile sizes, periods and update windows per level of ``view`` for the allocation ``alloc``."""
    n = case.n
    tcum = np.cumprod(alloc, axis=0)  # (nlev, N, 8) temporal products at levels <= m
    held: list[Elements] = []
    below: list[Elements] = []
    units = []
    served_so_far: list[int] = []
    for m, lvl in enumerate(view.chain):
        served_so_far = served_so_far + view.first_served[m]
        sp_f = case.spatial.of(served_so_far, "frac")
        sp_l = case.spatial.of(served_so_far, "lat")
        below_t = tcum[m - 1] if m > 0 else np.ones((n, ND))
        held.append(Elements(footprint(view.operand, tcum[m] * sp_f, case.stride, truncate=True),
                             footprint(view.operand, tcum[m] * sp_l, case.stride)))
        below.append(Elements(footprint(view.operand, below_t * sp_f, case.stride, truncate=True),
                              footprint(view.operand, below_t * sp_l, case.stride)))
        not_served = [a for a, dname in enumerate(array_dims) if dname not in lvl.served]
        units.append(np.prod(case.u_frac[:, not_served], axis=1) if not_served else np.ones(n))
    return LevelData(
        cycles=np.prod(tcum, axis=2),
        held=held,
        below=below,
        units=units,
        psum=_psum_flags(case, view, alloc) if view.is_output else [],
        stationary=_stationarity(case, view, alloc) if not view.is_output else np.ones(n),
        top_irrelevant=[_top_irrelevant(case, view, alloc[m]) for m in range(len(view.chain))],
        double_buffered=_double_buffered(view, used_bits, n),
    )


def _psum_flags(case: CaseArrays, view: OperandView, alloc: np.ndarray) -> list[np.ndarray]:
    """Partial outputs live at level m: reduction loops at levels >= m, or spatial reduction above m."""
    flags = []
    for m in range(len(view.chain)):
        t_ir = np.any(np.prod(alloc[m:], axis=0)[:, OUTPUT_IRRELEVANT] > 1, axis=1)
        later = view.served_above(m)
        s_ir = (np.any(case.spatial.of(later, "int")[:, OUTPUT_IRRELEVANT] > 1, axis=1) if later
                else np.zeros(case.n, bool))
        flags.append(t_ir | s_ir)
    flags.append(np.zeros(case.n, dtype=bool))
    return flags


def _stationarity(case: CaseArrays, view: OperandView, alloc: np.ndarray) -> np.ndarray:
    """Stationarity of the innermost level's reads (ZigZag: same data is no new access): the product of the
    irrelevant loops at the innermost level inside its first relevant one."""
    stat = np.ones(case.n)
    going = np.ones(case.n, dtype=bool)
    for j in range(ND):
        d = case.order[:, j]
        f = alloc[0, case.rows, d]
        is_irr = view.irrelevant[d]
        mult = going & is_irr & (f > 1)
        stat = np.where(mult, stat * f, stat)
        going = going & ~((~is_irr) & (f > 1))
    return stat


def _top_irrelevant(case: CaseArrays, view: OperandView, level_alloc: np.ndarray) -> np.ndarray:
    """Product of a level's outermost irrelevant loops (for the non-double-buffered update window)."""
    t = np.ones(case.n)
    going = np.ones(case.n, dtype=bool)
    for j in range(ND - 1, -1, -1):
        d = case.order[:, j]
        f = level_alloc[case.rows, d]
        is_irr = view.irrelevant[d]
        t = np.where(going & is_irr & (f > 1), t * f, t)
        going = going & ~((~is_irr) & (f > 1))
    return t


def _double_buffered(view: OperandView, used_bits: dict[int, np.ndarray], n: int) -> list[np.ndarray]:
    """Double buffering: the level holds at most half its capacity (the outermost level always does)."""
    nlev = len(view.chain)
    dbuf = []
    for m, lvl in enumerate(view.chain):
        occ = used_bits.get(lvl.index, np.zeros(n)) if m < nlev - 1 else np.zeros(n)
        dbuf.append(occ <= 0.5 * lvl.mem.size_bits)
    return dbuf
