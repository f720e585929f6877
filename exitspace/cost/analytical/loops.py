"""Loop dimensions, the operands they index, and the canonical temporal loop orders the engine tries."""

from __future__ import annotations

import numpy as np

DIMS = ("B", "K", "G", "C", "OX", "OY", "FX", "FY")
B, K, G, C, OX, OY, FX, FY = range(8)
# pseudo loops: the smallest LOMA factor of OY's / C's temporal loop, so an order can move it apart from the rest
OY2 = 8
C2 = 9
ND = 10
PSEUDO = ((OY2, OY), (C2, C))
DIM_INDEX = {name: i for i, name in enumerate(DIMS)}

# Loop dimensions that index each operand ("I2" is the second input of an element-wise add).
RELEVANT: dict[str, tuple[int, ...]] = {
    "W": (K, G, C, FX, FY, C2),
    "I": (B, G, C, OX, OY, FX, FY, OY2, C2),
    "I2": (B, G, OX, OY, OY2),
    "IP": (B, G, OX, OY, FX, FY, OY2),  # a pooling input under the Stream profile's channel loop (C indexes nothing)
    "O": (B, K, G, OX, OY, OY2),
}
# Which core memory operand stores each layer operand (ZigZag: the second input of an add is memory operand I2,
# the one weights use).
STORAGE = {"W": "W", "I": "I", "I2": "W", "IP": "I", "O": "O"}
# the reduction loops: irrelevant to the output, so outputs stay partial sums while any of them is pending
OUTPUT_IRRELEVANT = [d for d in range(ND) if d not in RELEVANT["O"]]

# Canonical temporal loop orders, innermost loop first (a small stand-in for LOMA's permutation search). Kept:
# the orders that win on some layer of the golden sets and of MobileNetV2 / ResNet-20 on the four ZigZag cores.
ORDERS: tuple[tuple[int, ...], ...] = (
    (C, FX, FY, OY, OX, K, G, B),  # output stationary, reduction innermost
    (FX, FY, C, OY, OX, K, G, B),
    (K, C, FX, FY, OY, OX, G, B),  # input reuse innermost
    (OY, OX, C, FX, FY, K, G, B),  # weight stationary
    (C, FX, FY, G, OY, OX, K, B),
    (OY2, C, FX, FY, OX, K, OY, G, B),  # a factor of OY innermost (weights reused twice or more)
    (OY2, C, FX, FY, K, OX, OY, G, B),
    (OY2, C, FX, FY, OX, OY, K, G, B),
    (OY2, FX, FY, G, OX, OY, C, K, B),
    (OY2, FY, FX, OX, G, OY, C, K, B),
    (OY2, FY, FX, C, OX, K, OY, G, B),
    (C2, FX, FY, K, OY2, OY, OX, C, G, B),  # part of C innermost, the rest outermost
    (C2, FX, FY, OY2, OY, OX, K, C, G, B),
    (C2, FX, FY, K, OX, OY, OY2, C, G, B),
    (C, FY, OY, OX, K, FX, G, B),  # kernel columns outermost: big-kernel layers whose weights overflow
    (C, FY, OY, OX, FX, K, G, B),
    (C, FX, FY, OX, K, OY, G, B),
    (K, OX, FX, FY, OY, C, G, B),
    (K, C, FY, OY, OX, FX, G, B),  # low precision: several outputs per output register
)


def with_pseudo(order: tuple[int, ...]) -> tuple[int, ...]:
    """Orders that do not place a pseudo loop keep its loop whole: the pseudo loop (the loop's smallest factor)
    sits right inside it."""
    for pseudo, real in PSEUDO:
        if pseudo not in order:
            i = order.index(real)
            order = order[:i] + (pseudo,) + order[i:]
    return order


ORDER_ARRAY = np.array([with_pseudo(o) for o in ORDERS], dtype=np.int64)
# which orders place each pseudo loop themselves; the others keep that loop whole (pseudo loop of size 1)
ORDER_SPLITS = np.array([[pseudo in o for pseudo, _ in PSEUDO] for o in ORDERS], dtype=bool)
