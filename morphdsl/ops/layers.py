"""The MLP (attention and its parts are in ops/attention.py)."""
from __future__ import annotations

from typing import Literal, Optional

from .axes import Axis, Slice
from .external import Ext
from .basic import check_lanes, need_features
from .modules import GATED, MLP
from .lanes import per_lane
from .registry import Args, Facts, Op, register
from .widen import Widened, copies, reads_stream
from .types import Lanes, PosInt


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

    def external(self, r, style):
        """GPT-2: c_fc / c_proj (Conv1D, transposed); Llama: gate_proj + up_proj / down_proj."""
        if r.get("lanes"):
            return None
        b = r.get("bias", True)
        if style == "conv1d":
            if r.get("act") in GATED:
                return None
            out = {"fc.weight": Ext(("c_fc.weight",), True), "proj.weight": Ext(("c_proj.weight",), True)}
            return {**out, **({"fc.bias": Ext(("c_fc.bias",)), "proj.bias": Ext(("c_proj.bias",))} if b else {})}
        if r.get("act") not in GATED:
            return None
        H = r["hidden"]
        out = {"fc.weight": Ext(("gate_proj.weight", "up_proj.weight"), sizes=(H, H)),
               "proj.weight": Ext(("down_proj.weight",))}
        if b:
            out.update({"fc.bias": Ext(("gate_proj.bias", "up_proj.bias"), sizes=(H, H)),
                        "proj.bias": Ext(("down_proj.bias",))})
        return out

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

