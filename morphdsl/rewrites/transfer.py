"""Transfer plans: how the weights and optimizer state of a grown module come from the old one.

A `TransferPlan` has one `Entry` per parameter/buffer name of the NEW module:
- `src`: the old name it copies from (None: a brand-new tensor), and
- `maps`: per dimension, None (the dim is unchanged: copy all of it) or a pair of index lists
  `(old_idx, new_idx)`: old index old_idx[i] lands at new index new_idx[i] (e.g. add_head puts
  the old rows of each q/k/v section of `qkv.weight` at their old place within the section);
- `init`: how the entries no old value lands on start: "random" (the new module's own fresh
  init, std 0.02 for linears), "zero", or an explicit tensor of the full new shape;
- `fn`: instead of maps, a function old tensor -> new tensor (widen_embed's rescaled copies).
After copying, `zero_output` lists module paths whose op's `Op.zero_output` is applied (identity
insertion of a whole block), and `post` callables `(new_module) -> None` run last.

Optimizer rule (`transfer_optimizer`): per-parameter state tensors shaped like the parameter
(exp_avg, exp_avg_sq, momentum_buffer, ...) follow the same maps; new slices start at ZERO; the
scalar `step` is kept. So old slices continue exactly as without growth. Brand-new tensors get
no state: AdamW starts them at step 0 with their own bias correction, so their first update is
lr * sign(g). New slices inside grown tensors share the tensor's step counter; with zero moments
and beta=(0.9, 0.999) their first update is ~(1-b1)/sqrt(1-b2) = 3.16 x lr * sign(g). Pass
`new_lr_scale=s` to put brand-new tensors in their own param group with lr * s (a re-warm knob).
Tensors made by an entry `fn` carry their state through `state_fn` (old state tensor -> new; for
widen_embed: the same duplication without the 1/k rescale and noise, so every copy continues with
its original's moments and step); without a `state_fn` they restart (step 0), as brand-new ones.
"""
from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn as nn


@dataclass
class Entry:
    src: str | None = None
    maps: tuple = ()             # per dim: None | (old_idx list, new_idx list)
    init: object = "random"      # "random" | "zero" | Tensor (full new shape)
    fn: Callable | None = None   # old tensor -> the full new tensor (replaces maps), e.g. duplication
    state_fn: Callable | None = None  # old optimizer-state tensor -> new one (for `fn` entries)


@dataclass
class TransferPlan:
    entries: dict = field(default_factory=dict)      # new name -> Entry
    zero_output: list = field(default_factory=list)  # module paths to zero (identity insertion)
    post: list = field(default_factory=list)         # callables(new_module)

    def src_of(self, name: str) -> str | None:
        e = self.entries.get(name)
        return e.src if e else None

    def describe(self) -> dict:
        out = {"copied": 0, "grown": 0, "new": 0}
        for e in self.entries.values():
            out["new" if e.src is None else ("grown" if any(m is not None for m in e.maps) else "copied")] += 1
        return out


def identity_plan(names, rename: Callable[[str], str | None] = lambda n: n) -> TransferPlan:
    """Copy every name whose `rename(new) -> old` is not None; the rest are new (random)."""
    return TransferPlan({n: Entry(rename(n)) for n in names})


def tensors(module: nn.Module) -> dict:
    """Every parameter and buffer of a module, by name (tied parameters once)."""
    out = dict(module.named_parameters())
    out.update(dict(module.named_buffers()))
    return out


def _grid(idx):
    """Open-mesh index tensors for advanced indexing of several dims at once."""
    n = len(idx)
    return tuple(t.view(*([1] * d + [-1] + [1] * (n - d - 1))) for d, t in enumerate(idx))


MAX_BOXES = 64  # more contiguous pieces than this: one advanced-indexing copy instead


def runs(old_idx, new_idx) -> list[tuple[int, int, int]]:
    """A dim's index map as contiguous runs `(old_start, new_start, length)`: old[os:os+n] lands
    at new[ns:ns+n]. A map that is one run (the common case) is recognised at C speed."""
    k = len(old_idx)
    if k == 0:
        return []
    o0, n0 = old_idx[0], new_idx[0]
    if old_idx == list(range(o0, o0 + k)) and new_idx == list(range(n0, n0 + k)):
        return [(o0, n0, k)]
    from array import array

    a = torch.frombuffer(array("q", old_idx), dtype=torch.long)
    b = torch.frombuffer(array("q", new_idx), dtype=torch.long)
    brk = ((a[1:] - a[:-1] != 1) | (b[1:] - b[:-1] != 1)).nonzero().flatten().tolist()
    starts = [0] + [i + 1 for i in brk]
    ends = starts[1:] + [k]
    return [(old_idx[s], new_idx[s], e - s) for s, e in zip(starts, ends)]


class Mover:
    """How one entry's per-dim maps copy an old tensor into a new one, worked out once (from the
    maps and the shapes) and applied to the parameter and every state tensor shaped like it:
    as a few slice-to-slice copies (contiguous runs per dim, their product over dims), or, when
    the maps are scattered, as one advanced-indexing copy."""

    def __init__(self, entry: Entry, old_shape, new_shape):
        maps = list(entry.maps) + [None] * (len(new_shape) - len(entry.maps))
        if len(old_shape) != len(new_shape):
            raise ValueError(f"rank changes {len(old_shape)} -> {len(new_shape)} without an fn")
        self.full = all(m is None for m in maps)
        self.per_dim = per_dim = []  # per dim: [(old_start, new_start, length)], None: whole dim
        for d, m in enumerate(maps):
            if m is None:
                if old_shape[d] != new_shape[d]:
                    raise ValueError(f"dim {d} changes size {old_shape[d]} -> {new_shape[d]} "
                                     "without a map")
                per_dim.append(None)
            else:
                if len(m[0]) != len(m[1]):
                    raise ValueError(f"dim {d}: the map has {len(m[0])} old and {len(m[1])} new "
                                     "indices")
                per_dim.append(runs(list(m[0]), list(m[1])))
        if self.full:
            if tuple(old_shape) != tuple(new_shape):
                raise ValueError(f"shape changes {tuple(old_shape)} -> {tuple(new_shape)} "
                                 "without a map")
            self.boxes, self.index = [], None
            return
        per_dim = [r if r is not None else [(0, 0, old_shape[d])] for d, r in enumerate(per_dim)]
        n = 1
        for r in per_dim:
            n *= len(r)
        self.index = None
        self.boxes = []
        if n > MAX_BOXES:
            self.index = ([torch.as_tensor(m[0] if m is not None else range(old_shape[d]))
                           for d, m in enumerate(maps)],
                          [torch.as_tensor(m[1] if m is not None else range(new_shape[d]))
                           for d, m in enumerate(maps)])
            return
        import itertools

        for combo in itertools.product(*per_dim):
            self.boxes.append((tuple(slice(o, o + k) for o, _, k in combo),
                               tuple(slice(s, s + k) for _, s, k in combo)))

    def __call__(self, old: torch.Tensor, new: torch.Tensor) -> None:
        if self.full:
            new.copy_(old)
        elif self.index is not None:
            src, dst = self.index
            new[_grid([t.to(new.device) for t in dst])] = \
                old[_grid([t.to(old.device) for t in src])].to(new.dtype)
        else:
            for s, d in self.boxes:
                new[d].copy_(old[s])


def move(entry: Entry, old: torch.Tensor, new: torch.Tensor, mover: Mover | None = None):
    """Copy `old` into `new` (in place) following the entry's per-dim maps."""
    (mover or Mover(entry, old.shape, new.shape))(old, new)


@torch.no_grad()
def apply_plan(plan: TransferPlan, old_module: nn.Module, new_module: nn.Module,
               movers: dict | None = None, share: bool = False) -> nn.Module:
    """Fill new_module's parameters/buffers from old_module following the plan (in place).
    `movers`, when given, is filled with the `Mover` of every copied tensor, by new name (the
    optimizer transfer reuses them for the state tensors shaped like the parameter). With
    `share`, a parameter copied whole becomes the old module's Parameter object itself (no copy;
    the old module must not be trained afterwards: a transaction's caller that drops it)."""
    from ..ops import get_op

    movers = {} if movers is None else movers
    old, new = tensors(old_module), tensors(new_module)
    old_params = dict(old_module.named_parameters()) if share else {}
    for name, t in new.items():
        e = plan.entries.get(name) or Entry(name if name in old else None)
        if isinstance(e.init, torch.Tensor):
            t.copy_(e.init)
        elif e.init == "zero":
            t.zero_()
        if e.src is not None and e.src not in old:
            raise KeyError(f"transfer plan: {name} copies from {e.src}, which the old module lacks")
        try:
            if e.src is not None and e.fn is not None:
                t.copy_(e.fn(old[e.src].detach()))
            elif e.src is not None:
                mv = movers[name] = Mover(e, old[e.src].shape, t.shape)
                if mv.full and e.src in old_params and isinstance(t, nn.Parameter) \
                        and old_params[e.src].dtype == t.dtype and old_params[e.src].device == t.device:
                    owner, _, leaf = name.rpartition(".")
                    setattr(new_module.get_submodule(owner), leaf, old_params[e.src])
                else:
                    mv(old[e.src], t)
        except (ValueError, RuntimeError, IndexError) as err:
            wrapped = ValueError(f"`{name}` (from `{e.src}`): {err}")
            wrapped.node = name.rsplit(".", 1)[0]
            raise wrapped from None
    for path in plan.zero_output:
        g = getattr(new_module, "morph_graph", None)
        opname = g.unit(path).op if g is not None else None
        ok = get_op(opname).zero_output(new_module.get_submodule(path)) if opname else False
        if not ok:
            err = ValueError(f"cannot zero the output of {path}")
            err.node = path
            raise err
    for f in plan.post:
        f(new_module)
    return new_module


def _sibling(name: str) -> str:
    """A name with its numeric path parts starred: blocks.2.attn.qkv.weight -> blocks.*.attn..."""
    return ".".join("*" if p.isdigit() else p for p in name.split("."))


def group_for_new(name: str, p: torch.Tensor, old_named: dict, group_of: dict) -> int:
    """The param group a brand-new tensor joins: that of an old tensor in the same place of a
    sibling (blocks.2.attn.qkv.weight -> blocks.1.attn.qkv.weight's), else the group holding
    most old tensors of the same rank (so a decay / no-decay split by rank is kept), else 0."""
    want = _sibling(name)
    for n, q in old_named.items():
        if n in group_of and _sibling(n) == want and q.dim() == p.dim():
            return group_of[n]
    count: dict = {}
    for n, q in old_named.items():
        if n in group_of and q.dim() == p.dim():
            count[group_of[n]] = count.get(group_of[n], 0) + 1
    return max(count, key=lambda g: (count[g], -g)) if count else 0


def transfer_optimizer(plan: TransferPlan, old_opt: torch.optim.Optimizer, old_module: nn.Module,
                       new_module: nn.Module, new_lr_scale: float | None = None,
                       movers: dict | None = None, share_state: bool = False):
    """A new optimizer of old_opt's class and hyperparameters over new_module's parameters, with
    per-parameter state moved by the plan (new slices zero, scalar `step` kept; see module doc).

    Every old param group is kept, in order, with its hyperparameters (empty ones too, so group
    indices are stable); a tensor joins the group of the tensor it comes from, a brand-new one
    the group of its sibling (`group_for_new`), or with `new_lr_scale` a `new` copy of that group
    with lr x scale (its `lr_scale` key records the factor). Generic over the optimizer: every
    state tensor shaped like the parameter follows its slices (AdamW's moments, SGD's momentum,
    ...); other state is copied; a grown tensor whose state holds tensors of another shape
    restarts. `movers` (from apply_plan) saves re-deriving the index maps; `share_state` hands
    unchanged tensors' state over without a copy (the old optimizer must not be used after)."""
    old_named = dict(old_module.named_parameters())
    name_of = {id(p): n for n, p in old_named.items()}
    group_of = {}
    for gi, grp in enumerate(old_opt.param_groups):
        for p in grp["params"]:
            if id(p) in name_of:
                group_of[name_of[id(p)]] = gi
    hyper = [{k: v for k, v in grp.items() if k != "params"} for grp in old_opt.param_groups]
    members: list[list] = [[] for _ in hyper]
    new_groups: dict = {}  # base group -> index of its `new` copy
    placed = []
    for n, p in new_module.named_parameters():
        e = plan.entries.get(n)
        src = e.src if e is not None else (n if n in old_named else None)
        if src is not None and src in group_of:
            gi = group_of[src]
        else:
            gi = group_for_new(n, p, old_named, group_of)
            if new_lr_scale is not None:
                if gi not in new_groups:
                    h = hyper[gi]
                    new_groups[gi] = len(hyper)
                    hyper.append({**h, "lr": h["lr"] * new_lr_scale, "new": True,
                                  "lr_scale": h.get("lr_scale", 1.0) * new_lr_scale})
                    members.append([])
                gi = new_groups[gi]
            src = None
        members[gi].append(p)
        placed.append((n, p, src))
    param_groups = [{**h, "params": ps} for h, ps in zip(hyper, members)]
    sig = inspect.signature(type(old_opt).__init__).parameters
    opt = type(old_opt)(param_groups, **{k: v for k, v in old_opt.defaults.items() if k in sig})
    movers = {} if movers is None else movers
    with torch.no_grad():
        for n, p, src in placed:
            op_ = old_named.get(src) if src is not None else None
            old_st = old_opt.state.get(op_) if op_ is not None else None
            if not old_st:
                continue
            e = plan.entries.get(n) or Entry(src)
            if e.fn is not None and e.state_fn is None:  # transformed, no rule: state restarts
                continue
            mv = movers.get(n)
            if mv is None and e.fn is None:
                mv = movers[n] = Mover(e, op_.shape, p.shape)
            fresh = opt.state.get(p) or {}  # what the optimizer starts a tensor with, if anything
            st, ok = {}, True
            for k, v in old_st.items():
                if not (isinstance(v, torch.Tensor) and v.dim() > 0):
                    st[k] = v.clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v)
                elif v.shape != op_.shape:
                    if e.fn is None and mv.full:
                        st[k] = v if share_state else v.clone()
                    else:
                        ok = False  # a factored state of a grown tensor: cannot follow
                elif e.fn is not None:
                    st[k] = e.state_fn(v).to(p.dtype).contiguous()
                elif mv.full:
                    st[k] = v if share_state else v.clone()
                else:
                    base = fresh.get(k)
                    nv = base.clone() if isinstance(base, torch.Tensor) and base.shape == p.shape \
                        else torch.zeros(p.shape, dtype=v.dtype, device=p.device)
                    mv(v, nv)
                    st[k] = nv
            if ok:
                opt.state[p] = st
    return opt
