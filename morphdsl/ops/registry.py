"""The op registry. Each op states, in one class: its arguments (a pydantic schema), its shape
rule, its parameters, how to build its module (or function), and its local facts for the
verifiers (curvature, monotonicity, sign, how it mixes positions and channels).

Growth rules register themselves against op names in `morphdsl.rewrites`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

Curv = Literal["constant", "affine", "convex", "concave", "unknown"]
Mono = Literal["incr", "decr", "none"]
Sign = Literal["nonneg", "nonpos", "unknown"]


class Args(BaseModel):
    """Base of op argument schemas: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Facts:
    """Local convexity facts of an op, as in CVXPY atoms.

    `mono` gives monotonicity per argument; `mono_nonneg` overrides it for an argument known to
    be nonnegative (e.g. square is increasing on x >= 0). `why` explains an `unknown` curvature.
    """

    curvature: Curv
    mono: tuple[Mono, ...] = ("none",)
    sign: Sign = "unknown"
    mono_nonneg: tuple[Mono, ...] | None = None
    mono_nonpos: tuple[Mono, ...] | None = None
    why: str = ""
    # an op that is only convex/affine when its first argument is affine (e.g. a product where
    # one factor is a constant is handled by the rule, not here)
    bilinear: bool = False
    divides: bool = False


class Op:
    """Base class. Subclasses set `name`, `Args`, and override what applies."""

    name: ClassVar[str]
    Args: ClassVar[type[Args]] = Args
    arity: ClassVar[int | None] = 1           # None: any number of inputs (joins)
    lanes_ok: ClassVar[bool] = False          # can run per lane inside a partition
    channels: ClassVar[str] = "elementwise"   # elementwise | lane | full | mixer
    positions: ClassVar[str] = "pointwise"    # pointwise | causal | noncausal
    functional: ClassVar[bool] = False        # compiled as call_function, not a module
    internal: ClassVar[bool] = False          # created by the elaborator, not written by users
    absorbs_scale: ClassVar[bool] = False     # widen_embed: can scale its output by 1/k (norms)
    doc: ClassVar[str] = ""

    # --- shapes
    def infer(self, a: dict, inputs: list, lanes: int | None) -> tuple[dict, Any]:
        """Resolve inferred arguments (e.g. input width) and return (resolved, output type)."""
        return dict(a), inputs[0]

    def param_shapes(self, r: dict) -> dict[str, tuple[int, ...]]:
        return {}

    def buffer_shapes(self, r: dict) -> dict[str, tuple[int, ...]]:
        return {}

    # --- building
    def build(self, r: dict):
        """The nn.Module for resolved args `r` (parametrized ops)."""
        raise NotImplementedError

    def function(self, r: dict):
        """The callable for a functional op: (*inputs) -> output."""
        raise NotImplementedError

    # --- facts
    def facts(self, r: dict) -> Facts:
        return Facts("unknown", why=f"{self.name} has no convexity facts")

    def channel_map(self, r: dict) -> str:
        """How channels flow, for lane isolation: elementwise | lane | full | mixer."""
        if r.get("lanes") and self.lanes_ok:
            return "lane"
        return self.channels

    def flops(self, r: dict) -> int:
        """Forward multiply-adds x2 per token (attention's T-dependent part is added separately)."""
        return 2 * sum(_prod(s) for s in self.param_shapes(r).values())

    def saved_per_token(self, r: dict, out: int, ctx: int) -> int:
        """Elements per token this op keeps for the backward pass (its output and internals),
        for the memory estimate (ir/memory.py); `out` is its output width. Default: the output."""
        return out

    def flops_ctx(self, r: dict, ctx: int) -> int:
        """Forward FLOPs per token that grow with the context length `ctx` (attention's scores
        and weighted sum); 0 for ops that look at one position at a time."""
        return 0

    # --- growth (see ops/axes.py)
    def axes(self, r: dict) -> dict:
        """The growable axes of this op instance: {name: Axis}. Default: none."""
        return {}

    def resize(self, axis: str, args: dict, r: dict, n: int) -> dict:
        """The op's user arguments with axis `axis` at `n` units (default: the arg of that name)."""
        return {**args, axis: n}

    def widen(self, r: dict, ctx):
        """How this op follows `widen_embed` (the residual stream duplicated `ctx.k` times): a
        `Widened` (ops/widen.py), or None when it cannot. Default: a channel-wise op without
        parameters commutes with duplication; anything else cannot."""
        if self.channels == "elementwise" and not self.param_shapes(r) and not self.buffer_shapes(r):
            from .widen import Widened

            return Widened()
        return None

    def add_lanes(self, r: dict, ctx):
        """How this op follows `add_lane` (ops/lanes.py): a `LaneGrowth`, or None when it
        cannot. Default: a channel-wise op without parameters handles any width."""
        if self.channels == "elementwise" and not self.param_shapes(r) and not self.buffer_shapes(r):
            from .lanes import LaneGrowth

            return LaneGrowth()
        return None

    # --- external names (ops/external.py)
    def external(self, r: dict, style: str) -> dict | None:
        """How another framework stores this op's parameters: {param: Ext} relative to the op's
        external module path, for `style` "conv1d" (GPT-2) or "linear" (Llama); None: it
        cannot be written in that style."""
        return None

    # --- composition
    def parts(self, r: dict) -> list | None:
        """The ops this op is built from in the IR (a list of `Part` and `Branches`), or None
        for an op that is one node. A composite op (attention: projections, rope, sdpa, output
        projection) still owns its axes and growth rules, stated over its parts' parameters
        (`qkv.weight` is part `qkv`'s `weight`); analysis and compilation see the parts."""
        return None

    def zero_output(self, module) -> bool:
        """Make the module's output exactly zero for every input (for identity insertion).
        Returns False when this op cannot do it."""
        return False


@dataclass(frozen=True)
class Part:
    """One op of a composite: `name: op(args)` inside the composite's scope."""

    name: str
    op: str
    args: dict


@dataclass(frozen=True)
class Branches:
    """Parallel parts of a composite, each reading the composite's input, joined by `join`."""

    join: str
    branches: tuple  # of Part, one per branch


def _prod(s):
    n = 1
    for x in s:
        n *= x
    return n


REGISTRY: dict[str, Op] = {}


def register(cls):
    REGISTRY[cls.name] = cls()
    return cls


def get_op(name: str) -> Op | None:
    return REGISTRY.get(name)


def user_ops() -> list[str]:
    return sorted(n for n, op in REGISTRY.items() if not op.internal)
