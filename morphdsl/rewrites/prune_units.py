"""prune_units(target, k, by='magnitude'): remove the k hidden units of least
||weights reading the input|| * ||weights reading the unit|| from every hidden axis the target
names (an mlp, a gated mlp, a linear chain). Not exact: grow_model reports the output change."""
from __future__ import annotations

import torch

from ..errors import GrowthError
from .axes import find_sites, shrink_site, unit_scores
from .registry import finish, rewrite
from .transfer import TransferPlan


@rewrite("prune_units", applies_to=["hidden"], exact=False, needs_weights=True)
def prune_units(graph, target=None, k: int = 1, by: str = "magnitude", state=None):
    """Remove k hidden units per MLP, smallest ||fc row|| * ||proj col|| first (not exact)."""
    if by != "magnitude":
        raise GrowthError(f"prune_units knows `by = magnitude`, not `{by}`")
    if state is None:
        raise GrowthError("prune_units needs the weights to choose units",
                          hint="use grow_model(module, 'prune_units', ...) or pass state=state_dict")
    g = graph.copy()
    plan = TransferPlan()
    notes = []
    for site in find_sites(g, target, "hidden", "mlp", chains=True):
        H = site.size
        if site.lanes:
            raise GrowthError(f"{site.path} runs per lane; pruning lane MLPs is not supported")
        if not isinstance(k, int) or isinstance(k, bool) or not 0 < k < H:
            raise GrowthError(f"prune k must be in 1..{H - 1}, got {k!r}")
        drop = set(torch.argsort(unit_scores(site, state))[:k].tolist())
        shrink_site(g, plan, site, [i for i in range(H) if i not in drop])
        notes.append(f"{site.path}: hidden {H} -> {H - k} (dropped units {sorted(drop)[:8]})")
    return finish(graph, g, plan, "prune_units", {"target": target, "k": k, "by": by}, False, notes)
