"""add_lane(target=None, n=1): n new lanes in a partitioned host (exact).

A partition of L lanes over width C (lane width c = C/L) becomes L+n lanes over C + n*c: the
new channels are appended. Each op states how it follows (`Op.add_lanes`, ops/lanes.py has the
table): per-lane tensors copy the old lanes and start the new ones fresh (their own heads,
petals, norms); the Sinkhorn mixer keeps old and new lanes apart (exp(-1e4) = 0); embeddings
gain columns and an untied unembed zero columns (a tied one: zero new embedding columns, so new
lanes start from position embeddings only), so nothing downstream sees the new lanes yet. This
rewrite finds the partition, gives each op its context and collects the rules.
"""
from __future__ import annotations

from ..errors import GrowthError
from ..ir.lower import region_paths
from ..ops import get_op
from ..ops.lanes import LaneCtx
from .registry import finish, opinst, rewrite
from .transfer import Entry, TransferPlan


def _partitions(root):
    return [(sc, it) for sc, it in region_paths(root) if it.kind == "partition"]


@rewrite("add_lane", applies_to=["partition"], exact=True)
def add_lane(graph, target=None, n: int = 1):
    """Append n lanes (channels, heads, petals, norms) to a partitioned host (exact)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise GrowthError(f"add_lane needs a positive lane count n, got {n!r}")
    g = graph.copy()
    parts = _partitions(g.root)
    if target is not None:
        parts = [(p, r) for p, r in parts if p == str(target)]
    if len(parts) != 1:
        raise GrowthError("add_lane needs exactly one `partition(lanes = L)` region" +
                          (f" named `{target}`" if target else ""),
                          hint="name it, e.g. `lanes: partition(lanes = 4) { ... }`, and pass that name")
    ppath, preg = parts[0]
    L = preg.attrs["lanes"]
    if g.input_type.channels is not None:
        raise GrowthError("add_lane grows token models whose embed feeds the partition")
    C = next(d.in_types[0].channels for _, d in g.units() if d.get("lanes") == L)  # entering it
    c, L2 = C // L, L + n
    C2 = C + n * c
    plan = TransferPlan()
    tied = any(d.resolved.get("tie") for _, d in g.units())
    for path, d in g.units():
        if d.kind != "op":
            continue
        inside = d.get("lanes") is not None
        if inside and (d.get("lanes") != L or "lanes" in d.args or d.resolved.get("lanes") not in (None, L)):
            raise GrowthError(f"`{path}` has its own lane count; add_lane grows one partition")
        ctx = LaneCtx(L, L2, C, C2, inside, tied, dict(d.args))
        grown = get_op(d.op).add_lanes(d.resolved, ctx)
        if grown is None:
            if not inside:
                raise GrowthError(f"`{path}` ({d.op}) runs on the full width outside the partition; "
                                  "add_lane cannot keep it exact", hint="put it inside the partition")
            raise GrowthError(f"add_lane does not know how to add a lane to `{d.op}` (at `{path}`)",
                              hint="an op grows lanes when it declares `add_lanes` (ops/lanes.py)")
        for pn, (maps, init) in grown.tensors.items():
            plan.entries[f"{path}.{pn}"] = Entry(f"{path}.{pn}", maps, init)
        if grown.args:
            inst = opinst(g, path)
            inst.args = {**inst.args, **grown.args}
    preg.attrs = {**preg.attrs, "lanes": L2}
    return finish(graph, g, plan, "add_lane", {"target": target, "n": n}, True,
                  [f"{ppath}: lanes {L} -> {L2}, width {C} -> {C2}"])
