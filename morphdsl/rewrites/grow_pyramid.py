"""grow_pyramid(target): one more level in a block-of-blocks pyramid (exact; ir/pyramid.py).

The old tree (input 2^k w, output w) becomes the left child `l` of a new root
    parallel(split = 2, join = concat) { l: old tree   r: a fresh copy of its structure }
    merge: B(2w)          a copy of the old merge's structure, residual outputs zeroed (identity)
    proj:  linear(out = w) initialised to [I | 0] (reads the left half only)
and `expand` gains 2^k w rows (random) that feed `r`. Output = proj([l(x), r(x')]) = l(x): the old
function. Weights of the old tree move to `tree.l.*`; `r` and `merge` start fresh.
"""
from __future__ import annotations

import copy

import torch

from ..errors import GrowthError
from ..ir.graph import OpInst, Region
from ..ir.lower import region_paths
from .insert_block import residual_outputs
from .registry import finish, region, rewrite
from .transfer import Entry, TransferPlan


@rewrite("grow_pyramid", applies_to=["pyramid"], exact=True)
def grow_pyramid(graph, target=None):
    """Double a pyramid's parallel stage: a new level with an identity merge (exact)."""
    g = graph.copy()
    pyrs = [k for k, _ in _pyramids(g.root)]
    if target is None:
        if len(pyrs) != 1:
            raise GrowthError(f"the model has {len(pyrs)} pyramids: name one", hint="pyramids: " + ", ".join(pyrs))
        target = pyrs[0]
    t = str(target)
    if t not in pyrs:
        raise GrowthError(f"no pyramid at `{t}`", hint=("pyramids: " + ", ".join(pyrs)) if pyrs else None)
    pyr = region(g, t)
    stem, expand, tree = pyr.children
    info = dict(pyr.attrs["pyramid"])
    w, k = info["width"], info["levels"]
    merge = next((c for c in tree.children if isinstance(c, Region) and c.name == "merge"), None)
    if merge is None:
        raise GrowthError(f"`{t}` has no merge block to copy")
    old_tree = tree
    old_tree.name = "l"
    fresh = copy.deepcopy(old_tree)
    fresh.name = "r"
    new_merge = copy.deepcopy(merge)
    par = Region("parallel", [old_tree, fresh], span=tree.span, attrs={"join": "concat", "split": True})
    pyr.children[2] = Region("group", [par, new_merge, OpInst("proj", "linear", {"out": w}, tree.span)],
                             name="tree", span=tree.span)
    expand.args = {**expand.args, "out": 2 ** (k + 1) * w}
    pyr.attrs = {**pyr.attrs, "pyramid": {**info, "levels": k + 1}}
    plan = TransferPlan()
    from ..ir.build import relower

    relower(g)
    pre = f"{t}.tree."
    for name in g.param_shapes():
        if name.startswith(pre + "l."):
            plan.entries[name] = Entry(pre + name[len(pre) + 2:])
        elif name.startswith(pre):
            plan.entries[name] = Entry(None)
    rows = list(range(2 ** k * w))
    plan.entries[f"{t}.expand.weight"] = Entry(f"{t}.expand.weight", ((rows, rows), None))
    if f"{t}.expand.bias" in g.param_shapes():
        plan.entries[f"{t}.expand.bias"] = Entry(f"{t}.expand.bias", ((rows, rows),), "zero")
    plan.entries[f"{pre}proj.weight"] = Entry(None, init=torch.cat([torch.eye(w), torch.zeros(w, w)], 1))
    if f"{pre}proj.bias" in g.param_shapes():
        plan.entries[f"{pre}proj.bias"] = Entry(None, init="zero")
    plan.zero_output = residual_outputs(new_merge, f"{pre}merge")
    return finish(graph, g, plan, "grow_pyramid", {"target": t}, True,
                  [f"{t}: levels {k} -> {k + 1}, leaves {2 ** k} -> {2 ** (k + 1)}"])


def _pyramids(root):
    return [(sc, it) for sc, it in region_paths(root) if it.attrs.get("pyramid")]
