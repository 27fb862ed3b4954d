"""The IR: a region tree (structure, for rewrites and emission) lowered to a networkx DAG."""
from .graph import MorphGraph, OpInst, Region, TensorType

__all__ = ["MorphGraph", "OpInst", "Region", "TensorType"]
