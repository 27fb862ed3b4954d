"""prune(target): remove a seed exactly — the host computes what it computed before the seed.

A seed is pruned where its output is *added* to the host's: it ends the body of a `residual`
(`residual { s: seed { ... } }`, or `residual { ln  s: seed { ... } }`), and then the whole
residual goes (x + gate(branch(x)) becomes x), or it ends a branch of `parallel(join = add)`,
and then that branch goes (a parallel left with one branch becomes that branch, in a group of
the parallel's label so the host's paths stay). The host's weights are plain copies; the
removed layers' are dropped. The result is the host spec written without the seed. Relative to
the current model it is exact at stage training (the seed's forward is 0), not otherwise.
"""
from __future__ import annotations

from ..errors import GrowthError
from ..ir.graph import Region
from ..ir.seeds import find_seed
from .registry import finish, rewrite
from .transfer import TransferPlan


@rewrite("prune", applies_to=["seed"], exact=False)
def prune(graph, target=None):
    """Remove a seed with the residual or parallel(join = add) branch it ends; exact at stage training."""
    g = graph.copy()
    site = find_seed(g, target)
    stage = site.region.attrs["stage"]
    chain = list(site.chain)
    k = _add_site(chain, site.path)
    holder, i = chain[k]
    child = holder.children[i]
    if child.kind == "residual":          # the seed ends a residual body: the residual goes
        del holder.children[i]
        what = "its residual"
    else:                                 # holder is the parallel: the branch goes
        del holder.children[i]
        what = "its parallel branch"
        if len(holder.children) == 1 and k > 0:
            up, j = chain[k - 1]
            br = holder.children[0]
            if holder.name is not None or holder.convex:
                up.children[j] = Region("group", [br], name=holder.name, span=holder.span,
                                        convex=holder.convex)
            elif br.kind == "group" and br.name is None and not br.convex and not br.attrs:
                up.children[j:j + 1] = br.children  # an unnamed branch adds no path: splice it
            else:
                up.children[j] = br
    exact = stage == "training"
    note = f"{site.path}: pruned with {what} at stage {stage}" + \
        ("" if exact else " (not exact relative to the current model: the seed was live)")
    return finish(graph, g, TransferPlan(), "prune", {"target": site.path}, exact, [note])


def _add_site(chain, path) -> int:
    """The index in `chain` of (holder, i) where holder.children[i] is the residual the seed
    ends, or holder is the parallel(join = add) whose branch i the seed ends."""
    for k in range(len(chain) - 1, -1, -1):
        holder, i = chain[k]
        if holder.kind == "parallel":
            if holder.attrs.get("join") == "add" and not holder.attrs.get("split") and len(holder.children) > 1:
                return k
            break
        if i != len(holder.children) - 1 or holder.kind not in ("group", "residual"):
            break
        if holder.kind == "residual":
            return k - 1
    raise GrowthError(f"`{path}` cannot be pruned: its output is not added to the host's",
                      hint="prune removes a seed that ends a `residual { }` body or a branch of "
                           "`parallel(join = add)`; use fossilize to keep it")
