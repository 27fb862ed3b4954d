"""add_lane(target=None, n=1): n new lanes in a partitioned host (exact).

A partition of L lanes over width C (lane width c = C/L) becomes L+n lanes over C + n*c: the
new channels are appended. Per-lane parameters carry the lane dim first (L, ...), so old lanes
are copied and new lanes get a fresh init (their own heads, petals, norms). Old lanes never read
new ones (lane isolation); the Sinkhorn mixer's logits get -1e4 between old and new lanes
(exp underflows to exactly 0, so the old block of the doubly-stochastic matrix is unchanged);
the new channels' effect downstream is cut by zero unembedding columns (a tied unembed: zero
new embedding columns, so new lanes start from position embeddings only).
"""
from __future__ import annotations

import torch

from ..errors import GrowthError
from ..ir.lower import region_paths
from .registry import finish, opinst, rewrite
from .transfer import Entry, TransferPlan

_OUTSIDE = {"input", "embed", "pos_embed", "unembed", "add", "dropout"}
_LANE_DIM0 = {"attention", "mlp", "linear", "hull", "petal"}
_SCALE = {"attention": "heads", "mlp": "hidden", "linear": "out", "hull": "out", "petal": "out"}


def _partitions(root):
    return [(sc, it) for sc, it in region_paths(root) if it.kind == "partition"]


@rewrite("add_lane", applies_to=["partition"], exact=True)
def add_lane(graph, target=None, n: int = 1):
    """Append n lanes (channels, heads, petals, norms) to a partitioned host (exact)."""
    if not isinstance(n, int) or n < 1:
        raise GrowthError(f"add_lane needs a positive lane count n, got {n!r}")
    g = graph.copy()
    parts = _partitions(g.root)
    if target is not None:
        parts = [(p, r) for p, r in parts if p == str(target)]
    if len(parts) != 1:
        raise GrowthError("add_lane needs exactly one `partition(lanes = L)` region" +
                          (f" named `{target}`" if target else ""),
                          hint="name it, e.g. `lanes: partition(lanes = 4) { ... }`, and pass that name")
    ppath, preg = parts[0]
    L = preg.attrs["lanes"]
    C = next(d["type"].channels for _, d in g.nodes() if d["op"] == "embed") if g.op_nodes("embed") else None
    if C is None:
        raise GrowthError("add_lane grows token models whose embed feeds the partition")
    c, L2 = C // L, L + n
    C2 = C + n * c
    keep0 = (list(range(L)), list(range(L)))
    chans = (list(range(C)), list(range(C)))
    plan = TransferPlan()
    tied = any(d["resolved"].get("tie") for _, d in g.op_nodes("unembed"))
    for path, d in g.nodes():
        op, r = d["op"], d["resolved"]
        inside = d.get("lanes") is not None
        if not inside:
            if op not in _OUTSIDE:
                raise GrowthError(f"`{path}` ({op}) runs on the full width outside the partition; "
                                  "add_lane cannot keep it exact", hint="put it inside the partition")
            if op in ("embed", "pos_embed"):
                plan.entries[f"{path}.weight"] = Entry(f"{path}.weight", (None, chans),
                                                       "zero" if (op == "embed" and tied) else "random")
                if op == "embed":
                    inst = opinst(g, path)
                    inst.args = {**inst.args, "dim": C2}
            elif op == "unembed" and not r.get("tie"):
                plan.entries[f"{path}.weight"] = Entry(f"{path}.weight", (None, chans), "zero")
            continue
        if d.get("lanes") != L or r.get("lanes") not in (None, L) or "lanes" in d["args"]:
            raise GrowthError(f"`{path}` has its own lane count; add_lane grows one partition")
        if op in _LANE_DIM0:
            for pn in list(d["param_shapes"]) + list(d["buffer_shapes"]):
                plan.entries[f"{path}.{pn}"] = Entry(f"{path}.{pn}", (keep0,))
            key = _SCALE[op]
            if key in d["args"] or op in ("attention", "mlp", "linear"):
                if op == "mlp" and "mult" in d["args"]:
                    continue  # mult x width scales by itself
                inst = opinst(g, path)
                inst.args = {**inst.args, key: r[key] // L * L2}
        elif op in ("layernorm", "rmsnorm"):
            for pn in d["param_shapes"]:
                plan.entries[f"{path}.{pn}"] = Entry(f"{path}.{pn}", (chans,))
        elif op == "mix":
            init = torch.full((L2, L2), -1e4)
            init[L:, L:] = torch.eye(n) * 4.0
            plan.entries[f"{path}.logits"] = Entry(f"{path}.logits", (keep0, keep0), init)
        elif d["param_shapes"]:
            raise GrowthError(f"add_lane does not know how to add a lane to `{op}` (at `{path}`)")
    preg.attrs = {**preg.attrs, "lanes": L2}
    return finish(graph, g, plan, "add_lane", {"target": target, "n": n}, True,
                  [f"{ppath}: lanes {L} -> {L2}, width {C} -> {C2}"])
