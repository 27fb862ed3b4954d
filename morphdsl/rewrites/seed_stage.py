"""seed_stage(target, stage, alpha): move a seed along its lifecycle (training -> blending ->
holding) or set its blending coefficient.

The seed's gate node carries the stage and alpha as arguments (no tensors), so the rewrite only
edits the region's attrs; every weight is a plain copy. It is exact when the forward strength
does not change (training -> blending at alpha 0, blending at alpha 1 -> holding, the same alpha
again); any other change is not exact and says so in its note (the seed's contribution moves
from strength a to b).
"""
from __future__ import annotations

from ..errors import GrowthError
from ..ir.seeds import find_seed
from ..ops.seed import seed_state, strength
from .registry import finish, rewrite
from .transfer import TransferPlan


@rewrite("seed_stage", applies_to=["seed"], exact=False)
def seed_stage(graph, target=None, stage: str = "blending", alpha: float | None = None):
    """Set a seed's stage (training | blending | holding) and alpha; exact when the forward strength stays."""
    g = graph.copy()
    site = find_seed(g, target)
    try:
        new_stage, new_alpha = seed_state(stage, alpha)
    except ValueError as e:
        raise GrowthError(f"seed_stage({site.path}): {e.args[0]}", hint=e.args[1]) from None
    old = dict(site.region.attrs)
    site.region.attrs = {**old, "stage": new_stage, "alpha": new_alpha}
    a, b = strength(old), strength(site.region.attrs)
    exact = a == b
    note = (f"{site.path}: {old['stage']} -> {new_stage}, strength {a:g} -> {b:g}"
            + ("" if exact else " (not exact: the seed's contribution changes)"))
    return finish(graph, g, TransferPlan(), "seed_stage",
                  {"target": site.path, "stage": new_stage, "alpha": alpha}, exact, [note])
