"""The analytical cost backend: ZigZag's cost semantics in closed form, vectorised with numpy.

One pass evaluates many layers at once: every layer is expanded into a set of canonical temporal loop orders
(deduplicated per layer), each order is allocated to the memory hierarchy as ZigZag's LOMA allocator would
(innermost level first, the fitting prefix with the fewest accesses to the level above; the outermost level
takes the rest), access counts, energies, bandwidth stalls and on/off-loading are computed per (layer, order),
and each layer keeps its minimum-latency order (ties: minimum energy), which is ZigZag's ``opt="latency"``
criterion. The equations, the ZigZag details emulated and the measured agreement are in ``docs/cost-model.md``.

Modules, in the order a layer goes through them:

* ``loops``: loop dims, operand relevance, the canonical loop orders;
* ``plan``: a core pre-digested (array dims, dataflow, memory chains);
* ``layers``: layers as arrays (loop sizes, LOMA factors, geometry, precision);
* ``unroll``: spatial unrolling and the temporal loops and tile sizes it leaves;
* ``cases``: (layer, order) cases as arrays;
* ``temporal``: greedy temporal mapping of an order over one operand's memory levels;
* ``levels`` and ``transfers``: per-level tiles and windows; transfers with their energy, traffic and links;
* ``latency``: port stalls, spare-bandwidth borrowing, on-loading and off-loading;
* ``evaluate``: case expansion and the best-order pick; ``backend``: :class:`AnalyticalBackend`.
"""

from exitspace.cost.analytical.backend import ANALYTICAL_VERSION, AnalyticalBackend
from exitspace.cost.analytical.evaluate import evaluate_arrays
from exitspace.cost.analytical.layers import layer_loops, loop_factors
from exitspace.cost.analytical.loops import DIMS, ND, ORDERS, PSEUDO, RELEVANT, STORAGE
from exitspace.cost.analytical.plan import CorePlan, core_plan

__all__ = [
    "ANALYTICAL_VERSION",
    "AnalyticalBackend",
    "CorePlan",
    "DIMS",
    "ND",
    "ORDERS",
    "PSEUDO",
    "RELEVANT",
    "STORAGE",
    "core_plan",
    "evaluate_arrays",
    "layer_loops",
    "loop_factors",
]
