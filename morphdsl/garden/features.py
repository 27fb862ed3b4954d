"""What a learned gardener sees and can do: one observation vector and one discrete action
space, shared by the training environment (env.py) and the controller that uses a trained
policy (policy.py), so a policy acts in `morphc train` exactly as it learned to.

Actions (one seed alive at a time):

    0                      wait
    1 + k * S + s          germinate a seed of kinds[k] at sites[s]
    1 + K * S              advance the live seed (training -> blending; holding -> fossilized)
    2 + K * S              prune the live seed

Invalid actions are masked: germinate while a seed lives or over the parameter budget, advance
before the gates allow it (gates.py: the same thresholds the heuristic obeys), prune with no seed.

Observation (all relative, so a policy trained on one corpus reads another): progress and budget
left; the last three relative validation gains and log validation loss; log(params / host
params); per-site gradient RMS over their mean, and the log10 of that mean; the live seed's
stage (one-hot none / training / blending / holding), alpha, steps in stage over its gate, and
its last measured contribution (x 100, clipped).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..train.growth import GrowthAction
from .heuristic import germinate_action
from .signals import grad_rms

STAGES = ("training", "blending", "holding")
LIMIT = 10.0  # every feature is clipped to [-LIMIT, LIMIT]


@dataclass
class ActionSpace:
    kinds: tuple
    sites: tuple
    hidden: int | None = None
    heads: int = 1
    max_params: int | None = None

    @property
    def n(self) -> int:
        return 3 + len(self.kinds) * len(self.sites)

    @property
    def advance(self) -> int:
        return 1 + len(self.kinds) * len(self.sites)

    @property
    def prune(self) -> int:
        return self.advance + 1

    def describe(self, a: int) -> str:
        if a == 0:
            return "wait"
        if a == self.advance:
            return "advance"
        if a == self.prune:
            return "prune"
        k, s = divmod(a - 1, len(self.sites))
        return f"germinate {self.kinds[k]} at {self.sites[s]}"

    def mask(self, engine, life) -> np.ndarray:
        m = np.zeros(self.n, dtype=bool)
        m[0] = True
        allowed = life.allowed(engine.step)
        if not allowed and (self.max_params is None or engine.n_params() < self.max_params):
            m[1:self.advance] = True
        if allowed:
            (a,) = allowed.values()
            m[self.advance] = a["advance"]
            m[self.prune] = a["prune"]
        return m

    def actions(self, a: int, engine, life, why: str) -> list[GrowthAction]:
        """The growth actions of action `a` (which the mask allows)."""
        if a == 0:
            return []
        allowed = life.allowed(engine.step)
        if a in (self.advance, self.prune):
            (path, st), = allowed.items()
            if a == self.prune:
                return [GrowthAction("prune", [path], {}, reason=f"{why}: prune {path}")]
            if st["stage"] == "training":
                return [GrowthAction("seed_stage", [path], {"stage": "blending", "alpha": 0.0},
                                     reason=f"{why}: advance {path} to blending")]
            return [GrowthAction("fossilize", [path], {}, reason=f"{why}: fossilize {path}")]
        k, s = divmod(a - 1, len(self.sites))
        return [germinate_action(self.sites[s], self.kinds[k], self.hidden, self.heads,
                                 f"{why}: {self.describe(a)}")]


def obs_size(n_sites: int) -> int:
    return 2 + 4 + 1 + n_sites + 1 + 4 + 3


def observe(engine, life, space: ActionSpace, host_params: int) -> np.ndarray:
    prog = float(engine.progress())
    vals = [v for _, v in engine.val_history[-4:]]
    vals = [vals[0]] * (4 - len(vals)) + vals if vals else [0.0] * 4
    gains = [(a - b) / abs(a) if a else 0.0 for a, b in zip(vals, vals[1:])]
    live = life.allowed(engine.step)
    g = grad_rms(engine.model, list(space.sites), exclude=list(live))
    mean = sum(g.values()) / max(len(g), 1)
    sites = [g[s] / mean if mean > 0 else 0.0 for s in space.sites]
    seed = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    if live:
        (st,) = live.values()
        seed = [0.0] * 4
        seed[1 + STAGES.index(st["stage"])] = 1.0
        gate = {"training": life.gates.min_training, "blending": life.gates.blend_steps,
                "holding": life.gates.min_holding}[st["stage"]]
        c = st["contribution"]
        seed += [st["alpha"], min(st["steps_in"] / max(gate, 1), 2.0),
                 0.0 if c is None else max(-5.0, min(5.0, 100 * c))]
    v = [prog, 1.0 - prog, *[10 * x for x in gains], math.log(max(vals[-1], 1e-6)),
         math.log(engine.n_params() / host_params), *sites,
         math.log10(mean) if mean > 0 else -10.0, *seed]
    return np.clip(np.asarray(v, dtype=np.float32), -LIMIT, LIMIT)
