"""Growth and shrinking along declared axes (ops/axes.py), for every op that declares them.

A *site* is one place an axis can change as a whole:
- an op that declares the axis (`mlp`'s hidden units, `attention`'s heads, a toy op's ...);
- for hidden units, also a *chain*: linear producers whose outputs reach one consumer linear
  only through channel-wise, parameter-free ops (activations, `parallel(join = mul/add/...)`
  of such branches: `linear -> gelu -> linear`, SwiGLU written as
  `parallel(join = mul) { linear; silu | linear }` then `linear`). The producers' `out` axis
  and the consumer's `in` axis are then one hidden axis: new producer rows are random, new
  consumer columns zero, so the function is unchanged.

`grow_site` appends units (exact), `shrink_site` keeps a chosen subset (not exact), both filling
the transfer plan from the slices the ops declare; no rewrite knows an op's tensor layout.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

import torch

from ..errors import GrowthError, did_you_mean
from ..ops import get_op
from ..ops.axes import Axis, grow_maps, keep_maps, unit_index
from .registry import opinst
from .transfer import Entry, TransferPlan


@dataclass
class Site:
    path: str                         # how the site is shown: the op, or the chain's scope
    parts: list                       # (node key, Axis) whose tensors index the axis
    resize: list                      # (node key, axis name) whose args take the new size
    size: int
    lanes: int | None
    names: set = field(default_factory=set)  # paths a target may name (nodes and their scopes)


def _scopes(key: str) -> set:
    parts = key.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def op_sites(g, axis: str) -> list[Site]:
    """Sites of ops that declare a resizable `axis`."""
    out = []
    for key, d in g.units():
        if d.kind != "op":
            continue
        ax = get_op(d.op).axes(d.resolved).get(axis)
        if ax is not None and ax.resizable:
            out.append(Site(key, [(key, ax)], [(key, axis)], ax.size, ax.lanes, _scopes(key)))
    return out


def _passes(g, key) -> bool:
    """A node that maps channels one to one with no parameters (so new channels stay apart)."""
    d = g.unit(key)
    if d.kind != "op" or d.get("param_shapes") or d.get("buffer_shapes") or d.get("residual"):
        return False
    op = get_op(d.op)
    return op.channels == "elementwise" and op.positions == "pointwise" and \
        d.type.channels == d.in_types[0].channels


def chain_sites(g) -> list[Site]:
    """Hidden axes spanning a linear -> (channel-wise ops) -> linear chain."""
    out = []
    for key, d in g.units():
        if d.kind != "op":
            continue
        inn = get_op(d.op).axes(d.resolved).get("in")
        if inn is None or inn.resizable:
            continue
        producers, inner, todo, ok = [], set(), [d.inputs[0]], True
        while todo and ok:
            n = todo.pop()
            if n in inner or n in producers:
                continue
            nd = g.unit(n)
            ax = get_op(nd.op).axes(nd.resolved).get("out") if nd.kind == "op" else None
            if ax is not None and ax.resizable and ax.lanes == inn.lanes:
                producers.append(n)
            elif _passes(g, n):
                inner.add(n)
                todo.extend(nd.inputs)
            else:
                ok = False
        members = inner | set(producers)
        ok = ok and producers and all(set(g.dag.successors(n)) <= members | {key} for n in members)
        if not ok:
            continue
        axes = [(p, get_op(g.unit(p).op).axes(g.unit(p).resolved)["out"])
                for p in producers]
        if any(ax.size != inn.size for _, ax in axes):
            continue
        names = set().union(*(_scopes(k) for k in [key, *producers]))
        scope = _common_scope([key, *producers])
        out.append(Site(scope or key, [*axes, (key, inn)], [(p, "out") for p in producers],
                        inn.size, inn.lanes, names))
    return out


def _common_scope(keys) -> str:
    parts = [k.split(".")[:-1] for k in keys]
    common = []
    for xs in zip(*parts):
        if len(set(xs)) != 1:
            break
        common.append(xs[0])
    return ".".join(common)


def find_sites(g, target, axis: str, what: str, chains: bool = False) -> list[Site]:
    """The sites of `axis` a target (path, glob, or None: all) names; errors list the targets."""
    sites = op_sites(g, axis) + (chain_sites(g) if chains else [])
    if target is None:
        hits = sites
    else:
        t = str(target)
        hits = [s for s in sites if any(fnmatch.fnmatchcase(n, t) for n in s.names)]
        if not hits:
            known = [s.path for s in sites]
            u = g.unit(t)
            if u is not None and u.kind == "op":
                raise GrowthError(f"`{t}` is an op `{u.op}` with no {axis} axis to grow",
                                  hint=("targets: " + ", ".join(known[:8])) if known else
                                  f"the model has no {what}")
            raise GrowthError(f"no {what} at `{t}`", hint=did_you_mean(t, known) or (
                ("targets: " + ", ".join(known[:8])) if known else f"the model has no {what}"))
    if not hits:
        raise GrowthError(f"the model has no {what} to grow",
                          hint=f"an op grows here when it declares a `{axis}` axis (ops/axes.py)")
    return hits


def _entries(g, plan: TransferPlan, site: Site, maps_of) -> None:
    """Fill the plan: for every declared slice, the index map along its dim (lane dim kept).
    A parameter on two sites (the middle linear of linear -> act -> linear -> act -> linear)
    merges both maps. New entries start random where a slice reads the input ("in") and zero
    otherwise; an "out" slice's new units are zeroed after the copy in any case, so nothing
    reads a new unit, whatever else grew in that tensor."""
    for key, ax in site.parts:
        u = g.unit(key)
        shapes = {**u.param_shapes, **u.buffer_shapes}
        lead = 1 if ax.lanes else 0
        for sl in ax.slices:
            name = f"{key}.{sl.param}"
            e = plan.entries.get(name)
            maps = list(e.maps) if e is not None else [None] * len(shapes[sl.param])
            m = maps_of(sl, ax)
            maps[lead + sl.dim] = m
            reads = sl.role == "in" or (e is not None and e.init == "random")
            plan.entries[name] = Entry(name, tuple(maps), "random" if reads else "zero")
            if sl.role == "out":
                plan.post.append(_zero_new(name, lead + sl.dim, m[1]))


def _zero_new(name: str, dim: int, kept_new: list):
    """A post-copy step: zero the entries along `dim` of tensor `name` that no old unit fills."""
    def post(module):
        t = dict(module.named_parameters())[name]
        new = sorted(set(range(t.shape[dim])) - set(kept_new))
        if new:
            with torch.no_grad():
                t.index_fill_(dim, torch.tensor(new, device=t.device), 0.0)
    return post


def _resize(g, site: Site, n: int) -> None:
    for key, axis in site.resize:
        inst = opinst(g, key)
        inst.args = get_op(inst.op).resize(axis, dict(inst.args), g.unit(key).resolved, n)


def grow_site(g, plan: TransferPlan, site: Site, by: int) -> None:
    """Append `by` units (over all lanes) to the site's axis: exact."""
    L = site.lanes or 1
    if by % L:
        raise GrowthError(f"{site.path} runs in {L} lanes: grow it by a multiple of {L}",
                          hint=f"e.g. by {L * max(1, by // L)}")
    new = (site.size + by) // L
    _entries(g, plan, site, lambda sl, ax: grow_maps(sl, ax.per_lane, new))
    _resize(g, site, site.size + by)


def shrink_site(g, plan: TransferPlan, site: Site, kept: list[int]) -> None:
    """Keep units `kept` (no lanes) of the site's axis, dropping the rest: not exact."""
    _entries(g, plan, site, lambda sl, ax: keep_maps(sl, ax.per_lane, kept))
    _resize(g, site, len(kept))


def unit_scores(site: Site, state: dict) -> torch.Tensor:
    """Per unit, ||the weights it reads with|| x ||the weights it is read with|| (magnitude)."""
    norms = {"in": torch.zeros(site.size), "out": torch.zeros(site.size)}
    for key, ax in site.parts:
        for sl in ax.slices:
            if sl.role == "bias":
                continue
            w = state[f"{key}.{sl.param}"].detach().float()
            for j in range(site.size):
                idx = torch.tensor(unit_index(sl, ax.per_lane, j))
                norms[sl.role][j] += w.index_select(sl.dim, idx).pow(2).sum()
    return norms["in"].sqrt() * norms["out"].sqrt()


__all__ = ["Axis", "Site", "find_sites", "grow_site", "shrink_site", "unit_scores"]
