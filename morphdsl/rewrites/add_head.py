"""add_head(target, n=1): n new attention heads with zero output-projection columns (exact).

Heads are the declared `heads` axis of an op (ops/axes.py): for attention, the q/k/v rows of
`qkv` (three sections of heads x head_dim) and the columns of `proj`. Each old head keeps its
place within its section; the new heads' q/k/v rows are random, their proj columns zero, so
their output is 0 and the function is unchanged. head_dim is written into the args so it stays
fixed. Inside lanes every lane gets n heads (heads += n * lanes).
"""
from __future__ import annotations

from ..errors import GrowthError
from .axes import find_sites, grow_site
from .registry import finish, rewrite
from .transfer import TransferPlan


@rewrite("add_head", applies_to=["heads"], exact=True)
def add_head(graph, target=None, n: int = 1):
    """Add n heads to an attention layer (zero output columns: exact)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise GrowthError(f"add_head needs a positive head count n, got {n!r}")
    g = graph.copy()
    plan = TransferPlan()
    notes = []
    for site in find_sites(g, target, "heads", "attention layer"):
        add = n * (site.lanes or 1)
        grow_site(g, plan, site, add)
        notes.append(f"{site.path}: heads {site.size} -> {site.size + add}")
    return finish(graph, g, plan, "add_head", {"target": target, "n": n}, True, notes)
