"""Embeddings, norms, linear maps, unembedding, dropout."""
from __future__ import annotations

from typing import Optional

import torch.nn as nn

from .axes import Axis, Slice
from .external import plain
from .modules import Norm, PosEmbed, make_linear
from .lanes import LaneGrowth, per_lane
from .widen import Widened, copies, reads_stream, rep
from .registry import Args, Facts, Op, register
from .types import Lanes, PosInt, TensorType


def need_features(op, inputs):
    if inputs[0].channels is None:
        raise ValueError(f"{op} needs features (B, T, C) but gets token ids (B, T)",
                         "put an `embed` before it")
    return inputs[0].channels


def check_lanes(op, C, lanes, what="channels"):
    if lanes and C % lanes:
        raise ValueError(f"{op}: {C} {what} do not split into {lanes} lanes")


@register
class Embed(Op):
    name = "embed"
    doc = "token embedding: ids (B, T) -> (B, T, dim)"

    class Args(Args):
        vocab: PosInt
        dim: PosInt

    def infer(self, a, inputs, lanes):
        if inputs[0].channels is not None:
            raise ValueError(f"embed takes token ids (B, T) but gets features {inputs[0]}",
                             "a model has one `embed`, first; `model(features = N)` takes vectors, "
                             "so it needs no embed")
        return dict(a), TensorType(a["dim"], lanes)

    def param_shapes(self, r):
        return {"weight": (r["vocab"], r["dim"])}

    def build(self, r):
        m = nn.Embedding(r["vocab"], r["dim"])
        nn.init.normal_(m.weight, std=0.02)
        return m

    def flops(self, r):
        return 0

    def facts(self, r):
        return Facts("unknown", why="embed looks up token ids; it is not a function of real inputs")

    def widen(self, r, ctx):
        return Widened(args={"dim": ctx.k * r["dim"]}).add("weight", copies(ctx, 1))

    def external(self, r, style):
        return plain("weight")

    def add_lanes(self, r, ctx):  # new columns; zero when a tied unembed reads them back
        if ctx.inside:
            return None
        return LaneGrowth(args={"dim": ctx.C2}).add("weight", (None, ctx.channels),
                                                    "zero" if ctx.tied else "random")


@register
class PosEmbedOp(Op):
    name = "pos_embed"
    doc = "adds a learned position embedding (first `ctx` positions)"
    lanes_ok = True

    class Args(Args):
        ctx: PosInt

    def infer(self, a, inputs, lanes):
        C = need_features(self.name, inputs)
        return {**a, "dim": C}, inputs[0]

    def param_shapes(self, r):
        return {"weight": (r["ctx"], r["dim"])}

    def build(self, r):
        return PosEmbed(r["ctx"], r["dim"])

    def flops(self, r):
        return 0

    def facts(self, r):
        return Facts("affine", ("incr",))

    def channel_map(self, r):
        return "elementwise"

    def widen(self, r, ctx):
        return Widened().add("weight", copies(ctx, 1))

    def add_lanes(self, r, ctx):
        return None if ctx.inside else LaneGrowth().add("weight", (None, ctx.channels))

    def external(self, r, style):
        return plain("weight")


class _NormOp(Op):
    lanes_ok = True
    absorbs_scale = True  # widen_embed: takes the 1/k of a tied unembed after it

    class Args(Args):
        eps: float = 1e-5
        bias: bool = True
        lanes: Lanes = None

    def infer(self, a, inputs, lanes):
        C = need_features(self.name, inputs)
        r = {**a, "dim": C, "lanes": a.get("lanes") or lanes}
        check_lanes(self.name, C, r["lanes"])
        return r, inputs[0]

    def param_shapes(self, r):
        out = {"weight": (r["dim"],)}
        if self.name == "layernorm" and r.get("bias", True):
            out["bias"] = (r["dim"],)
        return out

    def build(self, r):
        return Norm(r["dim"], self.name, r["eps"], r.get("bias", True), r.get("lanes"))

    def flops(self, r):
        return 5 * r["dim"]

    def facts(self, r):
        return Facts("unknown", why=f"{self.name} is not convex: it divides by an input-dependent scale")

    def channel_map(self, r):
        return "lane" if r.get("lanes") else "full"

    def saved_per_token(self, r, out, ctx):  # output, mean and 1/std
        return out + 2

    def external(self, r, style):
        return None if r.get("lanes") else plain(*self.param_shapes(r))

    def add_lanes(self, r, ctx):  # per lane: its gains and biases keep the old channels
        if not ctx.inside:
            return None
        g = LaneGrowth()
        for p in self.param_shapes(r):
            g.add(p, (ctx.channels,))
        return g

    def widen(self, r, ctx):
        """Mean and variance of [x, x] are those of x: gains and biases repeat. Before a tied
        unembed the norm takes the 1/k the unembed cannot (its weight is the embedding's)."""
        sc = 1.0 / ctx.k if ctx.tied_next else 1.0
        w = Widened()
        for p in self.param_shapes(r):
            w.add(p, lambda t, sc=sc: rep(t, ctx.k, 0, sc), copies(ctx, 0))
        return w


@register
class LayerNorm(_NormOp):
    name = "layernorm"
    doc = "LayerNorm over channels (or per lane)"


@register
class RMSNorm(_NormOp):
    name = "rmsnorm"
    doc = "RMSNorm over channels (or per lane)"

    class Args(Args):
        eps: float = 1e-6
        lanes: Lanes = None


@register
class Linear(Op):
    name = "linear"
    doc = "y = x W^T + b; `nonneg` keeps W >= 0 by W = softplus(weight_raw)"
    lanes_ok = True
    channels = "full"

    class Args(Args):
        out: PosInt
        bias: bool = True
        nonneg: bool = False
        lanes: Lanes = None

    def infer(self, a, inputs, lanes):
        C = need_features(self.name, inputs)
        ln = a.get("lanes", None) if "lanes" in a else None
        ln = lanes if ln is None else ln
        if ln == 1:
            ln = None
        if a.get("nonneg") and ln:
            raise ValueError("a nonneg linear cannot run per lane yet")
        r = {**a, "in": C, "lanes": ln}
        check_lanes(self.name, C, ln)
        check_lanes(self.name, a["out"], ln, "outputs")
        return r, TensorType(a["out"], inputs[0].lanes)

    def param_shapes(self, r):
        i, o, L = r["in"], r["out"], r.get("lanes")
        w = "weight_raw" if r.get("nonneg") else "weight"
        out = {w: (L, o // L, i // L) if L else (o, i)}
        if r.get("bias", True):
            out["bias"] = (L, o // L) if L else (o,)
        return out

    def build(self, r):
        return make_linear(r["in"], r["out"], r.get("bias", True), r.get("lanes"), r.get("nonneg", False))

    def add_lanes(self, r, ctx):
        return per_lane(self, r, ctx, "out")

    def widen(self, r, ctx):
        """A linear widens as part of a chain: its first linear reads the stream, its last
        writes it; one in the middle maps hidden to hidden and stays."""
        if r.get("nonneg") or r.get("lanes") or ctx.role == "stream":
            return None
        if ctx.role == "inner":
            return Widened()
        if ctx.role == "reads":
            return Widened().add("weight", reads_stream(ctx), copies(ctx, 1))
        w = Widened(args={"out": ctx.k * r["out"]}).add("weight", copies(ctx, 0))
        return w.add("bias", copies(ctx, 0)) if r.get("bias", True) else w

    def axes(self, r):
        w, L = ("weight_raw" if r.get("nonneg") else "weight"), r.get("lanes")
        out = (Slice(w, 0, "in"),) + ((Slice("bias", 0, "bias"),) if r.get("bias", True) else ())
        axes = {"out": Axis("out", r["out"], out, L)}
        if not r.get("nonneg"):  # softplus(raw) is never 0: a nonneg linear cannot read new units at 0
            axes["in"] = Axis("in", r["in"], (Slice(w, 1, "out"),), L, resizable=False)
        return axes

    def facts(self, r):
        if r.get("nonneg"):
            return Facts("affine", ("incr",))
        return Facts("affine", ("none",), why="weight may be negative: declare it `nonneg = true`")

    def zero_output(self, m):
        if hasattr(m, "weight_raw"):
            return False
        nn.init.zeros_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
        return True


@register
class Unembed(Op):
    name = "unembed"
    doc = "logits: (B, T, C) -> (B, T, vocab); `tie = name` shares an embed's weight"
    channels = "full"

    class Args(Args):
        vocab: PosInt
        tie: Optional[str] = None
        bias: bool = False

    def infer(self, a, inputs, lanes):
        C = need_features(self.name, inputs)
        return {**a, "in": C}, TensorType(a["vocab"])

    def param_shapes(self, r):
        out = {} if r.get("tie") else {"weight": (r["vocab"], r["in"])}
        if r.get("bias"):
            out["bias"] = (r["vocab"],)
        return out

    def build(self, r):
        m = nn.Linear(r["in"], r["vocab"], bias=r.get("bias", False))
        nn.init.normal_(m.weight, std=0.02)
        if r.get("tie"):
            del m.weight
        return m

    def flops(self, r):
        return 2 * r["vocab"] * r["in"]

    def facts(self, r):
        return Facts("affine", ("none",), why="weight may be negative")

    def saved_per_token(self, r, out, ctx):  # logits, log-softmax (cross-entropy), their gradient
        return 3 * out

    def external(self, r, style):  # tied: nothing of its own
        return None if r.get("bias") else plain(*self.param_shapes(r))

    def add_lanes(self, r, ctx):  # untied: zero columns for the new channels
        if ctx.inside:
            return None
        return LaneGrowth() if r.get("tie") else LaneGrowth().add("weight", (None, ctx.channels), "zero")

    def widen(self, r, ctx):
        if r.get("tie"):  # the norm before it is rescaled instead (see _NormOp.widen)
            if not ctx.after_absorber:
                raise ValueError("is tied and not right after a norm: cannot rescale it",
                                 "untie it, or put a layernorm before the unembed")
            return Widened()
        return Widened().add("weight", lambda w: rep(w, ctx.k, 1, 1.0 / ctx.k), copies(ctx, 1))


@register
class Dropout(Op):
    name = "dropout"
    doc = "dropout with probability p (training only)"

    class Args(Args):
        p: float = 0.1

    def build(self, r):
        return nn.Dropout(r["p"])

    def saved_per_token(self, r, out, ctx):  # output and a byte mask
        return out + (out + 3) // 4

    def facts(self, r):
        return Facts("affine", ("incr",))
