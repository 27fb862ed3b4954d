"""ViscoElastic: an Adam-style optimizer whose weights resist being pushed back, cool when they
are not pushed, and crystallize (CONCEPTS §4; the convex notes' "two directions").

    opt = ViscoElastic(model.parameters(), lr=3e-3)          # or train { optimizer = "visco_elastic" }
    opt.step(); opt.temperature(p); opt.crystallize(p, mask)  # per-weight state, see below

Per weight, on top of AdamW's normalised step `u = m̂ / (sqrt(v̂) + eps) + wd·θ` (decoupled
decay folded into the step, so it is damped like the rest):

- **Two resistance buffers**, one per direction: `res_up` resists a step up (it is built by steps
  down), `res_down` a step down. Every step in direction s adds `resist` to the resistance
  against the reverse; a step against built-up resistance R is divided by `1 + R` and moves the
  fraction `deplete` of R into the other buffer (a reversal turns resistance around). Both decay
  by `resist_decay` per step.
- **A temperature** T in [t_min, 1], 1 (hot) at the start: it relaxes at rate `cool` towards the
  weight's recent activity `min(1, |û| / heat_ref)` (û: Adam's step without decay), so a weight
  that is not pushed cools and one that is pushed again warms (elasticity); the effective LR is
  `lr · T`. Stored as `chill = 1 − T` so a fresh (grown) weight starts hot with zero state.
- **A freeze divider**: a weight marked crystallized (`crystal` = 1, set per petal by
  morphdsl/continual/crystal.py) has its step divided by `chrysalis` (1e7): very hard to move,
  nothing clamped, so a reparametrised nonneg weight (softplus) stays valid by construction.

The step is `θ ← θ − lr · T · u / ((1 + R_against) · (1 + crystal · (chrysalis − 1)))`.
Every state tensor is shaped like its parameter and zero when fresh, so growth moves it like
AdamW's moments (rewrites/transfer.py: new slices start at zero = hot, no resistance, not
crystallized) and checkpoints carry it by name.
"""
from __future__ import annotations

import math

import torch

# name -> (default, what it is): the one table of constants (docs/continual.md prints it)
CONSTANTS = {
    "betas": ((0.9, 0.95), "Adam's moment decay rates (nanoGPT's)"),
    "eps": (1e-8, "Adam's denominator epsilon"),
    "weight_decay": (0.0, "decoupled weight decay, damped with the step"),
    "resist": (0.05, "resistance gained per step against reversing it"),
    "deplete": (0.5, "fraction of the resistance a reversal moves to the other side"),
    "resist_decay": (0.99, "per-step decay of both resistance buffers"),
    "cool": (0.01, "rate at which the temperature relaxes towards the recent activity"),
    "heat_ref": (0.1, "normalised step |û| that counts as fully active (temperature 1)"),
    "t_min": (1e-3, "the coldest temperature"),
    "chrysalis": (1e7, "divider of a crystallized weight's step"),
    # crystallization and expansion (continual/crystal.py reads them from the optimizer)
    "crystal_cold": (0.15, "a weight is cold when T · lr / lr_peak is below this"),
    "crystal_share": (1 - 1 / math.e, "a petal crystallizes when this share of its weights is cold"),
    "crystal_every": (10, "steps between crystallization checks"),
    "blend_steps": (100, "steps over which a new petal's gate ramps from 0 to 1"),
    "crystal_host": (False, "also crystallize the other weights, per row of each tensor, by the same rule"),
}
STATE = ("exp_avg", "exp_avg_sq", "res_up", "res_down", "chill", "crystal")


class ViscoElastic(torch.optim.Optimizer):
    """AdamW with per-weight directional resistance, temperature and a crystal divider."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.95), eps: float = 1e-8,
                 weight_decay: float = 0.0, resist: float = 0.05, deplete: float = 0.5,
                 resist_decay: float = 0.99, cool: float = 0.01, heat_ref: float = 0.1,
                 t_min: float = 1e-3, chrysalis: float = 1e7, crystal_cold: float = 0.15,
                 crystal_share: float = 1 - 1 / math.e, crystal_every: int = 10,
                 blend_steps: int = 100, crystal_host: bool = False):
        checks = {"lr": lr >= 0, "eps": eps >= 0, "weight_decay": weight_decay >= 0,
                  "resist": resist >= 0, "deplete": 0 <= deplete <= 1,
                  "resist_decay": 0 <= resist_decay <= 1, "cool": 0 <= cool <= 1,
                  "heat_ref": heat_ref > 0, "t_min": 0 < t_min <= 1, "chrysalis": chrysalis >= 1,
                  "crystal_cold": crystal_cold >= 0, "crystal_share": 0 < crystal_share <= 1,
                  "crystal_every": int(crystal_every) >= 1, "blend_steps": int(blend_steps) >= 1,
                  "betas": len(tuple(betas)) == 2 and all(0 <= b < 1 for b in betas)}
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid ViscoElastic argument(s): {', '.join(bad)} "
                             f"(see morphdsl.continual.visco.CONSTANTS for their ranges)")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      resist=resist, deplete=deplete, resist_decay=resist_decay,
                                      cool=cool, heat_ref=heat_ref, t_min=t_min,
                                      chrysalis=chrysalis, crystal_cold=crystal_cold,
                                      crystal_share=crystal_share, crystal_every=int(crystal_every),
                                      blend_steps=int(blend_steps), crystal_host=bool(crystal_host)))

    def _state(self, p) -> dict:
        st = self.state[p]
        if not st:
            st["step"] = torch.zeros((), dtype=torch.float32)
        for k in STATE:
            if k not in st:
                st[k] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return st

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for g in self.param_groups:
            ps = [p for p in g["params"] if p.grad is not None]
            if ps:
                self._step_group(g, ps)
        return loss

    def _step_group(self, g: dict, ps: list) -> None:
        """One step of a group, in foreach ops over its tensors (a handful of kernels a step,
        not a handful per tensor)."""
        if any(p.grad.is_sparse for p in ps):
            raise RuntimeError("ViscoElastic does not take sparse gradients")
        b1, b2 = g["betas"]
        sts = [self._state(p) for p in ps]
        grads = [p.grad for p in ps]
        for st in sts:
            st["step"] += 1
        ts = [float(st["step"]) for st in sts]  # per tensor: a grown tensor restarts at 0
        m, v = [st["exp_avg"] for st in sts], [st["exp_avg_sq"] for st in sts]
        torch._foreach_lerp_(m, grads, 1 - b1)
        torch._foreach_mul_(v, b2)
        torch._foreach_addcmul_(v, grads, grads, value=1 - b2)
        den = torch._foreach_div(v, [1 - b2 ** t for t in ts])
        torch._foreach_sqrt_(den)
        torch._foreach_add_(den, g["eps"])
        u = torch._foreach_div(torch._foreach_div(m, [1 - b1 ** t for t in ts]), den)
        heat = torch._foreach_abs(u)
        torch._foreach_div_(heat, g["heat_ref"])
        torch._foreach_clamp_max_(heat, 1.0)
        if g["weight_decay"]:
            torch._foreach_add_(u, ps, alpha=g["weight_decay"])
        F = torch._foreach_neg(torch._foreach_sign(u))  # f = 1 where the step moves the weight up
        torch._foreach_clamp_min_(F, 0.0)
        nF = torch._foreach_neg(F)                     # 1 - f: it moves down (or not at all)
        torch._foreach_add_(nF, 1.0)
        ru, rd = [st["res_up"] for st in sts], [st["res_down"] for st in sts]
        # the resistance the step goes against: ru·f + rd·(1 − f), a selection (f is 0 or 1;
        # (ru − rd)·f + rd would cancel, and a reversal could then deplete a buffer below 0)
        against = torch._foreach_mul(ru, F)
        torch._foreach_addcmul_(against, rd, nF)
        div = torch._foreach_add(against, 1.0)
        cry = torch._foreach_mul([st["crystal"] for st in sts], g["chrysalis"] - 1.0)
        torch._foreach_add_(cry, 1.0)
        torch._foreach_mul_(div, cry)
        temps = torch._foreach_neg([st["chill"] for st in sts])
        torch._foreach_add_(temps, 1.0)
        torch._foreach_mul_(u, temps)
        torch._foreach_div_(u, div)
        torch._foreach_add_(ps, u, alpha=-g["lr"])
        # resistance: the step's direction builds it against the reverse; a step against
        # resistance moves `deplete` of it to the other side; both decay
        moved = torch._foreach_mul(against, g["deplete"])
        gain = torch._foreach_add(moved, g["resist"])
        torch._foreach_addcmul_(ru, F, moved, value=-1.0)
        torch._foreach_addcmul_(ru, nF, gain)
        torch._foreach_addcmul_(rd, nF, moved, value=-1.0)
        torch._foreach_addcmul_(rd, F, gain)
        torch._foreach_mul_(ru + rd, g["resist_decay"])
        # temperature relaxes towards the recent activity (chill = 1 - T)
        torch._foreach_lerp_(temps, heat, g["cool"])
        torch._foreach_clamp_min_(temps, g["t_min"])
        torch._foreach_clamp_max_(temps, 1.0)
        torch._foreach_neg_(temps)
        torch._foreach_add_(temps, 1.0)
        for st, c in zip(sts, temps):
            st["chill"].copy_(c)

    # ------------------------------------------------------------------ reading and marking
    def temperature(self, p) -> torch.Tensor:
        """The weight's temperature (1 where it has no state yet)."""
        st = self.state.get(p)
        return 1.0 - st["chill"] if st and "chill" in st else torch.ones_like(p)

    def cold(self, p, lr_ratio: float, threshold: float) -> torch.Tensor:
        """Weights the current LR can barely move: T · lr_ratio < threshold, where lr_ratio is
        the schedule's LR now over its peak (the engine knows both)."""
        return self.temperature(p) * lr_ratio < threshold

    @torch.no_grad()
    def crystallize(self, p, index, on: bool = True) -> None:
        """Mark (or, on=False, thaw) the weights `p[index]` crystallized. Thawing warms them
        back up (temperature 1) so they can move again."""
        st = self._state(p)
        st["crystal"][index] = 1.0 if on else 0.0
        if not on:
            st["chill"][index] = 0.0


def damping(resistance: float, crystal: bool = False, chrysalis: float = 1e7) -> float:
    """The divider of a step against `resistance` (a test's and the docs' reference)."""
    return (1.0 + resistance) * (chrysalis if crystal else 1.0)


def steady_resistance(resist: float = 0.05, resist_decay: float = 0.99) -> float:
    """The resistance after many same-direction steps: resist·d / (1 − d)."""
    return math.inf if resist_decay >= 1 else resist * resist_decay / (1 - resist_decay)
