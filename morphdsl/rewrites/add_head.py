"""add_head(target, n=1): n new attention heads with zero output-projection columns (exact).

Layout (see ops/modules.Attention): qkv rows are [3][heads per lane][head_dim] (per lane when
partitioned), proj columns are [heads per lane][head_dim]. Old rows/columns keep their place
within each q/k/v section; the new heads' q/k/v rows are random (std 0.02), their proj columns 0,
so their output is 0 and the function is unchanged. head_dim is written into the args so it
stays fixed. Inside lanes, every lane gets n heads (heads += n * lanes).
"""
from __future__ import annotations

from ..errors import GrowthError
from .registry import finish, opinst, rewrite, sites
from .transfer import Entry, TransferPlan


def head_maps(old_h: int, new_h: int, hd: int, sections: int):
    """(old_idx, new_idx) along a dim laid out [sections][heads][hd] when heads old_h -> new_h:
    each old head keeps its place within its section; the new heads fill each section's end."""
    o, n = [], []
    for s in range(sections):
        for j in range(old_h * hd):
            o.append(s * old_h * hd + j)
            n.append(s * new_h * hd + j)
    return o, n


@rewrite("add_head", applies_to=["attention"], exact=True)
def add_head(graph, target=None, n: int = 1):
    """Add n heads to an attention layer (zero output columns: exact)."""
    if not isinstance(n, int) or n < 1:
        raise GrowthError(f"add_head needs a positive head count n, got {n!r}")
    g = graph.copy()
    plan = TransferPlan()
    notes = []
    for path in sites(g, target, ["attention"], "attention layer"):
        d = g.dag.nodes[path]
        r = d["resolved"]
        L, H, hd = r.get("lanes"), r["heads"], r["head_dim"]
        add = n * (L or 1)
        hl, nl = H // (L or 1), (H + add) // (L or 1)  # heads per lane, old and new
        inst = opinst(g, path)
        inst.args = {**inst.args, "heads": H + add, "head_dim": hd}
        rows = head_maps(hl, nl, hd, 3)  # q, k, v sections of qkv (per lane)
        cols = head_maps(hl, nl, hd, 1)  # proj input columns
        lead = (None,) if L else ()  # the lane dim is unchanged
        plan.entries[f"{path}.qkv.weight"] = Entry(f"{path}.qkv.weight", lead + (rows, None))
        if r.get("bias", True):
            plan.entries[f"{path}.qkv.bias"] = Entry(f"{path}.qkv.bias", lead + (rows,), "zero")
        plan.entries[f"{path}.proj.weight"] = Entry(f"{path}.proj.weight", lead + (None, cols), "zero")
        notes.append(f"{path}: heads {H} -> {H + add} (head_dim {hd})")
    return finish(graph, g, plan, "add_head", {"target": target, "n": n}, True, notes)
