"""Causality: the output at position t must not depend on inputs at positions t' > t.

Static (`causality(graph)`): every op whose `positions` is not `pointwise` is looked at;
`attention(causal = true)` is causal, anything `noncausal` is reported at its location. This
check is *not* part of `static_checks` (non-causal attention is a legitimate encoder construct);
`morphc verify` reports it and fails on it.

Dynamic (`causality_probe(module)`): perturb the input at position t' (a different token, or a
random vector for a model on features) and check that outputs at every t < t' are unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import Span
from ..ir.graph import MorphGraph
from ..ops import get_op


@dataclass
class Finding:
    node: str
    span: Span | None
    message: str

    def as_dict(self):
        return {"node": self.node, "span": str(self.span) if self.span else None, "message": self.message}


def _positions(op, r) -> str:
    return op.positions_of(r) if hasattr(op, "positions_of") else op.positions


def causality(g: MorphGraph) -> list[Finding]:
    """Ops that let a position see the future (empty list: the model is causal)."""
    out = []
    for key, d in g.nodes():
        if d.kind != "op":
            continue
        op = get_op(d.op)
        if _positions(op, d.resolved) == "noncausal":  # named as written (`attn`, not `attn.sdpa`)
            at = g.written(key)
            u = g.unit(at)
            shown = f"{u.op}(causal = false)" if "causal" in get_op(u.op).Args.model_fields else f"`{u.op}`"
            out.append(Finding(at, d.get("span"), f"{shown} lets position t see the future"))
    return out


@dataclass
class ProbeReport:
    T: int
    max_leak: float   # largest change of an output before t', relative to the change at t' and after
    leaks: list = field(default_factory=list)     # (t, t') pairs with a change

    @property
    def ok(self) -> bool:
        return not self.leaks

    def as_dict(self):
        return {"T": self.T, "max_leak": self.max_leak, "leaks": self.leaks[:16], "ok": self.ok}


def causality_probe(module, T: int = 8, seed: int = 0, tol: float = 1e-9) -> ProbeReport:
    """Perturb each position t' and check that outputs at t < t' do not move (float64, eval):
    a leak is a change above `tol` times the largest change at positions >= t'."""
    import copy

    g = module.morph_graph
    T = min(T, g.ctx or T)
    m = copy.deepcopy(module).double().eval()
    gen = torch.Generator().manual_seed(seed)
    C = g.input_type.channels
    if C is None:
        V = next((d.resolved["vocab"] for _, d in g.op_nodes("embed")), 2)
        x = torch.randint(0, V, (1, T), generator=gen)
    else:
        x = torch.randn(1, T, C, generator=gen, dtype=torch.float64)
    leaks, worst = [], 0.0
    with torch.no_grad():
        y = m(x)                                                    # (1, T, C_out)
        scale = max(float(y.abs().max()), 1.0)
        for tp in range(1, T):
            x2 = x.clone()
            if C is None:
                x2[0, tp] = (x[0, tp] + 1) % V
            else:
                x2[0, tp] = torch.randn(C, generator=gen, dtype=torch.float64)
            d = (m(x2) - y)[0].abs().amax(dim=-1)                   # (T,) change per position
            ref = float(d[tp:].max())                               # the effect where it is allowed
            diff = d[:tp] / (ref if ref > 0 else scale)
            worst = max(worst, float(diff.max()))
            leaks += [(t, tp) for t in (diff > tol).nonzero().flatten().tolist()]
    return ProbeReport(T, worst, leaks)
