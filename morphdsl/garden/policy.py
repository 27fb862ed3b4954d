"""A learned gardener: train a MaskablePPO policy on GardenEnv, save it, and use it as a
controller (`grow { policy("garden.zip") }` or `morphc train --policy garden.zip`).

A saved policy is a zip of `config.json` (format, observation and action layout, network,
how it was trained) and `policy.safetensors` (the actor-critic's tensors): nothing in it is
unpickled when it is read, unlike a stable-baselines3 `.zip`.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import MorphError
from ..train.growth import ControlState, GrowthAction
from .features import ActionSpace, obs_size, observe

FORMAT = "morphdsl-garden-policy/1"


def _policy_net(cfg: dict):
    import gymnasium as gym
    from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy

    from .features import LIMIT

    obs = gym.spaces.Box(-LIMIT, LIMIT, (cfg["obs_dim"],), np.float32)
    return MaskableActorCriticPolicy(obs, gym.spaces.Discrete(cfg["n_actions"]), lambda _: 0.0,
                                     net_arch=list(cfg["net_arch"]))


def save_policy(model, env, path, info: dict | None = None) -> Path:
    """Write `model.policy` (a MaskablePPO's) and the env's layout to `path` (a zip)."""
    from safetensors.torch import save

    sp = env.space
    cfg = {"format": FORMAT, "obs_dim": int(env.observation_space.shape[0]),
           "n_actions": int(env.action_space.n), "net_arch": list(model.policy.net_arch),
           "kinds": list(sp.kinds), "sites": list(sp.sites), "hidden": sp.hidden, "heads": sp.heads,
           "max_params": sp.max_params, "decide_every": env.decide_every, **(info or {})}
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.policy.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w") as z:
        z.writestr("config.json", json.dumps(cfg, indent=1))
        z.writestr("policy.safetensors", save(tensors))
    tmp.replace(path)
    return path


def load_policy(path):
    """(config, policy network in eval mode) from a saved policy; ValueError if it is not one."""
    from safetensors.torch import load

    p = Path(path)
    if not p.is_file():
        raise ValueError(f"no policy file `{path}`")
    try:
        with zipfile.ZipFile(p) as z:
            cfg = json.loads(z.read("config.json"))
            tensors = load(z.read("policy.safetensors"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError) as e:
        raise ValueError(f"`{path}` is not a morphdsl policy ({e})") from None
    if cfg.get("format") != FORMAT:
        raise ValueError(f"`{path}` has format {cfg.get('format')!r}, not {FORMAT}")
    net = _policy_net(cfg)
    net.load_state_dict(tensors)
    net.eval()
    return cfg, net


class Policy:
    """Act by a trained policy at every evaluation (the env decided every `decide_every` steps:
    train with `eval_every` equal to it)."""

    usage = 'policy("garden.zip", deterministic = 1)'
    manual_lifecycle = True  # the policy advances and prunes; the lifecycle only ramps alpha

    def __init__(self, path, deterministic=1):
        self.path, self.deterministic = str(path), bool(deterministic)
        self.cfg, self.net = load_policy(path)
        c = self.cfg
        self.space = ActionSpace(tuple(c["kinds"]), tuple(c["sites"]), c.get("hidden"),
                                 c.get("heads", 1), c.get("max_params"))
        if obs_size(len(self.space.sites)) != c["obs_dim"] or self.space.n != c["n_actions"]:
            raise ValueError(f"`{path}`: its observation or action layout does not match this "
                             "morphdsl's; retrain it")
        self.engine = self.life = None
        self.state = {"host_params": None, "decisions": 0}

    def bind(self, engine) -> None:
        from .heuristic import sites
        from .lifecycle import Lifecycle

        self.engine = engine
        self.life = next((c for c in engine.controllers if isinstance(c, Lifecycle)), None)
        have = set(sites(engine.model.morph_graph))
        missing = [s for s in self.space.sites if s not in have]
        if missing or self.life is None:
            raise MorphError(f"policy `{self.path}` acts on sites {', '.join(self.space.sites)}; "
                             f"this model has {', '.join(sorted(have)) or 'none'}",
                             hint="train the policy on a host with the same blocks (morphc garden train)")

    def decide(self, s: ControlState) -> list[GrowthAction]:
        if s.event != "eval":
            return []
        if self.state["host_params"] is None:
            self.state["host_params"] = self.engine.n_params()
        obs = observe(self.engine, self.life, self.space, self.state["host_params"])
        mask = self.space.mask(self.engine, self.life)
        with torch.no_grad(), torch.random.fork_rng(devices=[]):  # the run's RNG is untouched
            torch.manual_seed(self.engine.cfg.seed * 1_000_003 + s.step)  # a sample per (seed, step)
            a, _ = self.net.predict(obs, deterministic=self.deterministic, action_masks=mask)
        a = int(a)
        self.state["decisions"] += 1
        return self.space.actions(a, self.engine, self.life, f"policy {Path(self.path).name}")

    def state_dict(self) -> dict:
        return {"state": dict(self.state)}

    def load_state_dict(self, d: dict) -> None:
        self.state = dict(d.get("state") or self.state)
