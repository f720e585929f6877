"""Tile footprints: how many elements of an operand a set of loops touches."""

from __future__ import annotations

import numpy as np

from exitspace.cost.analytical.loops import B, C, C2, FX, FY, G, K, OX, OY, OY2


def footprint(operand: str, p: np.ndarray, stride: np.ndarray, truncate: bool = False) -> np.ndarray:
    """Elements of ``operand`` touched by loops with per-dim products ``p`` (..., ND).

    ``stride`` (..., 4) holds x stride, y stride and the layer's whole input width and height (padding removed),
    which caps a tile's input extent as in ZigZag. ``truncate``: the input's row/column loops are truncated to
    integers first, as ZigZag's memory allocator sizes tiles (fractional unrolls make tiles look smaller).
    """
    wide = p.shape[-1] > 8
    c = p[..., C] * p[..., C2] if wide else p[..., C]
    oy = p[..., OY] * p[..., OY2] if wide else p[..., OY]
    # products in the order of ZigZag's equation indices (W[g][k][c][fy][fx], O[b][g][k][oy][ox],
    # I[b][g][c][iy][ix]): its allocator compares such products exactly, so rounding decides near-ties
    if operand == "W":
        return p[..., G] * p[..., K] * c * p[..., FY] * p[..., FX]
    if operand == "O":
        return p[..., B] * p[..., G] * p[..., K] * oy * p[..., OX]
    if operand == "I2":
        return p[..., B] * p[..., G] * oy * p[..., OX]
    if operand == "IP":  # pooling input: no channel loop of its own (see loops.RELEVANT)
        c = 1.0
    ox, fx, fy = p[..., OX], p[..., FX], p[..., FY]
    if truncate:
        ox, oy, fx, fy = np.floor(ox + 1e-9), np.floor(oy + 1e-9), np.floor(fx + 1e-9), np.floor(fy + 1e-9)
    ix = np.minimum(_unique_indices(stride[..., 0], ox, fx), stride[..., 2])
    iy = np.minimum(_unique_indices(stride[..., 1], oy, fy), stride[..., 3])
    return p[..., B] * p[..., G] * c * iy * ix


def _unique_indices(s: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distinct input positions s*i + j for i < a, j < b (unit dilation): the input extent of a tile."""
    return a * b - np.maximum(0.0, b - s) * (a - 1)
