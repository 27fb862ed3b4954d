"""widen_mlp(target, by): `by` new hidden units wherever a hidden axis is (exact).

A hidden axis is any op's declared `hidden` axis (mlp, a gated mlp, a user op that declares
one) or a linear -> channel-wise ops -> linear chain (rewrites/axes.py). New units read the
input with fresh random weights and are read with zero weights, so the output is unchanged.
"""
from __future__ import annotations

from ..errors import GrowthError
from .axes import find_sites, grow_site
from .registry import finish, rewrite
from .transfer import TransferPlan


@rewrite("widen_mlp", applies_to=["hidden"], exact=True)
def widen_mlp(graph, target=None, by: int = 16):
    """Add `by` hidden units to an MLP or linear chain (zero output weights: exact)."""
    if not isinstance(by, int) or isinstance(by, bool) or by < 1:
        raise GrowthError(f"widen_mlp needs a positive unit count `by`, got {by!r}")
    g = graph.copy()
    plan = TransferPlan()
    notes = []
    for site in find_sites(g, target, "hidden", "mlp", chains=True):
        grow_site(g, plan, site, by)
        notes.append(f"{site.path}: hidden {site.size} -> {site.size + by}")
    return finish(graph, g, plan, "widen_mlp", {"target": target, "by": by}, True, notes)
