"""Make an optimizer obey the slice metadata: frozen slices stay bit-unchanged, LR-scaled slices
move by lr_scale x their group's step.

    ctl = attach(module, optimizer, meta)   # step hooks on the optimizer; None if nothing to do
    ...; optimizer.step()                   # frozen slices unchanged, scaled slices scaled
    set_lr(optimizer, lr)                   # lr x each group's `lr_scale` (a new-tensor group)

torch optimizers set one LR per param group, and a group holds whole tensors; a slice is part of
a tensor. So `attach` registers a pre-step hook that zeroes the gradients of frozen slices and
keeps a copy of every frozen or scaled slice (and, for frozen ones, of the state tensors shaped
like the parameter: AdamW's moments, SGD's momentum), and a post-step hook that writes frozen
slices and their state back (this defeats weight decay and momentum, which move a parameter
even at zero gradient) and rescales the step of scaled slices: p = p0 + s (p - p0), with
s = slice.lr_scale / the group's `lr_scale` (exact for updates linear in lr: SGD, Adam(W)).
When no slice is frozen or scaled nothing is attached, so training is untouched.
"""
from __future__ import annotations

import torch

_KEY = "_morph_slice_control"


def _sl(index) -> tuple:
    return tuple(slice(a, b) for a, b in index)


class SliceControl:
    """Step hooks of one optimizer for one module's slice metadata (see module doc)."""

    def __init__(self, module, optimizer, meta):
        self.optimizer = optimizer
        group_scale = {id(p): g.get("lr_scale", 1.0) for g in optimizer.param_groups
                       for p in g["params"]}
        self.frozen: list = []   # (param, [slice tuples])
        self.scaled: list = []   # (param, [(slice tuple, factor)])
        for n, p in module.named_parameters():
            if n not in meta.params or id(p) not in group_scale:
                continue
            gs = group_scale[id(p)]
            fz = [_sl(s.index) for s in meta.params[n] if s.frozen]
            sc = [(_sl(s.index), s.lr_scale / gs) for s in meta.params[n]
                  if not s.frozen and gs > 0 and s.lr_scale / gs != 1.0]
            if fz:
                self.frozen.append((p, fz))
            if sc:
                self.scaled.append((p, sc))
        self._saved: list = []
        self.handles = []

    @property
    def active(self) -> bool:
        return bool(self.frozen or self.scaled)

    @torch.no_grad()
    def pre(self, opt=None, args=None, kwargs=None) -> None:
        saved = []
        for p, boxes in self.frozen:
            st = self.optimizer.state.get(p, {})
            keys = [k for k, v in st.items() if torch.is_tensor(v) and v.shape == p.shape]
            for b in boxes:
                if p.grad is not None:
                    p.grad[b] = 0
                saved.append((p, b, p[b].clone(), {k: st[k][b].clone() for k in keys}, None))
        for p, boxes in self.scaled:
            for b, f in boxes:
                saved.append((p, b, p[b].clone(), None, f))
        self._saved = saved

    @torch.no_grad()
    def post(self, opt=None, args=None, kwargs=None) -> None:
        for p, b, before, state, f in self._saved:
            if f is None:
                p[b] = before
                st = self.optimizer.state.get(p, {})
                for k, v in state.items():
                    if k in st:
                        st[k][b] = v
            else:
                p[b] = before + f * (p[b] - before)
        self._saved = []

    def detach(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []
        if getattr(self.optimizer, _KEY, None) is self:
            delattr(self.optimizer, _KEY)


def attach(module, optimizer, meta) -> SliceControl | None:
    """Install the step hooks for `meta` on `optimizer` (replacing ones attached before);
    returns the control, or None when no slice is frozen or scaled (nothing attached)."""
    old = getattr(optimizer, _KEY, None)
    if old is not None:
        old.detach()
    if optimizer is None or meta is None:
        return None
    ctl = SliceControl(module, optimizer, meta)
    if not ctl.active:
        return None
    ctl.handles = [optimizer.register_step_pre_hook(ctl.pre),
                   optimizer.register_step_post_hook(ctl.post)]
    setattr(optimizer, _KEY, ctl)
    return ctl


def set_lr(optimizer, lr: float) -> None:
    """Set every group's LR to lr x its `lr_scale` (1 for groups without one): the LR schedule
    of an engine that keeps the rewarm groups `new_lr_scale` makes."""
    for g in optimizer.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)
