"""fossilize(target): a seed becomes an ordinary part of the host.

The seed region is replaced by a named group with the same label, so its body keeps its paths
(`s.mlp.fc.weight`) and every weight is a plain copy; the gate disappears. Exact when the seed
is at full strength (stage holding, or blending at alpha = 1); from an earlier stage the seed's
contribution jumps to full strength (not exact; the note says so).
"""
from __future__ import annotations

from ..ir.graph import Region
from ..ir.seeds import find_seed
from ..ops.seed import strength
from .registry import finish, rewrite
from .transfer import TransferPlan


@rewrite("fossilize", applies_to=["seed"], exact=False)
def fossilize(graph, target=None):
    """Replace a seed by its body (a named group); exact at holding or blending with alpha = 1."""
    g = graph.copy()
    site = find_seed(g, target)
    r = site.region
    a = strength(r.attrs)
    site.parent.children[site.index] = Region("group", r.children, name=r.name, span=r.span,
                                              convex=r.convex)
    exact = a == 1.0
    note = f"{site.path}: fossilized at {r.attrs['stage']}" + \
        ("" if exact else f" (not exact: its strength goes from {a:g} to 1)")
    return finish(graph, g, TransferPlan(), "fossilize", {"target": site.path}, exact, [note])
