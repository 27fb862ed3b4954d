"""The gates between a seed's stages: one rule, with thresholds from the spec, that every
controller shares (the heuristic, a learned policy, a user's own).

    grow { seeds(min_training = 100, blend_steps = 100, ramp = "cosine", min_holding = 50,
                 min_contribution = 0.0) }

    training  -> blending   after `min_training` steps in training, once the seed's gradient
                            norm is at least `grad_ratio` x the host's (per parameter, RMS)
    blending                alpha follows the ramp (linear or cosine) over `blend_steps` steps,
                            set `blend_updates` times (each a seed_stage rewrite)
    blending  -> holding    when the ramp reaches 1
    holding   -> fossilized after `min_holding` steps, at an evaluation, when the seed's
                            counterfactual contribution (validation loss with the seed masked
                            out minus with it, relative) is at least `min_contribution`
    holding   -> pruned     ... when it is below
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

RAMPS = ("linear", "cosine")


@dataclass
class Gates:
    usage = ("seeds(min_training = 100, grad_ratio = 0, blend_steps = 100, blend_updates = 10, "
             "ramp = \"linear\" | \"cosine\", min_holding = 50, min_contribution = 0.0)")
    min_training: int = 100
    grad_ratio: float = 0.0
    blend_steps: int = 100
    blend_updates: int = 10
    ramp: str = "linear"
    min_holding: int = 50
    min_contribution: float = 0.0

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if f.type == "int" and (isinstance(v, bool) or not isinstance(v, int) or v < (1 if f.name in (
                    "blend_steps", "blend_updates") else 0)):
                raise ValueError(f"seeds(): `{f.name}` must be an integer >= "
                                 f"{1 if f.name in ('blend_steps', 'blend_updates') else 0}, got {v!r}")
            if f.type == "float" and (isinstance(v, bool) or not isinstance(v, (int, float))
                                      or not math.isfinite(v)):
                raise ValueError(f"seeds(): `{f.name}` must be a number, got {v!r}")
        if self.ramp not in RAMPS:
            raise ValueError(f"seeds(): `ramp` must be one of {', '.join(RAMPS)}, got {self.ramp!r}")
        if self.grad_ratio < 0:
            raise ValueError(f"seeds(): `grad_ratio` must be >= 0, got {self.grad_ratio!r}")

    def alpha(self, steps_in: int) -> float:
        """The blending coefficient `steps_in` steps into the ramp, quantised to the updates."""
        t = min(1.0, math.floor(steps_in / self.blend_steps * self.blend_updates) / self.blend_updates)
        return t if self.ramp == "linear" else 0.5 - 0.5 * math.cos(math.pi * t)

    def next(self, stage: str, alpha: float, steps_in: int, event: str, grad_ratio=None,
             contribution=None):
        """The move the gates allow now: (op, kwargs, reason) or None. `contribution` is the
        relative counterfactual contribution (measured only when `wants_contribution` says so)."""
        if stage == "training":
            if not self.may_leave(stage, steps_in, grad_ratio):
                return None
            why = f"{steps_in} steps in training >= {self.min_training}"
            if self.grad_ratio > 0:
                why += f", gradient ratio {grad_ratio:.3g} >= {self.grad_ratio:g}"
            return "seed_stage", {"stage": "blending", "alpha": 0.0}, why
        if stage == "blending":
            a = self.alpha(steps_in)
            if a >= 1.0:
                return "seed_stage", {"stage": "holding"}, f"blend ramp done ({steps_in} steps)"
            if a > alpha + 1e-12:
                return "seed_stage", {"stage": "blending", "alpha": round(a, 6)}, \
                    f"{self.ramp} ramp: {steps_in}/{self.blend_steps} steps"
            return None
        if stage == "holding" and contribution is not None and self.may_leave(stage, steps_in):
            pct = f"{100 * contribution:+.3f}%"
            if contribution >= self.min_contribution:
                return "fossilize", {}, f"contribution {pct} >= {100 * self.min_contribution:g}%"
            return "prune", {}, f"contribution {pct} < {100 * self.min_contribution:g}%"
        return None

    def may_leave(self, stage: str, steps_in: int, grad_ratio=None) -> bool:
        """Whether a seed may leave `stage` now: training after `min_training` steps (and at the
        gradient ratio), holding after `min_holding`; blending ends with its ramp, not here."""
        if stage == "training":
            return steps_in >= self.min_training and (
                self.grad_ratio <= 0 or (grad_ratio is not None and grad_ratio >= self.grad_ratio))
        return stage == "holding" and steps_in >= self.min_holding

    def wants_contribution(self, stage: str, steps_in: int, event: str) -> bool:
        return event == "eval" and stage == "holding" and self.may_leave(stage, steps_in)
