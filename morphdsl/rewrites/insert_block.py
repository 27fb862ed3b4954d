"""insert_block(target, at, block=None): a new block in a repeat group, as the identity (exact).

The new child copies the structure of child `at - 1` (child 0 when at = 0), or elaborates
`block = Name` (a block of the spec, with `args`); later children are renumbered (the plan renames
their weights), and every residual branch of the new block gets its last op's output zeroed
(`Op.zero_output`), so x + branch(x) = x.
"""
from __future__ import annotations

import copy
from collections import defaultdict
from types import SimpleNamespace

from ..errors import GrowthError, MorphError, did_you_mean
from ..ir.graph import OpInst, Region
from .registry import finish, is_repeat, region, rewrite
from .transfer import Entry, TransferPlan


def residual_outputs(item, scope: str) -> list[str]:
    """Paths of the last op of every residual branch inside `item` (a region at `scope`)."""
    out = []
    for ch in item.children:
        if isinstance(ch, OpInst):
            continue
        sc = f"{scope}.{ch.name}" if ch.name else scope
        if ch.kind == "residual":
            out.append(_last_op(ch, sc))
        else:
            out.extend(residual_outputs(ch, sc))
    return out


def _last_op(branch, scope: str) -> str:
    """The path of the op a residual branch ends in, through groups (`ffn { ... proj }`)."""
    last = branch.children[-1] if branch.children else None
    while isinstance(last, Region) and last.kind == "group" and last.children:
        scope = f"{scope}.{last.name}" if last.name else scope
        last = last.children[-1]
    if not isinstance(last, OpInst):
        raise GrowthError("a residual branch of the new block does not end in an op; "
                          "cannot make it the identity")
    return f"{scope}.{last.name}"


def _elaborate(g, block: str, args: dict):
    from ..ir.args import bind_params
    from ..ir.elaborate import Elaborator
    from ..syntax import ast as A

    if block not in g.blocks:
        raise GrowthError(f"no block `{block}` in the spec", hint=did_you_mean(block, g.blocks))
    specs = {n: (b, getattr(g, "block_env", {}).get(n, dict(g.params))) for n, b in g.blocks.items()}
    el = Elaborator(SimpleNamespace(blocks=specs, params=g.params))
    bdef, genv = specs[block]
    try:
        spans = defaultdict(lambda: SimpleNamespace(span=None))  # no source for API args
        bound = bind_params(bdef, [], dict(args), spans, SimpleNamespace(span=None), genv)
        return el.instance(A.Stmt(name=block), {}, set(), False, bound=bound)
    except MorphError as e:
        raise GrowthError(f"cannot instantiate block `{block}`: {e.message}", hint=e.hint) from None


@rewrite("insert_block", applies_to=["repeat"], exact=True)
def insert_block(graph, target="blocks", at: int | None = None, block: str | None = None,
                 args: dict | None = None):
    """Insert an identity block into a repeat group at position `at` (default: the end)."""
    g = graph.copy()
    grp = region(g, str(target))
    kids = grp.children
    if not is_repeat(grp):
        raise GrowthError(f"`{target}` is not a repeat group", hint="insert into a `repeat(n) { ... }` group")
    n = len(kids)
    at = n if at is None else at
    if not isinstance(at, int) or not 0 <= at <= n:
        raise GrowthError(f"insert position must be in 0..{n}, got {at!r}")
    if block is None:
        new = copy.deepcopy(kids[max(at - 1, 0)])
    else:
        new = _elaborate(g, str(block), args or {})
        new.attrs = {**new.attrs, "block": (str(block), dict(args or {}))}
    new.kind, new.name = "group", str(at)
    kids.insert(at, new)
    for i, k in enumerate(kids):
        k.name = str(i)
    grp.attrs = {**grp.attrs, "repeat": n + 1}
    plan = TransferPlan()
    pre = f"{target}."
    for name in _names_after(g, new):
        if name.startswith(pre):
            i, rest = name[len(pre):].split(".", 1)
            i = int(i)
            src = None if i == at else f"{pre}{i - 1 if i > at else i}.{rest}"
            plan.entries[name] = Entry(src)
    plan.zero_output = residual_outputs(new, f"{target}.{at}")
    res = finish(graph, g, plan, "insert_block", {"target": target, "at": at, "block": block}, True,
                 [f"{target}: {n} -> {n + 1} blocks, new block at {at} (identity)"])
    return res


def _names_after(g, new):
    from ..ir.build import relower

    relower(g)
    names = list(g.param_shapes())
    names += [f"{k}.{b}" for k, d in g.nodes() for b in d.get("buffer_shapes", {})]
    return names
