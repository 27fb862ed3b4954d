"""prune_units(target, k, by='magnitude'): remove the k MLP hidden units of least
||fc row|| * ||proj column|| (not exact: grow_model reports the measured output change)."""
from __future__ import annotations

import torch

from ..errors import GrowthError
from .registry import finish, opinst, rewrite, sites
from .transfer import Entry, TransferPlan


@rewrite("prune_units", applies_to=["mlp"], exact=False, needs_weights=True)
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
    for path in sites(g, target, ["mlp"], "mlp"):
        r = g.dag.nodes[path]["resolved"]
        H = r["hidden"]
        if r.get("lanes"):
            raise GrowthError(f"{path} runs per lane; pruning lane MLPs is not supported")
        if not isinstance(k, int) or not 0 < k < H:
            raise GrowthError(f"prune k must be in 1..{H - 1}, got {k!r}")
        fc, pj = state[f"{path}.fc.weight"], state[f"{path}.proj.weight"]  # (H, C), (C, H)
        score = fc.norm(dim=1) * pj.norm(dim=0)  # (H,)
        drop = set(torch.argsort(score)[:k].tolist())
        kept = [i for i in range(H) if i not in drop]
        m = (kept, list(range(len(kept))))
        inst = opinst(g, path)
        inst.args = {**{a: v for a, v in inst.args.items() if a != "mult"}, "hidden": H - k}
        plan.entries[f"{path}.fc.weight"] = Entry(f"{path}.fc.weight", (m, None))
        if r.get("bias", True):
            plan.entries[f"{path}.fc.bias"] = Entry(f"{path}.fc.bias", (m,))
        plan.entries[f"{path}.proj.weight"] = Entry(f"{path}.proj.weight", (None, m))
        notes.append(f"{path}: hidden {H} -> {H - k} (dropped units {sorted(drop)[:8]})")
    return finish(graph, g, plan, "prune_units", {"target": target, "k": k, "by": by}, False, notes)
