"""add_petals(target, n): a hull's petals P -> P + n, the new ones gated off (alpha = 0, exact).

Petals are the hull's declared `petals` axis (ops/axes.py): every tensor is (L, P, ...) and old
petals keep their index.
The `alpha` buffer of new petals is 0, which removes them from every pooling (max/logsumexp
add log(alpha) = -inf, mean and sum multiply by alpha), so the output is unchanged and the hull
stays convex. `blend(module, path, value)` later ramps the new petals' gate up.
"""
from __future__ import annotations

import torch

from ..errors import GrowthError
from .axes import find_sites, grow_site
from .registry import finish, rewrite
from .transfer import TransferPlan


@rewrite("add_petals", applies_to=["petals"], exact=True)
def add_petals(graph, target=None, n: int = 1):
    """Add n petals to a hull with gate alpha = 0 (exact, convex)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise GrowthError(f"add_petals needs a positive petal count n, got {n!r}")
    g = graph.copy()
    plan = TransferPlan()
    notes = []
    for site in find_sites(g, target, "petals", "hull"):
        L = site.lanes or 1
        grow_site(g, plan, site, n * L)  # n per lane
        P = site.size // L
        notes.append(f"{site.path}: petals {P} -> {P + n} (new gates alpha = 0)")
    return finish(graph, g, plan, "add_petals", {"target": target, "n": n}, True, notes)


@torch.no_grad()
def blend(module, path: str, value: float, petals=None):
    """Set the gate alpha of a hull's petals (default: those not fully on) to `value` in [0, 1]."""
    if not 0.0 <= value <= 1.0:
        raise GrowthError(f"alpha must be in [0, 1], got {value}")
    a = module.get_submodule(path).alpha  # (L, P)
    idx = petals if petals is not None else (a[0] < 1).nonzero().flatten().tolist()
    a[:, idx] = value
    return idx
