"""Block-of-blocks pyramids (CONCEPTS §4), expanded into ordinary regions.

    p: pyramid(block = B, width = w, levels = k)

becomes the group `p` with
    stem:   B(w)                      a block on width w
    expand: linear(out = 2^k w)       a projector to 2^k parallel slices
    tree:   node(k)                   a binary tree of blocks
where node(0) is a leaf block B(w) and node(j) is
    parallel(split = 2, join = concat) { l: node(j-1)  r: node(j-1) }
    merge: B(2w)                      consolidates both halves
    proj:  linear(out = w)            back to width w
Output width = input width, so pyramids stack. `grow_pyramid` adds a level by making the old
tree the left child of a new root (see rewrites/grow_pyramid.py).
"""
from __future__ import annotations

from ..errors import SpecError
from ..syntax import ast as A
from .args import bind_params
from .graph import OpInst, Region


def block_at(elab, block: str, width: int, name: str | None, span):
    bdef, genv = elab.spec.blocks[block]
    if not bdef.params:
        raise SpecError(f"pyramid block `{block}` needs a width parameter first", bdef.span)
    bound = bind_params(bdef, [], {bdef.params[0].name: width}, {}, None, genv)
    stmt = A.Stmt(label=name, name=block, span=span)
    return elab.instance(stmt, {}, set(), False, bound=bound)


def tree_node(elab, block, width, level, name, span):
    if level == 0:
        return block_at(elab, block, width, name, span)
    kids = [
        Region("parallel", [tree_node(elab, block, width, level - 1, "l", span),
                            tree_node(elab, block, width, level - 1, "r", span)],
               span=span, attrs={"join": "concat", "split": True}),
        block_at(elab, block, 2 * width, "merge", span),
        OpInst("proj", "linear", {"out": width}, span),
    ]
    return Region("group", kids, name=name, span=span)


def expand_pyramid(elab, label, block, width, levels, span, convex=False):
    kids = [
        block_at(elab, block, width, "stem", span),
        OpInst("expand", "linear", {"out": (2 ** levels) * width}, span),
        tree_node(elab, block, width, levels, "tree", span),
    ]
    return Region("group", kids, name=label, span=span, convex=convex,
                  attrs={"pyramid": {"block": block, "width": width, "levels": levels}})
