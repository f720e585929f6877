"""Workload stage: an (early-exit) network as a list of layers with loop sizes and precisions."""

from exitspace.workload.layer import Layer, OpType, Precision, Workload

__all__ = ["Layer", "OpType", "Precision", "Workload"]
