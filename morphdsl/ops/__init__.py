"""The op registry and every built-in op."""
from . import attention, basic, convex, elementwise, layers, seed  # noqa: F401  (registration)
from .registry import REGISTRY, Args, Facts, Op, get_op, register, user_ops

__all__ = ["REGISTRY", "Args", "Facts", "Op", "get_op", "register", "user_ops"]
