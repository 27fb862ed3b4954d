"""Growth as graph rewrites, with exact weight and optimizer-state transfer.

    res = grow(graph, "add_head", target="blocks.1.attn", n=2)     # -> RewriteResult
    res = grow(graph, [("add_head", {"n": 1}), ("widen_mlp", {"by": 32})])
    g = grow_model(module, "insert_block", optimizer=opt, target="blocks", at=1)
    g.module, g.optimizer, g.results, g.reports                     # a `Grown`

Every grown graph passes the static checks a built spec passes (lanes, convexity).
`grow_model` compiles the new graph, moves the weights (apply_plan) and the optimizer state
(transfer_optimizer), and checks exact rewrites with the identity verifier (VerifyError naming
the first divergent node); `verify=False` turns the check off.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field

from ..errors import GrowthError, VerifyError
from ..verify import static_checks
from . import (add_head, add_lane, add_petals, fossilize, germinate, grow_pyramid, insert_block, prune,
               prune_heads, prune_units, remove_block, seed_stage, widen_embed, widen_mlp)
from .add_petals import blend
from .registry import REWRITES, RewriteResult, get_rewrite
from .transfer import TransferPlan, apply_plan, transfer_optimizer

# The built-in rewrites, one module each (sqlglot's RULES): each registers itself in REWRITES by
# its @rewrite decorator; a new rewrite is a module and a line here.
RULES = (add_head.add_head, widen_mlp.widen_mlp, prune_units.prune_units, insert_block.insert_block,
         widen_embed.widen_embed, add_lane.add_lane, add_petals.add_petals, grow_pyramid.grow_pyramid,
         germinate.germinate, seed_stage.seed_stage, fossilize.fossilize, prune.prune,
         remove_block.remove_block, prune_heads.prune_heads)
assert {f.__name__ for f in RULES} <= set(REWRITES)

__all__ = ["grow", "grow_model", "rewrite_only", "Grown", "RewriteResult", "TransferPlan", "apply_plan",
           "transfer_optimizer", "blend", "REWRITES", "RULES"]


def _steps(op, args):
    if isinstance(op, str):
        return [(op, args)]
    if args:
        raise TypeError("give keyword args per step when composing: [(op, {args}), ...]")
    return [(o, dict(a)) for o, a in op]


def rewrite_only(graph, op, args, module=None) -> RewriteResult:
    """Run rewrite `op(**args)` on a copy of `graph` (no static checks); `module`'s weights are
    read only by rewrites that need them (prune_units, prune_heads)."""
    rd = get_rewrite(op)
    if rd.needs_weights:
        args = {**args, "state": module.state_dict() if module is not None else None}
    try:
        inspect.signature(rd.fn).bind(graph, **args)
    except TypeError as e:
        raise GrowthError(f"bad arguments for `{op}`: {e}", hint=rd.doc) from None
    return rd.fn(graph, **args)


def _call(graph, op, args, state=None) -> RewriteResult:
    rd = get_rewrite(op)
    if rd.needs_weights:
        args = {**args, "state": state}
    try:
        inspect.signature(rd.fn).bind(graph, **args)
    except TypeError as e:
        raise GrowthError(f"bad arguments for `{op}`: {e}", hint=rd.doc) from None
    res = rd.fn(graph, **args)
    static_checks(res.graph)  # a grown graph must pass what a built one passes
    return res


def grow(graph, op, **args):
    """Apply one rewrite (op name + args) or a list of (op, args); returns the RewriteResult of
    the last step, with `.steps` holding every step's result when composed."""
    res, steps = None, []
    for o, a in _steps(op, args):
        res = _call(graph if res is None else res.graph, o, a)
        steps.append(res)
    res.steps = steps
    return res


@dataclass
class Grown:
    module: object                      # the new fx.GraphModule
    optimizer: object = None            # the new optimizer (None when none was given)
    results: list = field(default_factory=list)   # RewriteResult per step
    reports: list = field(default_factory=list)   # IdentityReport per step (None if not run)
    meta: object = None                 # the grown module's ParamMeta (morphdsl.growth)


def grow_model(module, op, optimizer=None, verify=True, new_lr_scale=None, atol=1e-5,
               before_compile=None, meta=None, step=0, **args) -> Grown:
    """Grow a compiled module; move weights and optimizer state; verify exact rewrites.
    `before_compile(graph)` sees each grown graph before anything of it is allocated (e.g. a
    memory check that raises). One GrowthTransaction per step (morphdsl.growth): a failing step
    raises (IdentityError, a VerifyError, when an exact rewrite changed the function) and leaves
    `module` and `optimizer` as they were; the grown module's metadata is `.module.morph_meta`."""
    from ..growth import GrowthTransaction

    txn = GrowthTransaction(module, optimizer, meta, step=step, verify=verify, atol=atol,
                            new_lr_scale=new_lr_scale, before_compile=before_compile)
    out = Grown(module, optimizer)
    for o, a in _steps(op, args):
        r = txn.apply(o, a)
        out.module, out.optimizer = r.module, r.optimizer
        out.results.append(r.rewrite)
        out.reports.append(r.report)
    out.meta = txn.meta
    return out
