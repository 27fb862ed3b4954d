"""Edited block definitions: when every copy of a block grew the same way, the definition grows.

After `widen_mlp(blocks.*.mlp, by = 64)` each instance of `Block(d, heads)` has an mlp of
4 * d + 64 units. No argument of the call can say so, but one edit of the definition can:

    block Block(d, heads) { ... mlp: mlp(hidden = 4 * d + 64) ... }

`edit_defs` makes such edits. For each block (inner blocks first), it collects the argument
differences of every instance that still has the definition's structure — once as they are,
once after `rebind` (free instances may pass new values to parameters such as `heads`). The op
arguments that differ in *every* instance are edited, if one expression fits each of them in
every instance: the old expression plus a constant change, else one literal, or dropping the
argument. Statements keep their spans, so their comments stay. The edit that leaves the most
instances exactly what the definition makes is kept (on a tie, the one after `rebind`), and
only if it beats the unedited definition; instances that still differ are inlined.
"""
from __future__ import annotations

from collections import defaultdict

from ..syntax import ast as A
from .emit_blocks import Blocks, body_stmts, kwarg
from .emit_match import rebind, scopes
from .emit_values import MISSING, fold, literal, same, value_of

_FAIL = object()


def _deps(bdef: A.BlockDef, names) -> set:
    """Blocks a definition uses (calls and `pyramid(block = X)`)."""
    out = set()

    def walk(items):
        for s in items or []:
            if isinstance(s, A.Stmt):
                if s.name in names:
                    out.add(s.name)
                a = kwarg(s, "block") if s.name == "pyramid" else None
                if a is not None and isinstance(a.value, A.Path) and a.value.dotted in names:
                    out.add(a.value.dotted)
                walk(s.body)

    walk(bdef.body)
    return out


def inner_first(defs: dict) -> list[str]:
    order, seen = [], set()

    def visit(n, stack=()):
        if n in seen or n in stack:
            return
        for d in sorted(_deps(defs[n], defs)):
            visit(d, stack + (n,))
        seen.add(n)
        order.append(n)

    for n in defs:
        visit(n)
    return order


def _fit(src, points):
    """One expression for an op argument that gives `new` in every (env, old, new) point:
    None to drop the argument, _FAIL if none fits."""
    news = [n for _, _, n in points]
    if all(n is MISSING for n in news):
        return None
    if any(n is MISSING for n in news):
        return _FAIL
    cands = []
    ints = all(isinstance(v, int) and not isinstance(v, bool) for _, o, n in points for v in (o, n))
    if src is not None and ints and not isinstance(src, (A.Num, A.Neg)):
        deltas = {n - o for _, o, n in points}
        if len(deltas) == 1:
            cands.append(fold(src, deltas.pop()))
    if all(same(n, news[0]) for n in news):
        cands.append(literal(news[0], points[0][0]))
    for e in cands:
        if all(same(value_of(e, env), n) for env, _, n in points):
            return e
    return _FAIL


def _set_arg(stmt: A.Stmt, key: str, e) -> None:
    args = [a for a in stmt.args or [] if a.name != key]
    if e is not None:
        old = kwarg(stmt, key)
        if old is not None:
            args = [A.Arg(name=key, value=e) if a is old else a for a in stmt.args]
        else:
            args.append(A.Arg(name=key, value=e))
    stmt.args = args or None


def _edit(bdef: A.BlockDef, points: dict):
    new = bdef.model_copy(deep=True)
    stmts = body_stmts(new)
    for (span, key), pts in points.items():
        s = stmts.get(span)
        if s is None:
            return None  # the difference is inside another block: its own edit
        a = kwarg(s, key)
        e = _fit(a.value if a is not None else None, pts)
        if e is _FAIL:
            return None
        _set_arg(s, key, e)
    return new


def _state(blocks: Blocks, name, sites, rebinding=True):
    """For each instance that keeps the definition's structure: (bound, diffs)."""
    out = []
    for r, names, free in sites:
        res = rebind(blocks, name, r.attrs["block"][1], r, names, r.name, free and rebinding)
        if res is not None:
            out.append(res)
    return out


def _candidate(blocks: Blocks, name, sites, rebinding):
    """The definition edited where every instance differs, or None."""
    state = _state(blocks, name, sites, rebinding)
    keys = [frozenset((op.span, k) for op, k, _, _ in out) for _, out in state]
    common = frozenset.intersection(*keys) if keys else frozenset()
    if not common:
        return None
    genv = blocks.genv[name]
    points = defaultdict(list)
    for b, out in state:
        for op, k, old, new in out:
            if (op.span, k) in common:
                points[(op.span, k)].append(({**genv, **b}, old, new))
    return _edit(blocks.defs[name], points)


def _matches(blocks: Blocks, name, sites) -> int:
    return sum(1 for _, out in _state(blocks, name, sites) if not out)


def edit_defs(blocks: Blocks, root) -> None:
    """Edit, in `blocks`, the definitions whose instances all grew alike (see the module doc)."""
    sites = defaultdict(list)
    for r, names, free in scopes(root):
        sites[r.attrs["block"][0]].append((r, names, free))
    for name in inner_first(blocks.defs):
        if name not in sites or not blocks.callable(name):
            continue
        original = blocks.defs[name]
        best, most = original, _matches(blocks, name, sites[name])
        for rebinding in (True, False):  # on a tie, calls that pass new values win
            cand = _candidate(blocks, name, sites[name], rebinding)
            if cand is None:
                continue
            blocks.defs[name] = cand
            n = _matches(blocks, name, sites[name])
            blocks.defs[name] = original
            if n > most:
                best, most = cand, n
        blocks.defs[name] = best
        if best is not original:
            blocks.edited.add(name)
