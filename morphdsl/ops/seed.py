"""The gate of a seed: a growth on probation (`s: seed(stage = blending, alpha = 0.4) { body }`).

A seed lowers to its body followed by one internal `seed_gate` node (`s#gate0`), whose resolved
arguments are the lifecycle stage and the mix coefficient; it has no parameters, so a spec
written back (emit) or a checkpoint's `spec.morph` reproduces the stage exactly, and a rewrite
(`seed_stage`) moves it. With s the body's output:

    training   s - s.detach()   forward exactly 0, gradient as at full strength (isolated)
    blending   alpha * s        alpha ramps 0 -> 1
    holding    s                full strength

A seed sits where its output is *added* to the host's (`residual { s: seed { ... } }`, a branch
of `parallel(join = add)`), so at `training` the model computes what the host computes.
"""
from __future__ import annotations

import math
from functools import partial
from typing import Literal

from ..errors import did_you_mean
from .registry import Args, Facts, Op, register

STAGES = ("training", "blending", "holding")
IMPLIED = {"training": 0.0, "holding": 1.0}  # the forward strength of the fixed stages


def seed_state(stage, alpha=None) -> tuple[str, float]:
    """(stage, alpha) checked and normalised: alpha is the forward strength (0 at training, 1 at
    holding; the mix coefficient in [0, 1] at blending). ValueError(message, hint) if bad."""
    stage = str(stage)
    if stage not in STAGES:
        raise ValueError(f"unknown seed stage `{stage}`",
                         did_you_mean(stage, STAGES) or f"stages: {', '.join(STAGES)}")
    if alpha is not None and (isinstance(alpha, bool) or not isinstance(alpha, (int, float))
                              or not math.isfinite(alpha) or not 0 <= alpha <= 1):
        raise ValueError(f"seed alpha must be a number in [0, 1], got {alpha!r}",
                         "alpha is the mix coefficient of the blending stage: 0 = host only, 1 = full")
    if stage in IMPLIED:
        if alpha is not None and float(alpha) != IMPLIED[stage]:
            raise ValueError(f"a `{stage}` seed has alpha = {IMPLIED[stage]:g}, not {alpha!r}",
                             "alpha is set only at `stage = blending`; drop it here")
        return stage, IMPLIED[stage]
    return stage, float(alpha if alpha is not None else 0.0)


def strength(r: dict) -> float:
    """The factor the gate applies to the body's output in the forward pass."""
    return IMPLIED.get(r["stage"], r["alpha"])


def straight_through(s):
    """s - s.detach(): 0 forward (exactly, for finite s), d/ds = 1 backward."""
    return s - s.detach()


def hold(s):
    return s


def blend(s, alpha: float):
    return s * alpha


@register
class SeedGate(Op):
    """The gate after a seed's body (made by the lowering, never written)."""

    name = "seed_gate"
    functional = True
    internal = True
    lanes_ok = True
    doc = "a seed's gate: 0 forward with gradient (training), alpha x (blending), x (holding)"

    class Args(Args):
        stage: Literal["training", "blending", "holding"] = "training"
        alpha: float = 0.0

    def function(self, r):
        if r["stage"] == "training":
            return straight_through
        if r["stage"] == "holding":
            return hold
        return partial(blend, alpha=float(r["alpha"]))

    def facts(self, r):
        if r["stage"] == "training":
            return Facts("constant", ("none",), "nonneg")  # the forward is 0
        return Facts("affine", ("incr",))  # a nonnegative scale

    def linear_coeffs(self, r):
        return ((strength(r),), 0.0)

    def flops(self, r):
        return 0
