"""Attention and MLP."""
from __future__ import annotations

from typing import Literal, Optional

from .axes import Axis, Slice
from .basic import check_lanes, need_features
from .modules import GATED, MLP, Attention
from .lanes import per_lane
from .registry import Args, Facts, Op, register
from .widen import WidenCtx, Widened, copies, head_index, reads_stream, rep
from .types import Lanes, PosInt


@register
class AttentionOp(Op):
    name = "attention"
    doc = "multi-head self-attention (causal by default); inner width heads*head_dim"
    lanes_ok = True
    channels = "full"
    positions = "causal"

    class Args(Args):
        heads: PosInt
        head_dim: Optional[PosInt] = None
        kv_heads: Optional[PosInt] = None   # grouped-query attention (Llama); none: one per head
        rope: bool = False                  # rotary position embeddings on queries and keys
        rope_theta: float = 10000.0
        rope_fraction: float = 1.0          # rotate this fraction of each head's channels
        causal: bool = True
        bias: bool = True
        dropout: float = 0.0
        lanes: Lanes = None

    def infer(self, a, inputs, lanes):
        C = need_features(self.name, inputs)
        ln = a.get("lanes") or lanes
        hd = a.get("head_dim")
        if hd is None:
            if C % a["heads"]:
                raise ValueError(f"{C} channels do not split into {a['heads']} heads",
                                 "use a head count that divides the width, or give `head_dim`")
            hd = C // a["heads"]
        if ln:
            check_lanes(self.name, C, ln)
            if a["heads"] % ln:
                raise ValueError(f"{a['heads']} heads do not split into {ln} lanes")
        kv = a.get("kv_heads")
        if kv is not None:
            if a["heads"] % kv:
                raise ValueError(f"{a['heads']} heads do not split into {kv} key/value groups",
                                 "kv_heads must divide heads (e.g. heads = 8, kv_heads = 2)")
            if ln:
                raise ValueError("grouped-query attention (`kv_heads`) cannot run per lane yet",
                                 "drop `kv_heads`, or move the attention outside the partition")
        rot = 0
        if a.get("rope"):
            f = a.get("rope_fraction", 1.0)
            rot = int(hd * f) // 2 * 2
            if not 0 < f <= 1 or rot < 2:
                raise ValueError(f"rope_fraction = {f:g} of head_dim {hd} leaves no channel pair "
                                 "to rotate", "use a fraction in (0, 1] with at least 2 channels")
            if not a.get("rope_theta", 10000.0) > 1:
                raise ValueError("rope_theta must be greater than 1", "Llama uses 10000 or 500000")
        return {**a, "dim": C, "head_dim": hd, "lanes": ln, "rot": rot}, inputs[0]

    def saved_per_token(self, r, out, ctx):  # qkv, the heads' output, proj; P (heads x ctx)
        inner = r["heads"] * r["head_dim"]
        return 3 * inner + inner + out + 2 * r["heads"] * ctx

    def flops_ctx(self, r, ctx):
        # q.k scores and the weighted sum of v: 2 x (ctx x heads*head_dim) multiply-adds per token
        return 4 * ctx * r["heads"] * r["head_dim"]

    def param_shapes(self, r):
        C, inner, L, b = r["dim"], r["heads"] * r["head_dim"], r.get("lanes"), r.get("bias", True)
        if r.get("kv_heads") is not None:
            kv = 2 * r["kv_heads"] * r["head_dim"]
            out = {"q.weight": (inner, C), "kv.weight": (kv, C), "proj.weight": (C, inner)}
            if b:
                out.update({"q.bias": (inner,), "kv.bias": (kv,), "proj.bias": (C,)})
            return out
        if L:
            out = {"qkv.weight": (L, 3 * inner // L, C // L), "proj.weight": (L, C // L, inner // L)}
            if b:
                out.update({"qkv.bias": (L, 3 * inner // L), "proj.bias": (L, C // L)})
        else:
            out = {"qkv.weight": (3 * inner, C), "proj.weight": (C, inner)}
            if b:
                out.update({"qkv.bias": (3 * inner,), "proj.bias": (C,)})
        return out

    def build(self, r):
        return Attention(r["dim"], r["heads"], r["head_dim"], r.get("causal", True),
                         r.get("bias", True), r.get("dropout", 0.0), r.get("lanes"),
                         r.get("kv_heads"), r.get("rot", 0), r.get("rope_theta", 10000.0))

    def positions_of(self, r):
        return "causal" if r.get("causal", True) else "noncausal"

    def facts(self, r):
        return Facts("unknown", why="softmax attention is not convex")

    def axes(self, r):
        b, hd, kv = r.get("bias", True), r["head_dim"], r.get("kv_heads")
        if kv is None:
            sl = [Slice("qkv.weight", 0, "in", 3, hd), Slice("proj.weight", 1, "out", 1, hd)]
            sl += [Slice("qkv.bias", 0, "bias", 3, hd)] if b else []
            return {"heads": Axis("heads", r["heads"], tuple(sl), r.get("lanes"))}
        # grouped: query heads sit [kv][group][hd]; a head grows each group (heads += n * kv),
        # a kv head brings a whole group of query heads with it
        g = r["heads"] // kv
        heads = [Slice("q.weight", 0, "in", kv, hd), Slice("proj.weight", 1, "out", kv, hd)]
        heads += [Slice("q.bias", 0, "bias", kv, hd)] if b else []
        groups = [Slice("q.weight", 0, "in", 1, g * hd), Slice("kv.weight", 0, "in", 2, hd),
                  Slice("proj.weight", 1, "out", 1, g * hd)]
        groups += [Slice("q.bias", 0, "bias", 1, g * hd), Slice("kv.bias", 0, "bias", 2, hd)] if b else []
        return {"heads": Axis("heads", g, tuple(heads)),  # size: query heads per group
                "kv_heads": Axis("kv_heads", kv, tuple(groups))}

    def widen(self, r, ctx):
        """Heads H -> kH, head j a copy of head j mod H (head_dim kept, so the q.k scale is);
        qkv input columns / k, proj rows repeated and its columns / k (the k copies of a head
        sum back to one)."""
        k, H, hd, kv = ctx.k, r["heads"], r["head_dim"], r.get("kv_heads")
        if kv is not None:  # grouped: query head j copies j mod H, kv head m copies m mod kv,
            return self._widen_grouped(r, ctx, k, H, hd, kv)  # so j still reads its group's copy
        rows, cols = head_index(H, hd, k, 3), head_index(H, hd, k, 1)
        cin = reads_stream(ctx)
        w = Widened(args={"heads": k * H, "head_dim": hd})
        w.add("qkv.weight", lambda t: cin(t[rows]), lambda t: rep(t[rows], k, 1))
        w.add("proj.weight", lambda t: rep(t[:, cols], k, 0) / k, lambda t: rep(t[:, cols], k, 0))
        if r.get("bias", True):
            w.add("qkv.bias", lambda b: b[rows]).add("proj.bias", copies(ctx, 0))
        return w

    def _widen_grouped(self, r, ctx, k, H, hd, kv):
        qrows, kvrows, cols = head_index(H, hd, k, 1), head_index(kv, hd, k, 2), head_index(H, hd, k, 1)
        qin = reads_stream(ctx)
        kvin = reads_stream(WidenCtx(ctx.k, ctx.noise, ctx.seed + 7919))  # its own noise draw
        w = Widened(args={"heads": k * H, "kv_heads": k * kv, "head_dim": hd})
        w.add("q.weight", lambda t: qin(t[qrows]), lambda t: rep(t[qrows], k, 1))
        w.add("kv.weight", lambda t: kvin(t[kvrows]), lambda t: rep(t[kvrows], k, 1))
        w.add("proj.weight", lambda t: rep(t[:, cols], k, 0) / k, lambda t: rep(t[:, cols], k, 0))
        if r.get("bias", True):
            w.add("q.bias", lambda b: b[qrows]).add("kv.bias", lambda b: b[kvrows])
            w.add("proj.bias", copies(ctx, 0))
        return w

    def add_lanes(self, r, ctx):
        return None if r.get("kv_heads") is not None else per_lane(self, r, ctx, "heads")

    def resize(self, axis, args, r, n):
        out = {**args, "head_dim": r["head_dim"]}  # head_dim stays, the width may not
        if axis == "kv_heads":
            return {**out, "kv_heads": n, "heads": n * (r["heads"] // r["kv_heads"])}
        if r.get("kv_heads") is not None:  # n query heads per group
            return {**out, "heads": n * r["kv_heads"]}
        return {**out, "heads": n}

    def zero_output(self, m):
        m.proj.weight.data.zero_()
        if m.proj.bias is not None:
            m.proj.bias.data.zero_()
        return True


@register
class MLPOp(Op):
    name = "mlp"
    doc = "fc -> act -> proj, hidden units `hidden` (or `mult` x width)"
    lanes_ok = True
    channels = "full"

    class Args(Args):
        hidden: Optional[PosInt] = None
        mult: Optional[PosInt] = None
        act: Literal["gelu", "gelu_tanh", "relu", "silu", "softplus", "tanh", "swiglu", "geglu"] = "gelu"
        bias: bool = True
        dropout: float = 0.0
        lanes: Lanes = None

    def infer(self, a, inputs, lanes):
        C = need_features(self.name, inputs)
        if a.get("hidden") is None and a.get("mult") is None:
            raise ValueError("mlp needs `hidden = N` or `mult = k`", "e.g. `mlp(hidden = 4 * d)`")
        hidden = a["hidden"] if a.get("hidden") is not None else a["mult"] * C
        ln = a.get("lanes") or lanes
        check_lanes(self.name, C, ln)
        check_lanes(self.name, hidden, ln, "hidden units")
        r = {**a, "dim": C, "hidden": hidden, "lanes": ln}
        r.pop("mult", None)
        return r, inputs[0]

    def param_shapes(self, r):
        C, H, L, b = r["dim"], r["hidden"], r.get("lanes"), r.get("bias", True)
        g = 2 if r.get("act") in GATED else 1  # a gated MLP's fc holds [gate; up] rows
        if L:
            out = {"fc.weight": (L, g * H // L, C // L), "proj.weight": (L, C // L, H // L)}
            if b:
                out.update({"fc.bias": (L, g * H // L), "proj.bias": (L, C // L)})
        else:
            out = {"fc.weight": (g * H, C), "proj.weight": (C, H)}
            if b:
                out.update({"fc.bias": (g * H,), "proj.bias": (C,)})
        return out

    def axes(self, r):
        g = 2 if r.get("act") in GATED else 1
        sl = [Slice("fc.weight", 0, "in", g), Slice("proj.weight", 1, "out")]
        if r.get("bias", True):
            sl.append(Slice("fc.bias", 0, "bias", g))
        return {"hidden": Axis("hidden", r["hidden"], tuple(sl), r.get("lanes"))}

    def resize(self, axis, args, r, n):
        return {**{k: v for k, v in args.items() if k != "mult"}, "hidden": n}

    def saved_per_token(self, r, out, ctx):  # fc output and activation (gated: gate, up, product)
        fc = 3 if r.get("act") in GATED else 2
        return fc * r["hidden"] + out + (r["hidden"] if r.get("dropout") else 0)

    def add_lanes(self, r, ctx):  # `mult` x width scales with the lanes by itself
        return per_lane(self, r, ctx, None if "mult" in ctx.args else "hidden")

    def widen(self, r, ctx):
        """fc input columns / k (hidden units unchanged), proj rows repeated."""
        w = Widened(args={"hidden": r["hidden"]}, drop=("mult",))
        w.add("fc.weight", reads_stream(ctx), copies(ctx, 1)).add("proj.weight", copies(ctx, 0))
        return w.add("proj.bias", copies(ctx, 0)) if r.get("bias", True) else w

    def build(self, r):
        return MLP(r["dim"], r["hidden"], r.get("act", "gelu"), r.get("bias", True),
                   r.get("lanes"), r.get("dropout", 0.0))

    def facts(self, r):
        return Facts("unknown", why=f"an mlp with unconstrained weights and {r.get('act', 'gelu')} "
                                    "is not convex; use a hull of petals")

    def zero_output(self, m):
        m.proj.weight.data.zero_()
        if m.proj.bias is not None:
            m.proj.bias.data.zero_()
        return True

