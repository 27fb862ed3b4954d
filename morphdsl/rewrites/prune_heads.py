"""prune_heads(target, k, by='magnitude'): remove the k weakest heads of every attention layer
the target names, the inverse of add_head.

A head's score is ||the q/k/v rows it reads with|| x ||the proj columns it is read with||
(`unit_scores` over the op's declared `heads` axis, ops/axes.py); the k smallest go, the rest
keep their order and their weights and optimizer state. head_dim is kept (written into the
args), so the width of q.k stays. With grouped-query attention (`kv_heads`) the `heads` axis
counts query heads per key/value group, as add_head's does: k query heads go from every group
(heads -= k * kv_heads), the same slot in each group, scored over the groups. Heads that
add_head just added have zero proj columns, so they score 0 and go first: add_head(n) then
prune_heads(k = n) is the identity. Not exact otherwise: grow_model reports the output change.
"""
from __future__ import annotations

import torch

from ..errors import GrowthError
from .axes import find_sites, shrink_site, unit_scores
from .registry import finish, opinst, rewrite
from .transfer import TransferPlan


@rewrite("prune_heads", applies_to=["heads"], exact=False, needs_weights=True)
def prune_heads(graph, target=None, k: int = 1, by: str = "magnitude", state=None):
    """Remove k heads per attention layer, smallest ||q,k,v rows|| * ||proj cols|| first (not exact)."""
    if by != "magnitude":
        raise GrowthError(f"prune_heads knows `by = magnitude`, not `{by}`")
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise GrowthError(f"prune_heads needs a positive head count k, got {k!r}")
    if state is None:
        raise GrowthError("prune_heads needs the weights to choose heads",
                          hint="use grow_model(module, 'prune_heads', ...) or pass state=state_dict")
    g = graph.copy()
    plan = TransferPlan()
    notes = []
    for site in find_sites(g, target, "heads", "attention layer"):
        if site.lanes:
            raise GrowthError(f"{site.path} runs per lane; pruning lane heads is not supported",
                              hint="target an attention outside the partition")
        r = g.unit(site.path).resolved
        before, kv = r["heads"], r.get("kv_heads")
        per = f" per key/value group ({kv} groups)" if kv is not None else ""
        H = site.size  # heads, or query heads per group
        if not 0 < k < H:
            raise GrowthError(f"{site.path} has {H} heads{per}: prune k must be in 1..{H - 1}, got {k}",
                              hint="an attention layer keeps at least one head" +
                              (" per group" if kv is not None else ""))
        drop = set(torch.argsort(unit_scores(site, state), stable=True)[:k].tolist())
        shrink_site(g, plan, site, [i for i in range(H) if i not in drop])
        after = opinst(g, site.path).args["heads"]
        notes.append(f"{site.path}: heads {before} -> {after} (dropped heads {sorted(drop)[:8]}"
                     + (" of each group)" if kv is not None else ")"))
    return finish(graph, g, plan, "prune_heads", {"target": target, "k": k, "by": by}, False, notes)
