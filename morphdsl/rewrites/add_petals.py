"""add_petals(target, n): a hull's petals P -> P + n, the new ones gated off (alpha = 0, exact).

Every hull parameter has the petal dim at position 1 (L, P, ...); old petals keep their index.
The `alpha` buffer of new petals is 0, which removes them from every pooling (max/logsumexp
add log(alpha) = -inf, mean and sum multiply by alpha), so the output is unchanged and the hull
stays convex. `blend(module, path, value)` later ramps the new petals' gate up.
"""
from __future__ import annotations

import torch

from ..errors import GrowthError
from .registry import finish, opinst, rewrite, sites
from .transfer import Entry, TransferPlan


@rewrite("add_petals", applies_to=["hull"], exact=True)
def add_petals(graph, target=None, n: int = 1):
    """Add n petals to a hull with gate alpha = 0 (exact, convex)."""
    if not isinstance(n, int) or n < 1:
        raise GrowthError(f"add_petals needs a positive petal count n, got {n!r}")
    g = graph.copy()
    plan = TransferPlan()
    notes = []
    for path in sites(g, target, ["hull"], "hull"):
        d = g.dag.nodes[path]
        P = d["resolved"]["petals"]
        inst = opinst(g, path)
        inst.args = {**inst.args, "petals": P + n}
        keep = (list(range(P)), list(range(P)))
        for pn in list(d["param_shapes"]) + list(d["buffer_shapes"]):
            plan.entries[f"{path}.{pn}"] = Entry(f"{path}.{pn}", (None, keep),
                                                 "zero" if pn == "alpha" else "random")
        notes.append(f"{path}: petals {P} -> {P + n} (new gates alpha = 0)")
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
