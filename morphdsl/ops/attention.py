"""Attention, built from parts: `qkv` (or `q` and `kv`) projections, `rope`, `sdpa`, `proj`.

`attention(heads = 4)` is the short form. In the IR it is a composite (`Op.parts`):

    qkv:  linear(out = 3 * heads * head_dim)          [q | k | v] rows (per lane inside lanes)
          -- or, with kv_heads: parallel(join = concat) { q: linear  |  kv: linear }
    rope: rope(heads, kv_heads, head_dim, theta, fraction)          only with `rope = true`
    sdpa: sdpa(heads, kv_heads, head_dim, causal, dropout)          softmax(q k^T / sqrt(hs)) v
    proj: linear(out = width)

so parameter names read `attn.qkv.weight`, `attn.proj.weight`, and each part states its own
facts (rope and the projections act on one position, sdpa is causal or not, every part keeps
lanes apart). The composite still owns the axes its growth changes (heads, kv_heads), stated
over its parts' parameters. `rope` and `sdpa` are ops of their own, so a user may also write
the parts out (a packed [q | k | v] tensor flows between them).
"""
from __future__ import annotations

from typing import Optional

from .axes import Axis, Slice
from .basic import check_lanes, need_features
from .external import Ext
from .lanes import per_lane
from .modules import SDPA, Rope
from .registry import Args, Branches, Facts, Op, Part, register
from .types import Lanes, PosInt, TensorType
from .widen import WidenCtx, Widened, copies, head_index, reads_stream, rep


def _rot(hd: int, fraction: float, theta: float, prefix: str = "rope_") -> int:
    """Channels of each head that rope rotates (an even count), or a ValueError naming the
    args as the op writes them (`rope_fraction` of attention, `fraction` of rope)."""
    rot = int(hd * fraction) // 2 * 2
    if not 0 < fraction <= 1 or rot < 2:
        raise ValueError(f"{prefix}fraction = {fraction:g} of head_dim {hd} leaves no channel pair "
                         "to rotate", "use a fraction in (0, 1] with at least 2 channels")
    if not theta > 1:
        raise ValueError(f"{prefix}theta must be greater than 1", "Llama uses 10000 or 500000")
    return rot


class _Layout(Args):
    """How a packed [q | k | v] tensor splits into heads (the args of rope and sdpa)."""

    heads: PosInt
    kv_heads: Optional[PosInt] = None   # none: one per query head
    head_dim: Optional[PosInt] = None   # none: from the width
    lanes: Lanes = None


def _check_heads(H: int, kv: int | None, ln: int | None, grouped: bool) -> None:
    """Query heads split into key/value groups and lanes, or ValueError; `grouped`: the q / kv
    projection layout (attention with `kv_heads`), which cannot run per lane yet."""
    if ln and H % ln:
        raise ValueError(f"{H} heads do not split into {ln} lanes",
                         "use a head count that is a multiple of the lanes")
    if kv is not None and H % kv:
        raise ValueError(f"{H} heads do not split into {kv} key/value groups",
                         "kv_heads must divide heads (e.g. heads = 8, kv_heads = 2)")
    if ln and grouped:
        raise ValueError("grouped-query attention (`kv_heads`) cannot run per lane yet",
                         "drop `kv_heads`, or move the attention outside the partition")


def _layout(name: str, a: dict, inputs, lanes) -> dict:
    C = need_features(name, inputs)
    H = a["heads"]
    kv = a.get("kv_heads") or H
    ln = a.get("lanes") or lanes
    _check_heads(H, kv, ln, grouped=kv != H)
    hd = a.get("head_dim") or (C // (H + 2 * kv) if C % (H + 2 * kv) == 0 else None)
    if hd is None or C != (H + 2 * kv) * hd:
        raise ValueError(f"{C} channels are not a packed [q | k | v] of {H} query and {kv} "
                         f"key/value heads" + (f" of {hd} channels" if hd else ""),
                         "feed it a projection with (heads + 2 kv_heads) x head_dim outputs")
    return {**a, "kv_heads": kv, "head_dim": hd, "lanes": ln}


@register
class RopeOp(Op):
    name = "rope"
    doc = "rotary position embeddings on a packed [q | k | v]: queries and keys rotated by position"
    lanes_ok = True
    channels = "full"

    class Args(_Layout):
        theta: float = 10000.0
        fraction: float = 1.0   # rotate this fraction of each head's channels

    def infer(self, a, inputs, lanes):
        r = _layout(self.name, a, inputs, lanes)
        r["rot"] = _rot(r["head_dim"], a.get("fraction", 1.0), a.get("theta", 10000.0), "")
        return r, inputs[0]

    def build(self, r):
        return Rope(r["heads"], r["kv_heads"], r["head_dim"], r["rot"], r.get("theta", 10000.0),
                    r.get("lanes"))

    def facts(self, r):  # a rotation of each position's channels: linear, mixed signs
        return Facts("affine", ("none",), why="a rotation has negative coefficients")


@register
class SdpaOp(Op):
    name = "sdpa"
    doc = "scaled dot-product attention of a packed [q | k | v] (causal by default)"
    lanes_ok = True
    channels = "full"
    positions = "causal"

    class Args(_Layout):
        causal: bool = True
        dropout: float = 0.0

    def infer(self, a, inputs, lanes):
        r = _layout(self.name, a, inputs, lanes)
        return r, TensorType(r["heads"] * r["head_dim"], inputs[0].lanes)

    def build(self, r):
        return SDPA(r["heads"], r["kv_heads"], r["head_dim"], r.get("causal", True),
                    r.get("dropout", 0.0), r.get("lanes"))

    def positions_of(self, r):
        return "causal" if r.get("causal", True) else "noncausal"

    def saved_per_token(self, r, out, ctx):  # the heads' output and P (heads x ctx), twice
        return out + 2 * r["heads"] * ctx

    def flops_ctx(self, r, ctx):
        # q.k scores and the weighted sum of v: 2 x (ctx x heads*head_dim) multiply-adds per token
        return 4 * ctx * r["heads"] * r["head_dim"]

    def facts(self, r):
        return Facts("unknown", why="softmax attention is not convex")


@register
class AttentionOp(Op):
    name = "attention"
    doc = "multi-head self-attention (causal by default): qkv -> [rope] -> sdpa -> proj"
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
        proj_bias: Optional[bool] = None    # the output projection's bias; none: as `bias` (Qwen2: false)
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
        check_lanes(self.name, C, ln)
        _check_heads(a["heads"], a.get("kv_heads"), ln, grouped=a.get("kv_heads") is not None)
        rot = _rot(hd, a.get("rope_fraction", 1.0), a.get("rope_theta", 10000.0)) if a.get("rope") else 0
        pb = a.get("bias", True) if a.get("proj_bias") is None else a["proj_bias"]
        return {**a, "dim": C, "head_dim": hd, "lanes": ln, "rot": rot, "proj_bias": pb}, inputs[0]

    def parts(self, r):
        C, H, hd, kv, ln = r["dim"], r["heads"], r["head_dim"], r.get("kv_heads"), r.get("lanes")
        b, inner = r.get("bias", True), H * hd
        if kv is None:
            out = [Part("qkv", "linear", {"out": 3 * inner, "bias": b, "lanes": ln})]
        else:
            out = [Branches("concat", (Part("q", "linear", {"out": inner, "bias": b}),
                                       Part("kv", "linear", {"out": 2 * kv * hd, "bias": b})))]
        lay = {"heads": H, "kv_heads": kv, "head_dim": hd, "lanes": ln}
        if r.get("rot"):
            out.append(Part("rope", "rope", {**lay, "theta": r.get("rope_theta", 10000.0),
                                             "fraction": r.get("rope_fraction", 1.0)}))
        out.append(Part("sdpa", "sdpa", {**lay, "causal": r.get("causal", True),
                                         "dropout": r.get("dropout", 0.0)}))
        out.append(Part("proj", "linear", {"out": C, "bias": r.get("proj_bias", b), "lanes": ln}))
        return out

    def param_shapes(self, r):  # its parts' parameters, by their names inside the composite
        C, inner, L, b = r["dim"], r["heads"] * r["head_dim"], r.get("lanes"), r.get("bias", True)
        pb = r.get("proj_bias", b)
        if r.get("kv_heads") is not None:
            kv = 2 * r["kv_heads"] * r["head_dim"]
            out = {"q.weight": (inner, C), "kv.weight": (kv, C), "proj.weight": (C, inner)}
            out.update({"q.bias": (inner,), "kv.bias": (kv,)} if b else {})
            return {**out, **({"proj.bias": (C,)} if pb else {})}
        if L:
            out = {"qkv.weight": (L, 3 * inner // L, C // L), "proj.weight": (L, C // L, inner // L)}
            out.update({"qkv.bias": (L, 3 * inner // L)} if b else {})
            return {**out, **({"proj.bias": (L, C // L)} if pb else {})}
        out = {"qkv.weight": (3 * inner, C), "proj.weight": (C, inner)}
        out.update({"qkv.bias": (3 * inner,)} if b else {})
        return {**out, **({"proj.bias": (C,)} if pb else {})}

    def positions_of(self, r):
        return "causal" if r.get("causal", True) else "noncausal"

    def facts(self, r):
        return Facts("unknown", why="softmax attention is not convex")

    def external(self, r, style):
        """GPT-2: fused c_attn / c_proj (Conv1D, transposed); Llama: q_proj, k_proj, v_proj,
        o_proj (`kv` is [k_proj; v_proj], a fused `qkv` is [q_proj; k_proj; v_proj])."""
        if r.get("lanes") or r.get("rot") and style == "conv1d":
            return None
        b, inner, hd, kv = r.get("bias", True), r["heads"] * r["head_dim"], r["head_dim"], r.get("kv_heads")
        pb = r.get("proj_bias", b)
        if style == "conv1d":
            if kv is not None or pb != b:
                return None
            out = {"qkv.weight": Ext(("c_attn.weight",), True), "proj.weight": Ext(("c_proj.weight",), True)}
            return {**out, **({"qkv.bias": Ext(("c_attn.bias",)), "proj.bias": Ext(("c_proj.bias",))} if b else {})}
        qkv = {"qkv": Ext(("q_proj", "k_proj", "v_proj"), sizes=(inner,) * 3)} if kv is None else \
            {"q": Ext(("q_proj",)), "kv": Ext(("k_proj", "v_proj"), sizes=(kv * hd,) * 2)}
        qkv["proj"] = Ext(("o_proj",))
        out = {}
        for p, e in qkv.items():
            for t in ("weight",) + (("bias",) if (pb if p == "proj" else b) else ()):
                names = tuple(f"{n}.{t}" for n in e.names)
                out[f"{p}.{t}"] = Ext(names, sizes=e.sizes)
        return out

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
            w.add("qkv.bias", lambda b: b[rows])
        if r.get("proj_bias", r.get("bias", True)):
            w.add("proj.bias", copies(ctx, 0))
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
        if r.get("proj_bias", r.get("bias", True)):
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

    def zero_output(self, m):  # m: the composite's container; its `proj` part
        m.proj.weight.data.zero_()
        if m.proj.bias is not None:
            m.proj.bias.data.zero_()
        return True
