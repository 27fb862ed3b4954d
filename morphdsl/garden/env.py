"""A gymnasium environment around training a small host: the agent is the gardener.

    env = GardenEnv("specs/bench/garden_host.morph", budget_steps=400, decide_every=20)
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(env.action_masks().nonzero()[0][0])

An episode trains the host from scratch for a FLOPs budget (`budget_steps` steps of the host's
size: a grown model spends it faster). Every `decide_every` steps the agent picks one action
(features.py: wait, germinate a kind at a site, advance, prune; invalid ones masked, and
taken anyway they are a wait) and the
engine trains on to the next evaluation. The reward of a decision is the validation loss it
gained minus a parameter rent, `rent * min(0.5 * log(1 + added / host), 1.5)`; summed over an
episode the gains telescope to (first loss - final loss), so the agent is paid for the final
loss at equal FLOPs. The seed lifecycle's gates (the same `seeds(...)` thresholds the heuristic
obeys) say when advance is allowed; the alpha ramp runs by itself.
"""
from __future__ import annotations

import dataclasses
import math
import tempfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from .features import LIMIT, ActionSpace, obs_size, observe
from .gates import Gates
from .heuristic import sites as find_sites
from .lifecycle import Lifecycle


def rent(params: int, host: int) -> float:
    return min(0.5 * math.log(1 + max(params - host, 0) / host), 1.5)


class GardenEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, spec, *, budget_steps: int = 400, decide_every: int = 20,
                 kinds=("mlp", "attn"), hidden: int | None = None, heads: int = 1,
                 max_params: int | None = None, gates: Gates | None = None, rent_coef: float = 0.01,
                 source: str | None = None, eval_batches: int = 4, threads: int = 1, seed: int = 0):
        import morphdsl
        from ..train.config import from_sections
        from ..train.data import prepare_data

        self.graph = morphdsl.build(spec)
        over = {"threads": threads, "eval_every": decide_every, "eval_batches": eval_batches,
                "checkpoint_every": 10**9, "sample_tokens": 0, "steps": 10**9}
        if source is not None:
            over["source"] = source
        cfg = from_sections(self.graph.sections, over)
        self.base = cfg
        self.tokenizer, self.stream = prepare_data(cfg, self.graph, None)
        from ..ir.cost import train_flops

        self.host_params = sum(math.prod(s) for s in self.graph.param_shapes().values())
        self.budget = budget_steps * train_flops(self.graph, cfg.batch, cfg.ctx)
        self.decide_every, self.rent_coef = int(decide_every), float(rent_coef)
        self.gates = gates or Gates(min_training=decide_every, blend_steps=decide_every,
                                    blend_updates=2, min_holding=decide_every)
        self.space = ActionSpace(tuple(kinds), tuple(find_sites(self.graph)), hidden, heads, max_params)
        self.action_space = gym.spaces.Discrete(self.space.n)
        n = obs_size(len(self.space.sites))
        self.observation_space = gym.spaces.Box(-LIMIT, LIMIT, (n,), np.float32)
        self.engine = self.life = None
        self._dir = tempfile.TemporaryDirectory(prefix="morph-garden-")
        self._seed = seed
        self.episode = 0

    # ------------------------------------------------------------------ episodes
    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        import morphdsl
        from ..train.engine import Engine

        if seed is not None:  # a seeded reset restarts the sequence of episodes (determinism)
            self._seed, self.episode = int(seed), 0
        run_seed = self._seed + self.episode
        self.episode += 1
        cfg = dataclasses.replace(self.base, seed=run_seed, flops=self.budget)
        torch.manual_seed(run_seed)
        module = morphdsl.compile(self.graph)
        self.life = Lifecycle(self.gates, auto=False)
        run = Path(self._dir.name) / "run"
        self.engine = Engine(module, cfg, run, tokenizer=self.tokenizer, stream=self.stream,
                             controllers=[self.life])
        self.life.bind(self.engine)
        self.engine.begin()
        self._to_eval()
        self.last = self.first = self.engine.val_history[-1][1]
        return self._obs(), self._info()

    def step(self, action):
        a = int(action)
        e = self.engine
        invalid = not self.action_masks()[a]  # a masked action is a wait (MaskablePPO never picks one)
        for g in ([] if invalid else self.space.actions(a, e, self.life, f"policy action {a}")):
            e.grow(g)
        self._to_eval()
        val = e.val_history[-1][1]
        reward = (self.last - val) - self.rent_coef * rent(e.n_params(), self.host_params)
        self.last = val
        done = e.finished()
        return self._obs(), float(reward), bool(done), False, {**self._info(a), "invalid": invalid}

    def _to_eval(self):
        """Train to the next evaluation (or the end of the budget)."""
        e = self.engine
        n = len(e.val_history)
        while not e.finished() and len(e.val_history) == n:
            e.advance()

    def action_masks(self) -> np.ndarray:
        return self.space.mask(self.engine, self.life)

    def _obs(self):
        return observe(self.engine, self.life, self.space, self.host_params)

    def _info(self, a=None):
        e = self.engine
        return {"step": e.step, "val_loss": e.val_history[-1][1], "params": e.n_params(),
                "flops": e.flops, "action": None if a is None else self.space.describe(a)}

    def close(self):
        self._dir.cleanup()

