"""The rewrite registry and the helpers every rewrite shares (target lookup, results).

    @rewrite("add_head", applies_to=["heads"], exact=True)
    def add_head(g, target=None, n=1) -> RewriteResult

A rewrite is pure: it deep-copies the graph, edits `g.root`, re-lowers, and returns the new graph
with a TransferPlan. A target is a dotted path, a glob (`blocks.*.attn`), or omitted (every
site of the axis or construct named by `applies_to`; axis sites are found by rewrites/axes.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..errors import GrowthError, did_you_mean
from ..ir.build import relower
from ..ir.graph import MorphGraph, OpInst, Region
from ..ir.lower import find
from .transfer import Entry, TransferPlan


@dataclass
class RewriteResult:
    graph: MorphGraph
    plan: TransferPlan
    exact: bool
    notes: list = field(default_factory=list)
    op: str = ""
    args: dict = field(default_factory=dict)


@dataclass
class RewriteDef:
    name: str
    fn: Callable
    applies_to: list
    exact: bool
    needs_weights: bool = False
    doc: str = ""


REWRITES: dict[str, RewriteDef] = {}


def rewrite(name: str, applies_to=("graph",), exact: bool = True, needs_weights: bool = False):
    def deco(fn):
        REWRITES[name] = RewriteDef(name, fn, list(applies_to), exact, needs_weights,
                                    (fn.__doc__ or "").strip().split("\n")[0])
        return fn

    return deco


def get_rewrite(name: str) -> RewriteDef:
    if name not in REWRITES:
        raise GrowthError(f"unknown growth op `{name}`",
                          hint=did_you_mean(name, REWRITES) or "ops: " + ", ".join(sorted(REWRITES)))
    return REWRITES[name]


def opinst(g: MorphGraph, path: str) -> OpInst:
    it = find(g.root, path)
    if not isinstance(it, OpInst):
        raise GrowthError(f"`{path}` is not an op in the region tree")
    return it


def region(g: MorphGraph, path: str) -> Region:
    it = find(g.root, path)
    if not isinstance(it, Region):
        raise GrowthError(f"no region at `{path}`", hint="give the path of a `repeat` group, e.g. `blocks`")
    return it


def is_repeat(r) -> bool:
    """A repeat group: a region whose children are regions named 0, 1, ... (at least one)."""
    return isinstance(r, Region) and bool(r.children) and \
        all(isinstance(k, Region) and k.name == str(i) for i, k in enumerate(r.children))


def finish(old: MorphGraph, g: MorphGraph, plan: TransferPlan, op: str, args: dict, exact=True,
           notes=()) -> RewriteResult:
    """Re-lower, record history, and fill the plan: untouched names that existed before are plain
    copies, other names are new."""
    relower(g)
    before = set(old.param_shapes()) | {f"{k}.{b}" for k, d in old.nodes() for b in d.get("buffer_shapes", {})}
    g.history.append({"op": op, "args": {k: v for k, v in args.items() if k != "state"}})
    for name in g.param_shapes():
        plan.entries.setdefault(name, Entry(name if name in before else None))
    for k, d in g.nodes():
        for b in d.get("buffer_shapes", {}):
            n = f"{k}.{b}"
            plan.entries.setdefault(n, Entry(n if n in before else None))
    return RewriteResult(g, plan, exact, list(notes), op, dict(args))

