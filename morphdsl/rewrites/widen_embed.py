"""widen_embed(factor=2): every residual width C -> k*C by uniform duplication (exact).

The residual stream becomes [x, x, ...] (k copies). Each op keeps that invariant:
- embed / pos_embed: weight columns repeated k times;
- layernorm / rmsnorm: mean and variance of [x, x] equal those of x, so the normalised output is
  duplicated too; gains and biases are repeated;
- attention: input columns of qkv repeated and divided by k (so W'[x, x] = W x); heads H -> kH
  with head j a copy of head j mod H (head_dim kept, so the q.k scale is unchanged); proj rows
  repeated, its columns divided by k (the k copies of a head sum back to one);
- mlp: fc input columns repeated / k, hidden units unchanged, proj rows repeated;
- unembed: untied: input columns / k; tied: the norm right before it is divided by k instead.
`noise = e` (default 0.1) adds a symmetry breaker that keeps exactness: +E, E ~ N(0, e^2), on the
first copy of the qkv / fc input columns and -E on the second (and so on for further pairs of
copies), so their sum (what [x, x] sees) is unchanged. Without it the copies get identical
gradients and stay copies: the model keeps its old width. The default comes from the growth
benchmark (docs/growth.md, section 7): 0.1 beat 0.01 by 0.008-0.009 nats on the story corpus.
Lanes are not widened this way (use add_lane).
"""
from __future__ import annotations

import torch

from ..errors import GrowthError
from ..ops import get_op
from .axes import chain_sites
from .registry import finish, opinst, rewrite
from .transfer import Entry, TransferPlan

_PASS = {"add", "dropout", "input"}


def _rep(t, k, dim, scale=1.0):
    return torch.cat([t] * k, dim=dim) * scale


def _in_cols(k, noise, gen_seed):
    def f(w):  # (out, C) -> (out, kC), columns / k, paired noise on copies (0, 1), (2, 3), ...
        parts = [w / k for _ in range(k)]
        if noise:
            gen = torch.Generator().manual_seed(gen_seed)
            for a in range(0, k - 1, 2):  # an odd last copy differs from the noised ones anyway
                e = (torch.randn(w.shape, generator=gen) * noise).to(w)
                parts[a], parts[a + 1] = parts[a] + e, parts[a + 1] - e
        return torch.cat(parts, dim=1)
    return f


def _heads(H, hd, k, sections):
    """Row/column index (into the old layout [sections][H][hd]) of each new [sections][kH][hd]."""
    idx = []
    for s in range(sections):
        for j in range(k * H):
            base = s * H * hd + (j % H) * hd
            idx.extend(range(base, base + hd))
    return torch.tensor(idx)


@rewrite("widen_embed", applies_to=["graph"], exact=True)
def widen_embed(graph, factor: int = 2, noise: float = 0.1, seed: int = 0):
    """Double (x factor) the residual width by duplicating channels (exact)."""
    k = factor
    if not isinstance(k, int) or k < 2:
        raise GrowthError(f"widen_embed needs an integer factor >= 2, got {factor!r}")
    if graph.input_type.channels is not None:
        raise GrowthError("widen_embed widens token models (with an `embed`); this one takes features")
    g = graph.copy()
    plan = TransferPlan()
    def E(name, fn, state_fn=None):  # state_fn: the duplication without rescale and noise
        plan.entries[name] = Entry(name, fn=fn, state_fn=state_fn or fn)

    nodes = g.nodes()
    succ = {i: k2 for k2, d in nodes for i in d["inputs"]}
    chains = chain_sites(g)  # linear -> channel-wise -> linear: hidden units stay, as in an mlp
    first = {k for c in chains for k, _ in c.parts if (k, "out") in c.resize}
    last = {k for c in chains for k, _ in c.parts if (k, "out") not in c.resize}
    reads, writes = first - last, last - first  # a linear in both maps hidden to hidden: unchanged
    for n, (path, d) in enumerate(nodes):
        op, r = d["op"], d["resolved"]
        if d.get("lanes") or r.get("lanes"):
            raise GrowthError(f"`{path}` runs in lanes; widen a partitioned model with add_lane")
        if op in _PASS or d["kind"] != "op":
            continue
        if not d["param_shapes"] and not d["buffer_shapes"] and get_op(op).channels == "elementwise":
            continue  # channel-wise and parameter-free: commutes with duplicating channels
        if path in first & last:
            continue
        if path in reads:  # a chain's first linear: reads the widened stream, like mlp's fc
            E(f"{path}.weight", _in_cols(k, noise, seed + n), lambda w: _rep(w, k, 1))
            continue
        if path in writes:  # a chain's last linear: writes the stream, like mlp's proj
            E(f"{path}.weight", lambda w: _rep(w, k, 0))
            if r.get("bias", True):
                E(f"{path}.bias", lambda b: _rep(b, k, 0))
            inst = opinst(g, path)
            inst.args = {**inst.args, "out": k * r["out"]}
            continue
        if op in ("embed", "pos_embed"):
            E(f"{path}.weight", lambda w: _rep(w, k, 1))
            if op == "embed":
                inst = opinst(g, path)
                inst.args = {**inst.args, "dim": k * r["dim"]}
        elif op in ("layernorm", "rmsnorm"):
            nxt = succ.get(path)
            tied = nxt is not None and g.dag.nodes[nxt]["op"] == "unembed" and g.dag.nodes[nxt]["resolved"].get("tie")
            sc = 1.0 / k if tied else 1.0
            for pn in d["param_shapes"]:
                E(f"{path}.{pn}", lambda w, sc=sc: _rep(w, k, 0, sc), lambda w: _rep(w, k, 0))
        elif op == "attention":
            if r.get("kv_heads") is not None:
                raise GrowthError(f"widen_embed does not widen grouped-query attention yet (at `{path}`)",
                                  hint="widen a model whose attention has no `kv_heads`")
            H, hd = r["heads"], r["head_dim"]
            rows, cols = _heads(H, hd, k, 3), _heads(H, hd, k, 1)
            cin = _in_cols(k, noise, seed + n)
            E(f"{path}.qkv.weight", lambda w, rows=rows, cin=cin: cin(w[rows]),
              lambda w, rows=rows: _rep(w[rows], k, 1))
            E(f"{path}.proj.weight", lambda w, cols=cols: _rep(w[:, cols], k, 0) / k,
              lambda w, cols=cols: _rep(w[:, cols], k, 0))
            if r.get("bias", True):
                E(f"{path}.qkv.bias", lambda b, rows=rows: b[rows])
                E(f"{path}.proj.bias", lambda b: _rep(b, k, 0))
            inst = opinst(g, path)
            inst.args = {**inst.args, "heads": k * H, "head_dim": hd}
        elif op == "mlp":
            E(f"{path}.fc.weight", _in_cols(k, noise, seed + n), lambda w: _rep(w, k, 1))
            E(f"{path}.proj.weight", lambda w: _rep(w, k, 0))
            if r.get("bias", True):
                E(f"{path}.proj.bias", lambda b: _rep(b, k, 0))
            inst = opinst(g, path)
            inst.args = {**{a: v for a, v in inst.args.items() if a != "mult"}, "hidden": r["hidden"]}
        elif op == "unembed":
            if r.get("tie"):
                if g.dag.nodes[d["inputs"][0]]["op"] not in ("layernorm", "rmsnorm"):
                    raise GrowthError(f"`{path}` is tied and not right after a norm: cannot rescale it",
                                      hint="untie it, or put a layernorm before the unembed")
            else:
                E(f"{path}.weight", lambda w: _rep(w, k, 1, 1.0 / k), lambda w: _rep(w, k, 1))
        else:
            raise GrowthError(f"widen_embed does not know how to widen `{op}` (at `{path}`)",
                              hint="it handles embed, pos_embed, norms, attention, mlp, linear chains "
                                   "(linear -> channel-wise ops -> linear), channel-wise ops, unembed")
    C = graph.dag.nodes[nodes[1][0]]["type"].channels
    return finish(graph, g, plan, "widen_embed", {"factor": k, "noise": noise}, True,
                  [f"width {C} -> {k * C} (duplicated channels)"])
