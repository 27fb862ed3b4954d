"""widen_mlp(target, by): `by` new hidden units per MLP, random fc rows, zero proj columns (exact)."""
from __future__ import annotations

from ..errors import GrowthError
from .registry import finish, opinst, rewrite, sites
from .transfer import Entry, TransferPlan


@rewrite("widen_mlp", applies_to=["mlp"], exact=True)
def widen_mlp(graph, target=None, by: int = 16):
    """Add `by` hidden units to an MLP (zero output weights: exact)."""
    if not isinstance(by, int) or by < 1:
        raise GrowthError(f"widen_mlp needs a positive unit count `by`, got {by!r}")
    g = graph.copy()
    plan = TransferPlan()
    notes = []
    for path in sites(g, target, ["mlp"], "mlp"):
        r = g.dag.nodes[path]["resolved"]
        L, H = r.get("lanes"), r["hidden"]
        if L and by % L:
            raise GrowthError(f"{path} runs in {L} lanes: widen by a multiple of {L}",
                              hint=f"e.g. `by = {L * max(1, by // L)}`")
        hl = H // (L or 1)
        units = (list(range(hl)), list(range(hl)))  # old unit i stays at i (per lane)
        inst = opinst(g, path)
        args = {k: v for k, v in inst.args.items() if k != "mult"}
        inst.args = {**args, "hidden": H + by}
        lead = (None,) if L else ()
        plan.entries[f"{path}.fc.weight"] = Entry(f"{path}.fc.weight", lead + (units, None))
        if r.get("bias", True):
            plan.entries[f"{path}.fc.bias"] = Entry(f"{path}.fc.bias", lead + (units,), "zero")
        plan.entries[f"{path}.proj.weight"] = Entry(f"{path}.proj.weight", lead + (None, units), "zero")
        notes.append(f"{path}: hidden {H} -> {H + by}")
    return finish(graph, g, plan, "widen_mlp", {"target": target, "by": by}, True, notes)
