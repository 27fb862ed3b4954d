"""Petals (ICNNs), hulls of petals, and the cross-lane mixer."""
from __future__ import annotations

from typing import Literal, Optional

import torch

from .axes import Axis, Slice
from .basic import check_lanes, need_features
from .lanes import LaneGrowth, per_lane
from .modules import Hull, LaneMixer
from .registry import Args, Facts, Op, register
from .types import Lanes, PosInt, TensorType

Act = Literal["relu", "softplus", "leaky_relu"]


class _HullBase(Op):
    lanes_ok = True
    channels = "full"

    def saved_per_token(self, r, out, ctx):  # per petal: pre/post activations, its output
        lanes, petals, width = r.get("lanes") or 1, r["petals"], r["width"]
        return lanes * petals * (2 * r["layers"] * width + r["out"] // lanes) + out

    def add_lanes(self, r, ctx):  # an `out` left to the width follows the lanes by itself
        given = "out" in ctx.args and ctx.args["out"] != "vector"
        return per_lane(self, r, ctx, "out" if given else None)

    def resolve(self, a, inputs, lanes, petals):
        C = need_features(self.name, inputs)
        ln = a.get("lanes") or lanes
        out = a.get("out") or C
        if out == "vector":
            out = C
        check_lanes(self.name, C, ln)
        check_lanes(self.name, out, ln, "outputs")
        if a.get("act") == "leaky_relu" and not (0 <= a.get("slope", 0.01) <= 1):
            raise ValueError("leaky_relu slope must be in [0, 1] for a convex petal")
        r = {**a, "dim": C, "out": out, "lanes": ln, "petals": petals}
        return r, TensorType(out, inputs[0].lanes if ln else None)

    def param_shapes(self, r):
        L, P, w, k = r.get("lanes") or 1, r["petals"], r["width"], r["layers"]
        d, o = r["dim"] // L, r["out"] // L
        out = {"w0": (L, P, w, d), "b0": (L, P, w)}
        for i in range(1, k):
            out.update({f"wz{i}": (L, P, w, w), f"wx{i}": (L, P, w, d), f"b{i}": (L, P, w)})
        out.update({"wz_out": (L, P, o, w), "wx_out": (L, P, o, d), "b_out": (L, P, o)})
        if r.get("pool") == "sum":
            out["mix_raw"] = (L, P)
        return out

    def buffer_shapes(self, r):
        return {"alpha": ((r.get("lanes") or 1), r["petals"])}

    def build(self, r):
        return Hull(r["dim"], r["petals"], r["layers"], r["width"], r["out"], r.get("pool", "mean"),
                    r.get("act", "relu"), r.get("slope", 0.01), r.get("lanes"))

    def facts(self, r):
        return Facts("convex", ("none",),
                     why="a petal's input weights W_x may be negative, so it is not monotone")


@register
class PetalOp(_HullBase):
    name = "petal"
    doc = "an input-convex network (ICNN) of `layers` layers of `width` units"

    class Args(Args):
        layers: PosInt = 2
        width: PosInt = 16
        out: Optional[PosInt] = None
        act: Act = "relu"
        slope: float = 0.01
        lanes: Lanes = None

    def infer(self, a, inputs, lanes):
        r, t = self.resolve(a, inputs, lanes, 1)
        r["pool"] = "mean"
        return r, t


@register
class HullOp(_HullBase):
    name = "hull"
    doc = "P petals pooled by max | logsumexp | mean | sum (nonneg weights); out=1 is scalar"

    class Args(Args):
        petals: PosInt = 4
        layers: PosInt = 2
        width: PosInt = 16
        out: Optional[PosInt] = None
        pool: Literal["max", "logsumexp", "mean", "sum"] = "max"
        act: Act = "relu"
        slope: float = 0.01
        lanes: Lanes = None

    def infer(self, a, inputs, lanes):
        return self.resolve(a, inputs, lanes, a.get("petals", 4))

    def axes(self, r):
        """Petals: every tensor is (L, P, ...), L = 1 outside a partition. New petals start
        fresh with their gate `alpha` at 0, which takes them out of every pooling (exact)."""
        L = r.get("lanes") or 1
        sl = tuple(Slice(p, 0, "in") for p in self.param_shapes(r)) + (Slice("alpha", 0, "gate"),)
        return {"petals": Axis("petals", L * r["petals"], sl, L)}

    def resize(self, axis, args, r, n):
        return {**args, "petals": n // (r.get("lanes") or 1)}  # petals per lane


@register
class MixOp(Op):
    name = "mix"
    doc = "declared cross-lane mixer: a doubly-stochastic (Sinkhorn) matrix over lanes"
    channels = "mixer"
    lanes_ok = True

    class Args(Args):
        kind: Literal["sinkhorn"] = "sinkhorn"
        iters: PosInt = 10
        lanes: Lanes = None

    def infer(self, a, inputs, lanes):
        C = need_features(self.name, inputs)
        ln = a.get("lanes") or lanes
        if not ln:
            raise ValueError("mix needs lanes: use it inside `partition(lanes = H)` or give lanes")
        check_lanes(self.name, C, ln)
        return {**a, "dim": C, "lanes": ln}, inputs[0]

    def param_shapes(self, r):
        return {"logits": (r["lanes"], r["lanes"])}

    def add_lanes(self, r, ctx):
        """-1e4 between old and new lanes (exp underflows to exactly 0: the old block of the
        doubly-stochastic matrix is unchanged); the new lanes start near the identity."""
        if not ctx.inside:
            return None
        init = torch.full((ctx.L2, ctx.L2), -1e4)
        init[ctx.L:, ctx.L:] = torch.eye(ctx.L2 - ctx.L) * 4.0
        return LaneGrowth().add("logits", (ctx.lanes, ctx.lanes), init)

    def build(self, r):
        return LaneMixer(r["lanes"], r.get("iters", 10))

    def channel_map(self, r):
        return "mixer"

    def facts(self, r):
        return Facts("affine", ("incr",))  # input-independent nonneg mixing weights

    def flops(self, r):
        return 2 * r["lanes"] * r["dim"]
