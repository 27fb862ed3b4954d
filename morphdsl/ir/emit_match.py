"""Is a grown region still what its block definition makes? Re-elaboration and comparison.

A region made from `B(args)` carries `attrs["block"] = (B, bound args)`. Rewrites edit the tree
and may leave that record stale, so it is never trusted: `Blocks.instance` elaborates the
definition again with the recorded arguments, in the same scope, and `diff` compares the result
with the region (structure, names, ops, every written argument). Equal means the call `B(args)`
reproduces the region exactly. Otherwise `rebind` tries new values for parameters that the body
passes straight through (`attn: attention(heads = heads)` after add_head: `heads = 3`).

`claimed` and `scopes` follow the elaborator's naming rules: an unnamed region or block instance
puts its layers' names in the enclosing scope, where later unlabelled ops are auto-named.
"""
from __future__ import annotations

from ..syntax import ast as A
from .emit_blocks import Blocks, body_stmts, kwarg
from .emit_values import MISSING, same
from .graph import OpInst, Region


# ----------------------------------------------------------------------------- comparison
def _attrs(x: Region):
    if x.kind == "parallel":
        return (x.attrs.get("join"), bool(x.attrs.get("split")))
    if x.kind == "partition":
        return x.attrs.get("lanes")
    if x.kind == "seed":
        return (x.attrs.get("stage"), x.attrs.get("alpha"))
    return None


def diff(e, r, out: list) -> bool:
    """Compare `e` (elaborated) with `r` (the graph's): False if they differ in structure, else
    True with every differing op argument appended to `out` as (op of e, key, old, new)."""
    if isinstance(e, OpInst) or isinstance(r, OpInst):
        if not (isinstance(e, OpInst) and isinstance(r, OpInst)):
            return False
        if (e.name, e.op, bool(e.convex)) != (r.name, r.op, bool(r.convex)):
            return False
        for k in [*e.args, *(k for k in r.args if k not in e.args)]:
            a, b = e.args.get(k, MISSING), r.args.get(k, MISSING)
            if not same(a, b):
                out.append((e, k, a, b))
        return True
    if (e.kind, e.name, bool(e.convex), _attrs(e), len(e.children)) != \
            (r.kind, r.name, bool(r.convex), _attrs(r), len(r.children)):
        return False
    return all(diff(a, b, out) for a, b in zip(e.children, r.children))


def alike(e, r) -> bool:
    out: list = []
    return e is not None and diff(e, r, out) and not out


def rebind(blocks: Blocks, name: str, bound: dict, r: Region, names, label, free: bool = True):
    """(bound, remaining diffs) that come closest to elaborating `name` into `r`, changing only
    parameters passed straight to an op argument (when `free`); None if the structure differs."""
    bdef = blocks.defs[name]
    pnames = {p.name for p in bdef.params}
    stmts = body_stmts(bdef)
    b = blocks.complete(name, bound)
    if b is None:
        return None
    best = None
    for _ in range(len(pnames) + 1):
        e = blocks.instance(name, b, label, names, r.convex)
        out: list = []
        if e is None or not diff(e, r, out):
            return best
        if best is not None and len(out) >= len(best[1]):
            return best
        best = (b, out)
        if not out or not free:
            return best
        cand: dict = {}
        for op, key, _old, new in out:
            a = kwarg(stmts.get(op.span), key)
            if a is None or new is MISSING or not (isinstance(a.value, A.Path) and len(a.value.parts) == 1):
                continue
            p = a.value.parts[0]
            if p in pnames:
                cand[p] = new if p not in cand or same(cand[p], new) else MISSING
        cand = {p: v for p, v in cand.items() if v is not MISSING and not same(b[p], v)}
        if not cand:
            return best
        b = {**b, **cand}
    return best


# ----------------------------------------------------------------------------- scopes
def claimed(it) -> set:
    """The names `it` takes in its enclosing scope."""
    if isinstance(it, OpInst) or it.name is not None:
        return {it.name}
    out: set = set()
    for c in it.children:
        out |= claimed(c)
    return out


def scopes(root: Region):
    """(region, names taken before it in its scope, free) for every block-instance region;
    `free` when no enclosing block instance or pyramid fixes its arguments."""
    found = []

    def seq(items, names, inside):
        for it in items:
            if isinstance(it, Region):
                if "block" in it.attrs:
                    found.append((it, frozenset(names), not inside))
                deeper = inside or "block" in it.attrs or "pyramid" in it.attrs
                inner = set() if it.name else names
                if it.kind == "parallel":
                    for br in it.children:
                        seq([br], inner, deeper)
                else:
                    seq(it.children, inner, deeper)
            names |= claimed(it)

    seq(root.children, set(), False)
    return found
