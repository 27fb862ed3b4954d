"""Train a gardener policy: MaskablePPO (sb3-contrib) on GardenEnv, its action entropy recorded
at every update (the anchor project's policy collapsed to one action; ours must not).

    from morphdsl.garden.ppo import train_policy
    report = train_policy("specs/bench/garden_host.morph", "garden.zip", timesteps=4000)
    report["entropy"]       # [(timesteps, mean action entropy in nats)] per PPO update
"""
from __future__ import annotations

import json
import time
from pathlib import Path

PPO_DEFAULTS = dict(n_steps=256, batch_size=64, n_epochs=4, learning_rate=3e-4, gamma=1.0,
                    gae_lambda=0.95, ent_coef=0.01, clip_range=0.2)


def train_policy(spec, out, *, timesteps: int = 4000, seed: int = 0, net_arch=(64, 64),
                 env_kwargs: dict | None = None, ppo_kwargs: dict | None = None, log=None) -> dict:
    """Train, save the policy to `out` (policy.py's format) and return a report: timesteps,
    seconds, per-update entropy and mean episode reward."""
    import torch
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.callbacks import BaseCallback

    from .env import GardenEnv
    from .policy import save_policy

    torch.set_num_threads(1)
    env = GardenEnv(spec, seed=seed, **(env_kwargs or {}))
    kw = {**PPO_DEFAULTS, **(ppo_kwargs or {})}
    kw["n_steps"] = min(kw["n_steps"], max(timesteps, 8))
    kw["batch_size"] = min(kw["batch_size"], kw["n_steps"])
    model = MaskablePPO("MlpPolicy", env, seed=seed, verbose=0, device="cpu",
                        policy_kwargs={"net_arch": list(net_arch)}, **kw)
    rows: list = []

    class Record(BaseCallback):
        def __init__(self):
            super().__init__()
            self.returns, self.ret = [], 0.0

        def _on_step(self) -> bool:
            self.ret += float(self.locals["rewards"][0])
            if self.locals["dones"][0]:
                self.returns.append(self.ret)
                self.ret = 0.0
            return True

        def _on_rollout_start(self) -> None:
            v = self.model.logger.name_to_value.get("train/entropy_loss")
            if v is not None:  # sb3 records -(mean entropy) after each update
                r = {"timesteps": self.num_timesteps, "entropy": -float(v),
                     "return": (sum(self.returns[-10:]) / len(self.returns[-10:]))
                     if self.returns else None}
                rows.append(r)
                if log:
                    log(f"  {r['timesteps']:6d} steps: entropy {r['entropy']:.3f} nats"
                        + (f", return {r['return']:+.4f}" if r["return"] is not None else ""))

    t0 = time.time()
    rec = Record()
    model.learn(total_timesteps=timesteps, callback=rec)
    v = model.logger.name_to_value.get("train/entropy_loss")
    if v is not None:
        rows.append({"timesteps": model.num_timesteps, "entropy": -float(v), "return": None})
    report = {"timesteps": model.num_timesteps, "seconds": time.time() - t0, "entropy": rows,
              "episodes": len(rec.returns), "returns": rec.returns, "ppo": kw,
              "net_arch": list(net_arch), "env": env_kwargs or {}, "spec": str(spec), "seed": seed}
    save_policy(model, env, out, {"trained": {k: report[k] for k in ("timesteps", "seconds", "spec",
                                                                     "seed", "env", "ppo")}})
    Path(str(out) + ".json").write_text(json.dumps(report, indent=1, default=str))
    env.close()
    return report
