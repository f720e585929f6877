"""Latency beyond compute: bandwidth stalls per memory port, one-shot transfers borrowing spare bandwidth, and
the on-loading / off-loading links."""

from __future__ import annotations

import numpy as np

from exitspace.cost.analytical.loops import STORAGE
from exitspace.cost.analytical.transfers import LinkSide, OperandLinks, Transfer
from exitspace.hardware.model import Core

Port = tuple[int, str]  # (core.memories index, port name)


def port_of(core: Core, level: int, is_read: bool, high: bool = False) -> Port:
    """The port of memory ``level`` a read or write (towards the level above when ``high``) goes through."""
    mem = core.memories[level]
    if mem.r_port == 0 and mem.w_port == 0:
        # one shared port; with two or more, ZigZag's files put writes on one and reads on another
        return (level, ("r" if is_read else "w") if mem.rw_port >= 2 else "rw")
    if (mem.r_port if is_read else mem.w_port) == 0:
        return (level, "rw")
    count = mem.r_port if is_read else mem.w_port
    side = "h" if (high and count >= 2) else ""
    return (level, ("r" if is_read else "w") + side)


def port_bw(core: Core, level: int, is_read: bool) -> int:
    """Read or write bandwidth of memory ``level`` (bits per cycle)."""
    mem = core.memories[level]
    return mem.r_bw if is_read else mem.w_bw


def port_stalls(
    core: Core, transfers: list[Transfer], total: np.ndarray
) -> tuple[np.ndarray, dict[Port, np.ndarray]]:
    """The stall (the worst port's) and each port's average bandwidth demand, per case."""
    ports: dict[Port, list[Transfer]] = {}
    for t in transfers:
        ports.setdefault(port_of(core, t.level, t.is_read, t.toward_high), []).append(t)
    stall = np.zeros(len(total))
    avg_bw: dict[Port, np.ndarray] = {}
    for key, acts in ports.items():
        port_stall, avg_bw[key] = _port_stall(core, acts, total)
        stall = np.maximum(stall, port_stall)
    return stall, avg_bw


def _port_stall(core: Core, acts: list[Transfer], total: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stall cycles of one port and its average bandwidth demand.

    One active transfer stalls by its excess over its window; several add their excesses, and the cycles the
    others need beyond the union of their windows.
    """
    n = len(total)
    pos = np.zeros(n)
    neg_real = np.zeros(n)
    pos_allowed = np.zeros(n)
    window_sum = np.zeros(n)
    full_window = np.zeros(n, dtype=bool)
    n_active = np.zeros(n)
    single = np.zeros(n)
    bw_sum = np.zeros(n)
    for t in acts:
        active = (t.periods > 1) & (t.bits > 0)
        real = np.ceil(np.round(t.bits / port_bw(core, t.level, t.is_read), 9))
        s = (real - t.allowed) * (t.periods - 1)
        pos += np.where(active & (s > 0), s, 0.0)
        neg_real += np.where(active & (s <= 0), real * (t.periods - 1), 0.0)
        pos_allowed += np.where(active & (s > 0), t.allowed * (t.periods - 1), 0.0)
        window_sum += np.where(active, t.allowed * (t.periods - 1), 0.0)
        full_window |= active & (t.allowed >= t.period)
        n_active += active
        single = np.where(active, s, single)
        bw_sum += np.where(active, np.ceil(t.bits / np.maximum(t.period, 1)), 0.0)
    union = np.where(full_window, total, np.minimum(total, window_sum))
    multi = pos + np.maximum(0.0, neg_real + pos_allowed - union)
    port_stall = np.where(n_active > 1, multi, np.where(n_active == 1, single, 0.0))
    return port_stall, bw_sum


def link_latency(
    core: Core, inputs: list[OperandLinks], output: OperandLinks, compute_phase: np.ndarray,
    avg_bw: dict[Port, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """On-loading and off-loading cycles: a link costs its slower side's transfer."""
    chains = (*inputs, output)
    sides = [(side, ol.innermost_bits) for ol in chains for link in ol.links for side in link]
    cycles = iter(_side_cycles(core, sides, compute_phase, avg_bw))
    per_link = [[np.maximum(next(cycles), next(cycles)) for _ in ol.links] for ol in chains]
    onload = _onload(core, inputs, per_link[:-1], len(compute_phase))
    offload = np.zeros(len(compute_phase))
    for link_cycles in per_link[-1]:
        offload += link_cycles
    return onload, offload


def _side_cycles(
    core: Core, sides: list[tuple[LinkSide, np.ndarray]], compute_phase: np.ndarray, avg_bw: dict[Port, np.ndarray]
) -> list[np.ndarray]:
    """Cycles of each link side (given with its operand's innermost tile bits).

    One-shot transfers (period count 1) may borrow each port's spare bandwidth during compute, largest first,
    down to one innermost tile; periodic links cost one period's transfer.
    """
    cycles: list[np.ndarray] = []
    reducible: list[np.ndarray] = []
    by_port: dict[Port, list[int]] = {}
    for k, (side, min_bits) in enumerate(sides):
        bw = port_bw(core, side.level, side.is_read)
        real = np.ceil(np.round(side.bits / bw, 9))
        floor = np.minimum(real, np.ceil(np.round(min_bits / bw, 9)))
        cycles.append(real)
        reducible.append(np.where(side.periods <= 1, np.maximum(real - floor, 0.0), 0.0))
        by_port.setdefault(port_of(core, side.level, side.is_read, side.toward_high), []).append(k)
    for key, ks in by_port.items():
        level = key[0]
        bw = core.memories[level].r_bw if key[1].startswith("r") else core.memories[level].w_bw
        surplus = np.maximum(0.0, (bw - avg_bw.get(key, 0.0)) / bw * compute_phase)
        reduced = _borrow(np.stack([cycles[k] for k in ks]), np.stack([reducible[k] for k in ks]), surplus)
        for k, c in zip(ks, reduced):
            cycles[k] = c
    return cycles


def _borrow(reals: np.ndarray, reds: np.ndarray, surplus: np.ndarray) -> list[np.ndarray]:
    """Cycles of one port's transfers (rows of ``reals``) after the largest take, in turn, what they may
    (``reds``) of the port's ``surplus`` cycles."""
    n = reals.shape[1]
    cycles = list(reals)
    order_desc = np.argsort(-reals, axis=0, kind="stable")
    for pos in range(len(reals)):
        which = order_desc[pos]
        avail = reds[which, np.arange(n)]
        take = np.minimum(avail, surplus)
        surplus = surplus - take
        for e_idx in range(len(cycles)):
            cycles[e_idx] = np.where(which == e_idx, cycles[e_idx] - take, cycles[e_idx])
    return cycles


def _onload(core: Core, inputs: list[OperandLinks], per_link: list[list[np.ndarray]], n: int) -> np.ndarray:
    """On-loading: per operand, level pairs on private ports add up; two inputs combine as ZigZag does.

    ``per_link``: per input, the cycles of each of its links.
    """
    input_ops = [ol.operand for ol in inputs]
    shared_mem = {
        i for i, mem in enumerate(core.memories) if sum(STORAGE[o] in mem.operands for o in input_ops) > 1
    }
    individual: dict[str, np.ndarray] = {}
    halfshared: dict[str, np.ndarray] = {}
    fully: dict[str, np.ndarray] = {}
    for ol, link_cycles in zip(inputs, per_link):
        ind, half, shr = np.zeros(n), np.zeros(n), np.zeros(n)
        for link, longest in zip(ol.links, link_cycles):
            sh = [s.level in shared_mem for s in link]
            if all(sh):
                shr += longest
            elif not any(sh):
                ind += longest
            else:
                half = np.maximum(half, longest)
        individual[ol.operand], halfshared[ol.operand], fully[ol.operand] = ind, half, shr
    if len(input_ops) == 1:
        return individual[input_ops[0]] + halfshared[input_ops[0]] + fully[input_ops[0]]
    if input_ops:
        a, b = input_ops[0], input_ops[1]
        p1 = fully[a] + np.maximum(fully[b] + halfshared[b] + individual[b], halfshared[a] + individual[a])
        p2 = fully[b] + np.maximum(fully[a] + halfshared[a] + individual[a], halfshared[b] + individual[b])
        return np.minimum(p1, p2)
    return np.zeros(n)
