"""remove_block(target, at): drop one block of a repeat group, the inverse of insert_block.

Child `at` (default: the last) goes; later children are renumbered (the plan renames their
weights and optimizer state: `blocks.3.x` <- `blocks.4.x`), and the group's `repeat` becomes
n - 1. Not exact in general: the function is unchanged only when the removed block's residual
branches output zero (a block insert_block just made); otherwise grow_model reports the change.
"""
from __future__ import annotations

from ..errors import GrowthError
from .insert_block import _names_after
from .registry import finish, is_repeat, region, rewrite
from .transfer import Entry, TransferPlan


@rewrite("remove_block", applies_to=["repeat"], exact=False)
def remove_block(graph, target="blocks", at: int | None = None):
    """Remove block `at` (default: the last) of a repeat group (not exact unless it is an identity block)."""
    g = graph.copy()
    grp = region(g, str(target))
    kids = grp.children
    if not is_repeat(grp):
        raise GrowthError(f"`{target}` is not a repeat group", hint="remove from a `repeat(n) { ... }` group")
    n = len(kids)
    if n == 1:
        raise GrowthError(f"`{target}` has one block left; a repeat group cannot be emptied",
                          hint="insert a block first (insert_block), or remove the group in the spec")
    at = n - 1 if at is None else at
    if not isinstance(at, int) or isinstance(at, bool) or not 0 <= at < n:
        raise GrowthError(f"block to remove must be in 0..{n - 1}, got {at!r}",
                          hint=f"`{target}` has {n} blocks; omit `at` to remove the last")
    del kids[at]
    for i, k in enumerate(kids):
        k.name = str(i)
    grp.attrs = {**grp.attrs, "repeat": n - 1}
    plan = TransferPlan()
    pre = f"{target}."
    for name in _names_after(g, None):
        if name.startswith(pre):
            i, rest = name[len(pre):].split(".", 1)
            i = int(i)
            plan.entries[name] = Entry(f"{pre}{i + 1 if i >= at else i}.{rest}")
    return finish(graph, g, plan, "remove_block", {"target": target, "at": at}, False,
                  [f"{target}: {n} -> {n - 1} blocks, removed block {at}"])
