"""Greedy temporal mapping of a loop order over one operand's memory levels, as ZigZag's LOMA allocator does.

(ZigZag calls this "allocation"; in exitspace, an allocation is the mapping stage's layers-to-cores assignment.)

Innermost level first, each level keeps the prefix of the order with the fewest accesses to the level above;
the loop that crosses the capacity may add part of itself; the outermost level takes the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from exitspace.cost.analytical.cases import CaseArrays
from exitspace.cost.analytical.footprint import footprint
from exitspace.cost.analytical.loops import ND, OUTPUT_IRRELEVANT, PSEUDO
from exitspace.cost.analytical.plan import OperandView


@dataclass(frozen=True)
class TemporalMapping:
    """One operand's temporal loops per memory level."""

    alloc: np.ndarray  # (nlev, N, ND) temporal loop sizes allocated to each level
    ambiguous: np.ndarray  # (N,) a smaller register tile was also possible at some capacity boundary


@dataclass(frozen=True)
class _LevelFill:
    """The level being filled, per case: what lies below it and how much room it has."""

    cum: np.ndarray  # (N, ND) temporal loops already below this level
    rem: np.ndarray  # (N, ND) temporal loops not yet allocated
    sp: np.ndarray  # (N, ND) fractional spatial unroll served up to this level
    stride: np.ndarray  # (N, 4) see footprint()
    bits: np.ndarray  # (N,) bits per element at this level
    cap: np.ndarray  # (N,) bits free at this level

    def take(self, rows: np.ndarray) -> _LevelFill:
        """The same for a subset of the cases."""
        return _LevelFill(
            self.cum[rows], self.rem[rows], self.sp[rows], self.stride[rows], self.bits[rows], self.cap[rows]
        )


def map_temporal_loops(case: CaseArrays, view: OperandView, used_bits: dict[int, np.ndarray]) -> TemporalMapping:
    """Allocate each case's loop order to ``view``'s levels.

    ``used_bits`` (per memory index, bits claimed by the operands allocated before) limits each level's room;
    this operand's claims are added to it.
    """
    n = case.n
    nlev = len(view.chain)
    alloc = np.ones((nlev, n, ND))
    rem = case.temporal.copy()
    cum = np.ones((n, ND))
    ambiguous = np.zeros(n, dtype=bool)
    served_so_far: list[int] = []
    for m, lvl in enumerate(view.chain):
        served_so_far = served_so_far + view.first_served[m]
        if m == nlev - 1:
            alloc[m] = rem
            break
        cap = lvl.mem.size_bits - used_bits.get(lvl.index, np.zeros(n))
        sp = case.spatial.of(served_so_far, "frac")
        fill = _LevelFill(cum, rem, sp, case.stride, _level_bits(case, view, m, rem), cap)
        cum, level_ambiguous = _fill_level(case, view.operand, fill)
        ambiguous |= level_ambiguous
        rem = fill.rem / (cum / fill.cum)
        alloc[m] = cum / fill.cum
        # bits this operand occupies at this memory (for operands sharing it later)
        fp_here = footprint(view.operand, cum * sp, case.stride)
        bits_here = fp_here * fill.bits
        used_bits[lvl.index] = used_bits.get(lvl.index, np.zeros(n)) + bits_here
    return TemporalMapping(alloc, ambiguous)


def _level_bits(case: CaseArrays, view: OperandView, m: int, rem: np.ndarray) -> np.ndarray:
    """Bits per element of the operand at level ``m`` while ``rem`` is still unallocated."""
    if not view.is_output:
        return case.prec[view.operand]
    sp_later = case.spatial.of(view.served_above(m), "int")
    sp_above_ir = np.any(sp_later[:, OUTPUT_IRRELEVANT] > 1, axis=1)
    # ZigZag sizes outputs at partial-sum width while any reduction loop is still unallocated
    partial_here = np.any(rem[:, OUTPUT_IRRELEVANT] > 1, axis=1) | sp_above_ir
    return np.where(partial_here, case.prec["Op"], case.prec["Of"])


def _fill_level(case: CaseArrays, operand: str, fill: _LevelFill) -> tuple[np.ndarray, np.ndarray]:
    """The loops at and below the level (N, ND), and where a smaller crossing tile was possible (N,).

    ZigZag's allocator keeps the prefix of the order with the fewest accesses to the level above (remaining
    iterations x tile size; ties: the longer prefix). All prefixes at once: prefix j holds the first j loops of
    the order; the loop that crosses the capacity may add part of itself.
    """
    cum_p, t_ord = _prefix_products(case, fill)
    fp_p = footprint(operand, cum_p * fill.sp[:, None, :], fill.stride[:, None, :], truncate=True)
    fit_p = fp_p * fill.bits[:, None] <= fill.cap[:, None]
    n_fit = np.where(fit_p.all(axis=1), ND + 1, np.argmin(fit_p, axis=1))  # footprints only grow
    acc_p = np.prod(fill.rem[:, None, :] / (cum_p / fill.cum[:, None, :]), axis=2) * (fp_p * fill.bits[:, None])
    idx = np.arange(ND + 1)[None, :]
    acc_p = np.where((idx < n_fit[:, None]) | (idx == 0), acc_p, np.inf)
    part_acc, part_cum, ambiguous = _crossing_tile(case, operand, fill, cum_p, t_ord, n_fit)
    all_acc = np.concatenate([acc_p, part_acc[:, None]], axis=1)
    best = (ND + 1) - np.argmin(all_acc[:, ::-1], axis=1)  # the last (longest) minimum
    cum = np.where((best == ND + 1)[:, None], part_cum, cum_p[case.rows, np.minimum(best, ND)])
    return cum, ambiguous


def _prefix_products(case: CaseArrays, fill: _LevelFill) -> tuple[np.ndarray, np.ndarray]:
    """(N, ND + 1, ND) the loops below the level with each prefix of the order added, and (N, ND) the remaining
    loop sizes in order."""
    rows, order = case.rows, case.order
    t_ord = fill.rem[rows[:, None], order]  # (N, ND) remaining loop sizes in order
    cum_p = np.empty((case.n, ND + 1, ND))
    cum_p[:, 0] = fill.cum
    for j in range(ND):
        cum_p[:, j + 1] = cum_p[:, j]
        cum_p[rows, j + 1, order[:, j]] *= t_ord[:, j]
    return cum_p, t_ord


def _crossing_tile(
    case: CaseArrays, operand: str, fill: _LevelFill, cum_p: np.ndarray, t_ord: np.ndarray, n_fit: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Part of the loop crossing the capacity kept at the level: its accesses (inf: none), the loops below
    the level with it, and where a smaller part than the one taken was possible.

    Each distinct order runs first with the largest fitting part, then (``case.split_small``) with the
    smallest one.
    """
    part_acc = np.full(case.n, np.inf)
    part_cum = fill.cum.copy()
    ambiguous = np.zeros(case.n, dtype=bool)
    pos = np.clip(n_fit - 1, 0, ND - 1)  # order position of the loop crossing the capacity
    r_cross = t_ord[case.rows, pos]
    partial_rows = (n_fit >= 1) & (n_fit <= ND) & (r_cross > 1)
    if not partial_rows.any():
        return part_acc, part_cum, ambiguous
    sel = np.nonzero(partial_rows)[0]
    sub = fill.take(sel)
    bsel = cum_p[sel, n_fit[sel] - 1]
    dsel = case.order[sel, pos[sel]]
    cand = _candidate_parts(case, sel, dsel, r_cross[sel])
    fitting = np.where(_fits(operand, sub, bsel, dsel, cand), cand, 1.0)
    largest = fitting.max(axis=1)
    smallest = np.where(fitting > 1, fitting, np.inf).min(axis=1)
    smallest = np.where(np.isfinite(smallest), smallest, 1.0)
    take = np.where(case.split_small[sel], smallest, largest)
    ambiguous[sel] = smallest < largest
    pc = bsel.copy()
    pc[np.arange(len(sel)), dsel] *= take
    prem = sub.rem / (pc / sub.cum)
    pacc = np.prod(prem, axis=1) * (footprint(operand, pc * sub.sp, sub.stride, truncate=True) * sub.bits)
    part_acc[sel] = np.where(take > 1, pacc, np.inf)
    part_cum[sel] = pc
    return part_acc, part_cum, ambiguous


def _candidate_parts(case: CaseArrays, sel: np.ndarray, dsel: np.ndarray, remaining: np.ndarray) -> np.ndarray:
    """(k, D) the parts of loop ``dsel`` a level may take: products of its LOMA factors (of the whole loop
    where the order keeps a pseudo loop merged) that divide the ``remaining`` loop size; 1 elsewhere."""
    layer = case.case_layer[sel]
    cand = case.tile_sizes[layer, dsel]  # (k, D): products of the loop's LOMA factors
    for kk, (pseudo, real) in enumerate(PSEUDO):
        merged = (dsel == real) & ~case.splits[sel, kk]
        if merged.any():
            cand[merged] = case.tile_whole[layer[merged], kk]
    return np.where(np.mod(remaining[:, None], cand) == 0, cand, 1.0)


def _fits(operand: str, sub: _LevelFill, base: np.ndarray, dim: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """(k, D) whether the tile ``base`` with loop ``dim`` multiplied by each candidate fits the level."""
    k = len(base)
    pk = np.repeat(base[:, None, :], cand.shape[1], axis=1)  # (k, D, ND)
    pk[np.arange(k), :, dim] = pk[np.arange(k), :, dim] * cand
    fp = footprint(operand, pk * sub.sp[:, None, :], sub.stride[:, None, :], truncate=True)
    return fp * sub.bits[:, None] <= sub.cap[:, None]
