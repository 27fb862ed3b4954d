"""widen_embed(factor=2): every residual width C -> k*C by uniform duplication (exact).

The residual stream becomes [x, x, ...] (k copies). Each op keeps that invariant by its own
rule, `Op.widen` (ops/widen.py has the table: embeddings repeat their columns, norms their
gains, attention and mlp read [x, x] with input columns / k and write it with repeated output
rows, attention duplicating its heads, linear chains like an mlp, channel-wise ops nothing).
This rewrite only walks the graph, tells each op its context (a linear's place in a chain, a
norm before a tied unembed) and collects the rules into a transfer plan.
`noise = e` (default 0.1) adds a symmetry breaker that keeps exactness: +E, E ~ N(0, e^2), on the
first copy of each input-column block and -E on the second (and so on for further pairs of
copies), so their sum (what [x, x] sees) is unchanged. Without it the copies get identical
gradients and stay copies: the model keeps its old width. The default comes from the growth
benchmark (docs/growth.md, section 7): 0.1 beat 0.01 by 0.008-0.009 nats on the story corpus.
Lanes are not widened this way (use add_lane).
"""
from __future__ import annotations

from ..errors import GrowthError
from ..ops import get_op
from ..ops.widen import WidenCtx
from .axes import chain_sites
from .registry import finish, opinst, rewrite
from .transfer import Entry, TransferPlan


def _roles(g) -> dict:
    """A linear's place in the linear -> channel-wise -> linear chains: reads / writes / inner."""
    chains = chain_sites(g)
    first = {k for c in chains for k, _ in c.parts if (k, "out") in c.resize}
    last = {k for c in chains for k, _ in c.parts if (k, "out") not in c.resize}
    return {**{k: "reads" for k in first - last}, **{k: "writes" for k in last - first},
            **{k: "inner" for k in first & last}}


@rewrite("widen_embed", applies_to=["graph"], exact=True)
def widen_embed(graph, factor: int = 2, noise: float = 0.1, seed: int = 0):
    """Double (x factor) the residual width by duplicating channels (exact)."""
    k = factor
    if not isinstance(k, int) or isinstance(k, bool) or k < 2:
        raise GrowthError(f"widen_embed needs an integer factor >= 2, got {factor!r}")
    if graph.input_type.channels is not None:
        raise GrowthError("widen_embed widens token models (with an `embed`); this one takes features")
    g = graph.copy()
    plan = TransferPlan()
    nodes = g.units()
    succ = {i: k2 for k2, d in nodes for i in d.inputs}
    roles = _roles(g)
    for n, (path, d) in enumerate(nodes):
        if d.kind != "op" or d.op == "input":
            continue
        if d.get("lanes") or d.resolved.get("lanes"):
            raise GrowthError(f"`{path}` runs in lanes; widen a partitioned model with add_lane")
        op, r = get_op(d.op), d.resolved
        nxt = g.unit(succ[path]) if path in succ else None
        prev = g.unit(d.inputs[0]) if d.inputs else None
        ctx = WidenCtx(k, noise, seed + n, role=roles.get(path, "stream"),
                       tied_next=bool(nxt and nxt.resolved.get("tie")),
                       after_absorber=bool(prev and prev.kind == "op" and get_op(prev.op).absorbs_scale))
        try:
            w = op.widen(r, ctx)
        except ValueError as e:
            raise GrowthError(f"`{path}` {e.args[0]}", hint=e.args[1] if len(e.args) > 1 else None) from None
        if w is None:
            raise GrowthError(f"widen_embed does not know how to widen `{d['op']}` (at `{path}`)",
                              hint="an op widens when it declares `widen` (ops/widen.py): embeddings, "
                                   "norms, attention, mlp, linear chains, channel-wise ops, unembed")
        for p, (fn, state_fn) in w.tensors.items():
            plan.entries[f"{path}.{p}"] = Entry(f"{path}.{p}", fn=fn, state_fn=state_fn)
        if w.args or w.drop:
            inst = opinst(g, path)
            inst.args = {**{a: v for a, v in inst.args.items() if a not in w.drop}, **w.args}
    C = graph.width
    return finish(graph, g, plan, "widen_embed", {"factor": k, "noise": noise}, True,
                  [f"width {C} -> {k * C} (duplicated channels)"])
