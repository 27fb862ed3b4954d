"""add_head(target, n=1): n new attention heads with zero output-projection columns (exact).

Heads are the declared `heads` axis of an op (ops/axes.py): for attention, the q/k/v rows of
`qkv` (three sections of heads x head_dim) and the columns of `proj`. Each old head keeps its
place within its section; the new heads' q/k/v rows are random, their proj columns zero, so
their output is 0 and the function is unchanged. head_dim is written into the args so it stays
fixed. Inside lanes every lane gets n heads (heads += n * lanes). With grouped-query attention
(`kv_heads`) every key/value group gets n query heads (heads += n * kv_heads); `kv = true` adds
n key/value heads instead, each with a full group of new query heads.
"""
from __future__ import annotations

from ..errors import GrowthError
from .axes import find_sites, grow_site
from .registry import finish, opinst, rewrite
from .transfer import TransferPlan


@rewrite("add_head", applies_to=["heads"], exact=True)
def add_head(graph, target=None, n: int = 1, kv: bool = False):
    """Add n heads to an attention layer (zero output columns: exact)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise GrowthError(f"add_head needs a positive head count n, got {n!r}")
    if not isinstance(kv, bool):
        raise GrowthError(f"add_head's `kv` is true or false, got {kv!r}",
                          hint="`kv = true` adds key/value heads (grouped-query attention)")
    axis = "kv_heads" if kv else "heads"
    g = graph.copy()
    plan = TransferPlan()
    notes = []
    for site in find_sites(g, target, axis, "grouped-query attention layer" if kv else "attention layer"):
        before = g.unit(site.path).resolved["heads"]
        grow_site(g, plan, site, n * (site.lanes or 1))
        after = opinst(g, site.path).args["heads"]
        notes.append(f"{site.path}: heads {before} -> {after}" +
                     (f", kv_heads {site.size} -> {site.size + n}" if kv else ""))
    args = {"target": target, "n": n, **({"kv": True} if kv else {})}
    return finish(graph, g, plan, "add_head", args, True, notes)
