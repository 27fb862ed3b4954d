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


def move(entry: Entry, old: torch.Tensor, new: torch.Tensor):
    """Copy `old` into `new` (in place) following the entry's per-dim maps."""
    maps = list(entry.maps) + [None] * (new.dim() - len(entry.maps))
    src, dst = [], []
    for d, m in enumerate(maps):
        if m is None:
            if old.shape[d] != new.shape[d]:
                raise ValueError(f"dim {d} changes size {old.shape[d]} -> {new.shape[d]} without a map")
            src.append(torch.arange(old.shape[d]))
            dst.append(torch.arange(new.shape[d]))
        else:
            src.append(torch.as_tensor(m[0], dtype=torch.long))
            dst.append(torch.as_tensor(m[1], dtype=torch.long))
    if all(m is None for m in maps):
        new.copy_(old)
    else:
        new[_grid([t.to(new.device) for t in dst])] = old[_grid([t.to(old.device) for t in src])].to(new.dtype)


@torch.no_grad()
def apply_plan(plan: TransferPlan, old_module: nn.Module, new_module: nn.Module) -> nn.Module:
    """Fill new_module's parameters/buffers from old_module following the plan (in place)."""
    from ..ops import get_op

    old, new = tensors(old_module), tensors(new_module)
    for name, t in new.items():
        e = plan.entries.get(name, Entry(name if name in old else None))
        if isinstance(e.init, torch.Tensor):
            t.copy_(e.init)
        elif e.init == "zero":
            t.zero_()
        if e.src is not None and e.fn is not None:
            t.copy_(e.fn(old[e.src].detach()))
        elif e.src is not None:
            if e.src not in old:
                raise KeyError(f"transfer plan: {name} copies from {e.src}, which the old module lacks")
            move(e, old[e.src], t)
    for path in plan.zero_output:
        g = getattr(new_module, "morph_graph", None)
        opname = g.unit(path).op if g is not None else None
        ok = get_op(opname).zero_output(new_module.get_submodule(path)) if opname else False
        if not ok:
            raise ValueError(f"cannot zero the output of {path}")
    for f in plan.post:
        f(new_module)
    return new_module


def transfer_optimizer(plan: TransferPlan, old_opt: torch.optim.Optimizer, old_module: nn.Module,
                       new_module: nn.Module, new_lr_scale: float | None = None):
    """A new optimizer of old_opt's class and hyperparameters over new_module's parameters, with
    per-parameter state moved by the plan (new slices zero, scalar `step` kept; see module doc)."""
    name_of = {id(p): n for n, p in old_module.named_parameters()}
    old_params = dict(old_module.named_parameters())
    group_of = {}
    for gi, grp in enumerate(old_opt.param_groups):
        for p in grp["params"]:
            group_of[name_of.get(id(p))] = gi
    hyper = [{k: v for k, v in grp.items() if k != "params"} for grp in old_opt.param_groups]
    groups = [[] for _ in hyper]
    fresh = []
    for n, p in new_module.named_parameters():
        src = plan.entries[n].src if n in plan.entries else (n if n in old_params else None)
        if src is not None and src in group_of:
            groups[group_of[src]].append((n, p, src))
        elif new_lr_scale is not None:
            fresh.append((n, p, None))
        else:
            groups[0].append((n, p, None))
    param_groups = [{**h, "params": [p for _, p, _ in ps]} for h, ps in zip(hyper, groups)]
    if fresh:
        param_groups.append({**hyper[0], "lr": hyper[0]["lr"] * new_lr_scale, "new": True,
                             "params": [p for _, p, _ in fresh]})
    param_groups = [g for g in param_groups if g["params"]]
    sig = inspect.signature(type(old_opt).__init__).parameters
    opt = type(old_opt)(param_groups, **{k: v for k, v in old_opt.defaults.items() if k in sig})
    with torch.no_grad():
        for n, p, src in [x for ps in groups for x in ps]:
            if src is None or old_params[src] not in old_opt.state:
                continue
            e = plan.entries.get(n, Entry(src))
            if e.fn is not None and e.state_fn is None:  # transformed, no rule: state restarts
                continue
            st = {}
            for k, v in old_opt.state[old_params[src]].items():
                if isinstance(v, torch.Tensor) and v.shape == old_params[src].shape and v.dim() > 0:
                    if e.fn is not None:
                        st[k] = e.state_fn(v).to(p.dtype).contiguous()
                        continue
                    nv = torch.zeros_like(p, dtype=v.dtype)
                    move(e, v, nv)
                    st[k] = nv
                else:
                    st[k] = v.clone() if isinstance(v, torch.Tensor) else v
            opt.state[p] = st
    return opt
