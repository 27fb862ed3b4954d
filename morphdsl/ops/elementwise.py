"""Elementwise activations and the joins of parallel branches (functional ops).

Besides curvature facts, an op that is a *scalar* affine map of its inputs, y = sum_i c_i x_i + b
with the same constant c_i for every channel, says so with `linear_coeffs(r) -> (c, b)`: the
convexity rule then tracks such sums exactly (`x + (-0.5) x` is `0.5 x`), not term by term."""
from __future__ import annotations

import operator
from functools import partial, reduce
from typing import Literal

import torch
import torch.nn.functional as F

from .modules import gelu_tanh, softplus
from .registry import Args, Facts, Op, register
from .types import TensorType


class _Elementwise(Op):
    functional = True
    lanes_ok = True
    fn = None
    fact = Facts("unknown")
    coeffs = None  # ((c,), b) when the op is x -> c x + b

    def function(self, r):
        return type(self).fn

    def facts(self, r):
        return self.fact

    def linear_coeffs(self, r):
        return self.coeffs

    def flops(self, r):
        return 0


def _ew(name_, fn_, fact_, doc_="", coeffs_=None):
    cls = type(name_.title().replace("_", ""), (_Elementwise,),
               {"name": name_, "fn": staticmethod(fn_), "fact": fact_, "doc": doc_, "coeffs": coeffs_})
    return register(cls)


_ew("relu", F.relu, Facts("convex", ("incr",), "nonneg"), "max(x, 0)")
_ew("softplus", softplus, Facts("convex", ("incr",), "nonneg"), "log(1 + e^x)")  # not F.softplus
_ew("exp", torch.exp, Facts("convex", ("incr",), "nonneg"), "e^x")
_ew("identity", lambda x: x, Facts("affine", ("incr",)), "x", ((1.0,), 0.0))
_ew("neg", torch.neg, Facts("affine", ("decr",)), "-x", ((-1.0,), 0.0))
_ew("square", torch.square, Facts("convex", ("none",), "nonneg", mono_nonneg=("incr",),
                                  mono_nonpos=("decr",)), "x^2")
_ew("abs", torch.abs, Facts("convex", ("none",), "nonneg", mono_nonneg=("incr",),
                            mono_nonpos=("decr",)), "|x|")
_ew("log", torch.log, Facts("concave", ("incr",)), "log x")


@register
class Gelu(_Elementwise):
    name = "gelu"
    doc = "x * Phi(x); `approximate = tanh`: GPT-2's tanh form"
    fact = Facts("unknown", why="gelu is neither convex nor concave")

    class Args(Args):
        approximate: Literal["none", "tanh"] = "none"

    def function(self, r):
        return gelu_tanh if r.get("approximate") == "tanh" else F.gelu


_ew("silu", F.silu, Facts("unknown", why="silu is neither convex nor concave"))
_ew("sigmoid", torch.sigmoid, Facts("unknown", why="sigmoid is neither convex nor concave"))
_ew("tanh", torch.tanh, Facts("unknown", why="tanh is neither convex nor concave"))


@register
class LeakyRelu(_Elementwise):
    name = "leaky_relu"
    doc = "x for x >= 0, slope*x below (max(x, slope*x) for slope <= 1)"

    class Args(Args):
        slope: float = 0.01

    def function(self, r):
        return partial(F.leaky_relu, negative_slope=r["slope"])

    def facts(self, r):
        s = r["slope"]  # x for x >= 0, s x below
        if s == 1:
            return Facts("affine", ("incr",))
        if s == 0:      # relu
            return Facts("convex", ("incr",), "nonneg")
        if 0 < s < 1:   # max(x, s x)
            return Facts("convex", ("incr",))
        if s > 1:       # min(x, s x)
            return Facts("concave", ("incr",))
        # s < 0: max(x, s x) >= 0, decreasing below 0 and the identity above
        return Facts("convex", ("none",), "nonneg", mono_nonneg=("incr",), mono_nonpos=("decr",))

    def linear_coeffs(self, r):
        return ((1.0,), 0.0) if r["slope"] == 1 else None


@register
class Scale(_Elementwise):
    name = "scale"
    doc = "x * by (a constant)"

    class Args(Args):
        by: float

    def function(self, r):
        return partial(torch.mul, other=r["by"])

    def facts(self, r):
        return Facts("affine", ("incr" if r["by"] >= 0 else "decr",))

    def linear_coeffs(self, r):
        return ((float(r["by"]),), 0.0)


@register
class Shift(_Elementwise):
    name = "shift"
    doc = "x + by (a constant)"

    class Args(Args):
        by: float

    def function(self, r):
        return partial(torch.add, other=r["by"])

    def facts(self, r):
        return Facts("affine", ("incr",))

    def linear_coeffs(self, r):
        return ((1.0,), float(r["by"]))


# ----------------------------------------------------------------------------- joins
class _Join(Op):
    functional = True
    internal = True
    arity = None
    lanes_ok = True

    def infer(self, a, inputs, lanes):
        cs = {t.channels for t in inputs}
        if len(cs) != 1:
            shapes = ", ".join(str(t) for t in inputs)
            raise ValueError(f"`{self.name}` joins branches of different widths: {shapes}",
                             "give every branch the same output width, or use `join = concat`")
        return dict(a), inputs[0]

    def linear_coeffs(self, r):
        return None

    def flops(self, r):
        return 0


def _sum(*xs):
    return reduce(operator.add, xs)


def _two(name, inputs):
    """`sub` and `div` are binary: a third branch would be silently dropped."""
    if len(inputs) != 2:
        raise ValueError(f"exactly two branches are needed, got {len(inputs)} (`{name}` is binary)")


def _prod(*xs):
    return reduce(operator.mul, xs)


@register
class Add(_Join):
    name = "add"

    def function(self, r):
        return operator.add if r.get("n", 2) == 2 else _sum

    def facts(self, r):
        return Facts("affine", ("incr",) * r.get("n", 2))

    def linear_coeffs(self, r):
        return ((1.0,) * r.get("n", 2), 0.0)


@register
class Sub(_Join):
    name = "sub"

    def infer(self, a, inputs, lanes):
        return _two(self.name, inputs) or super().infer(a, inputs, lanes)

    def function(self, r):
        return operator.sub

    def facts(self, r):
        return Facts("affine", ("incr", "decr"))

    def linear_coeffs(self, r):
        return ((1.0, -1.0), 0.0)


@register
class Mul(_Join):
    name = "mul"

    def function(self, r):
        return operator.mul if r.get("n", 2) == 2 else _prod

    def facts(self, r):
        return Facts("unknown", bilinear=True, why="product of two input-dependent terms")


@register
class Div(_Join):
    name = "div"

    def infer(self, a, inputs, lanes):
        return _two(self.name, inputs) or super().infer(a, inputs, lanes)

    def function(self, r):
        return operator.truediv

    def facts(self, r):
        return Facts("unknown", divides=True, why="division by an input-dependent value")


@register
class Max(_Join):
    name = "max"

    def function(self, r):
        return lambda *xs: reduce(torch.maximum, xs)

    def facts(self, r):
        return Facts("convex", ("incr",) * r.get("n", 2))


@register
class Mean(_Join):
    name = "mean"

    def function(self, r):
        n = r.get("n", 2)
        return lambda *xs: _sum(*xs) / n

    def facts(self, r):
        return Facts("affine", ("incr",) * r.get("n", 2))

    def linear_coeffs(self, r):
        n = r.get("n", 2)
        return ((1.0 / n,) * n, 0.0)


def _cat(*xs):
    return torch.cat(xs, dim=-1)


@register
class Concat(_Join):
    name = "concat"

    def infer(self, a, inputs, lanes):
        return dict(a), TensorType(sum(t.channels for t in inputs), None)

    def function(self, r):
        return _cat

    def facts(self, r):
        return Facts("affine", ("incr",) * r.get("n", 2))

    def channel_map(self, r):
        return "full"


@register
class Slice(Op):
    """Channels [start, stop) of the input (the split of a parallel region)."""

    name = "slice"
    functional = True
    internal = True

    class Args(Args):
        start: int
        stop: int

    def infer(self, a, inputs, lanes):
        return dict(a), TensorType(a["stop"] - a["start"], None)

    def function(self, r):
        s, e = r["start"], r["stop"]
        return lambda x: x[..., s:e]

    def facts(self, r):
        return Facts("affine", ("incr",))

    def channel_map(self, r):
        return "full"

    def flops(self, r):
        return 0
