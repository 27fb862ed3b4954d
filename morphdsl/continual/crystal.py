"""Petals that crystallize, thaw by hand, and new petals blended in (CONCEPTS §4).

A weight is *cold* when the step the current LR can give it at its temperature is small:
`T · lr / lr_peak < crystal_cold` (ViscoElastic.cold). A petal — index (lane l, petal p) of
every tensor of its hull, all (L, P, ...) — *crystallizes* when the share of its weights that are
cold reaches `crystal_share` (default 1 − 1/e ≈ 0.632, the notes'): the optimizer's `crystal`
divider is set on its slices (its steps are divided by `chrysalis`, nothing is clamped), the
slices are marked `crystal` in the per-parameter metadata, and a `crystallize` event is logged.
Only petals at full strength (gate alpha = 1) crystallize.

    frozen_shares(model, opt)   # {"hulls": {path: share}, "lanes": {lane: share}}: the frozen() trigger's view
    thaw(model, opt, "lanes.blocks.0.mlp", petals=[(0, 1)])  # by hand: movable and hot again

The `Crystallizer` callback (installed by the engine; it acts only with a ViscoElastic
optimizer) checks every `crystal_every` steps and ramps the gates of petals `add_petals` grew
(alpha 0) to 1 over `blend_steps` steps: the gate is a constant nonneg weight of the pooling, so
the hull stays convex at every step. Everything it reads lives in the model (alpha) and the
optimizer state (crystal, chill), so a resumed run continues exactly.
"""
from __future__ import annotations

import torch

from ..ops.modules import Hull
from .visco import CONSTANTS, ViscoElastic

def setting(opt, name: str):
    """A crystallization constant of the optimizer (visco.CONSTANTS has the defaults)."""
    return opt.defaults.get(name, CONSTANTS[name][0])


def hulls(model) -> list[tuple[str, Hull]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, Hull)]


def _per_petal(t: torch.Tensor) -> torch.Tensor:
    """(L, P, ...) -> (L, P): the sum over each petal's entries."""
    return t.reshape(t.shape[0], t.shape[1], -1).sum(-1) if t.dim() > 2 else t


def crystal_mask(hull: Hull, opt) -> torch.Tensor:
    """(L, P) bool: the petals whose slices are crystallized (read from the optimizer)."""
    st = opt.state.get(hull.w0) if isinstance(opt, ViscoElastic) else None
    if not st or "crystal" not in st:
        return torch.zeros(hull.L, hull.P, dtype=torch.bool)
    return st["crystal"].reshape(hull.L, hull.P, -1).amax(-1) > 0


def frozen_shares(model, opt, found=None) -> dict:
    """The share of crystallized petals per hull (by module path) and per lane (over every
    hull). `found`: the model's `hulls()`, when the caller keeps them."""
    out = {"hulls": {}, "lanes": {}}
    if not isinstance(opt, ViscoElastic):
        return out
    per_lane: dict[int, list] = {}
    for path, h in hulls(model) if found is None else found:
        mask = crystal_mask(h, opt)
        out["hulls"][path] = mask.float().mean().item()
        for lane in range(h.L):
            a = per_lane.setdefault(lane, [0, 0])
            a[0] += int(mask[lane].sum())
            a[1] += h.P
    out["lanes"] = {lane: f / max(n, 1) for lane, (f, n) in per_lane.items()}
    return out


def _meta(model, opt):
    """The model's per-parameter metadata (the record: checkpointed, follows growth), made
    (every tensor `init`) if it has none yet."""
    if getattr(model, "morph_meta", None) is None:
        from ..growth.metadata import ParamMeta

        model.morph_meta = ParamMeta.initial(model, opt)
    return model.morph_meta


def _mark(model, opt, path: str, hull: Hull, petals, on: bool) -> None:
    meta = _meta(model, opt)
    for pname, p in hull.named_parameters():
        for lane, pet in petals:
            opt.crystallize(p, (lane, pet), on)
            if f"{path}.{pname}" in meta.params:
                idx = ((lane, lane + 1), (pet, pet + 1))
                meta.update(f"{path}.{pname}", idx, crystal=on)


@torch.no_grad()
def crystallize(model, opt, lr_ratio: float, found=None) -> list[dict]:
    """Crystallize every petal whose cold share passed `crystal_share`; the events, one per hull."""
    if not isinstance(opt, ViscoElastic):
        return []
    cold_at, share = setting(opt, "crystal_cold"), setting(opt, "crystal_share")
    events = []
    found = hulls(model) if found is None else found
    for path, h in found:
        cold = torch.zeros(h.L, h.P)
        total = 0
        for _, p in h.named_parameters():
            cold += _per_petal(opt.cold(p, lr_ratio, cold_at).float())
            total += p[0, 0].numel()
        frac = cold / total
        new = (frac >= share) & ~crystal_mask(h, opt) & (h.alpha >= 1)
        petals = [tuple(int(i) for i in ix) for ix in new.nonzero().tolist()]
        if petals:
            _mark(model, opt, path, h, petals, True)
            events.append({"type": "crystallize", "hull": path, "petals": [list(x) for x in petals],
                           "cold_share": [round(float(frac[lane, pet]), 4) for lane, pet in petals],
                           "frozen_share": float(crystal_mask(h, opt).float().mean())})
    if setting(opt, "crystal_host"):
        events += _host_rows(model, opt, lr_ratio, cold_at, share, found)
    return events


def _runs(idx: list[int]) -> list[tuple[int, int]]:
    """Sorted indices as [start, stop) runs."""
    out = []
    for i in idx:
        if out and out[-1][1] == i:
            out[-1] = (out[-1][0], i + 1)
        else:
            out.append((i, i + 1))
    return out


def _host_rows(model, opt, lr_ratio, cold_at, share, found) -> list[dict]:
    """`crystal_host`: every other tensor crystallizes per row (dim 0; a vector as a whole)."""
    in_hull = {id(p) for _, h in found for p in h.parameters()}
    events = []
    for name, p in model.named_parameters():
        st = opt.state.get(p)
        if id(p) in in_hull or not st or "crystal" not in st:
            continue
        rows = p.shape[0] if p.dim() >= 2 else 1
        frac = opt.cold(p, lr_ratio, cold_at).reshape(rows, -1).float().mean(1)
        new = (frac >= share) & ~(st["crystal"].reshape(rows, -1).amax(1) > 0)
        if not bool(new.any()):
            continue
        meta = _meta(model, opt)
        for a, b in _runs(new.nonzero().flatten().tolist()):
            opt.crystallize(p, slice(a, b) if p.dim() >= 2 else slice(None))
            if name in meta.params:
                meta.update(name, ((a, b),) if p.dim() >= 2 else None, crystal=True)
        events.append({"type": "crystallize", "tensor": name, "rows": int(new.sum()),
                       "of": rows})
    return events


def thaw(model, opt, path: str, petals=None) -> list[tuple[int, int]]:
    """Thaw the crystallized petals of hull `path` (all of them, or the (lane, petal) pairs
    given): their steps are no longer divided and they start hot. Returns those thawed."""
    h = model.get_submodule(path)
    if not isinstance(h, Hull):
        raise ValueError(f"`{path}` is not a hull (it is {type(h).__name__})")
    mask = crystal_mask(h, opt)
    if petals is None:
        petals = [tuple(ix) for ix in mask.nonzero().tolist()]
    petals = [(int(a), int(b)) for a, b in petals if mask[int(a), int(b)]]
    if petals:
        _mark(model, opt, path, h, petals, False)
    return petals


@torch.no_grad()
def blend_step(model, steps: int, found=None) -> list[str]:
    """Move every gate below 1 up by 1/steps (to at most 1); the hulls that moved."""
    moved = []
    for path, h in hulls(model) if found is None else found:
        a = h.alpha
        if bool((a < 1).any()):
            step = 1.0 / max(steps, 1)
            up = a + step  # within half a step of 1 is 1 (float sums of 1/steps fall short)
            a.copy_(torch.where(a < 1, torch.where(up > 1 - step / 2, 1.0, up), a))
            moved.append(path)
    return moved


class Crystallizer:
    """Engine callback: crystallize petals every `crystal_every` steps, blend in new ones, and
    keep `engine.frozen` (the shares the frozen() trigger reads) current: it changes only when
    petals crystallize, the model grows or the run rolls back. The model's hulls are found once
    per model, not every step."""

    def __init__(self):
        self._model, self._hulls = None, []

    def _found(self, engine) -> list:
        if engine.model is not self._model:
            self._model, self._hulls = engine.model, hulls(engine.model)
        return self._hulls

    def _shares(self, engine) -> None:
        if isinstance(engine.opt, ViscoElastic):
            engine.frozen = frozen_shares(engine.model, engine.opt, self._found(engine))

    def on_train_start(self, engine):
        self._shares(engine)

    def on_growth(self, engine, event):
        self._shares(engine)

    def on_rollback(self, engine, event):
        self._shares(engine)

    def on_step(self, engine, row):
        opt = engine.opt
        if not isinstance(opt, ViscoElastic):
            return
        found = self._found(engine)
        blend_step(engine.model, int(setting(opt, "blend_steps")), found)
        if engine.step % int(setting(opt, "crystal_every")):
            return
        ratio = row["lr"] / engine.cfg.lr if engine.cfg.lr else 1.0
        events = crystallize(engine.model, opt, ratio, found)
        if events:
            self._shares(engine)
        for ev in events:
            engine.emit("on_event", {"step": engine.step, "tokens": engine.tokens, **ev})
