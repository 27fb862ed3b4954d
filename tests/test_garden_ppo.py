"""The PPO gardener: the gymnasium environment (env checker, masks, rewards), training a
MaskablePPO policy for a few hundred steps, the saved policy (no pickle) and using it in
`morphc train --policy` / `grow { policy(...) }`."""
from __future__ import annotations

import json
import math
import zipfile

import numpy as np
import pytest
import torch

pytest.importorskip("sb3_contrib")

from gymnasium.utils.env_checker import check_env  # noqa: E402

from morphdsl.cli import main  # noqa: E402
from morphdsl.errors import MorphError  # noqa: E402
from morphdsl.garden.env import GardenEnv, rent  # noqa: E402
from morphdsl.garden.policy import load_policy, save_policy  # noqa: E402
from morphdsl.train import resume, train_spec  # noqa: E402
from morphdsl.train.loop import read_jsonl  # noqa: E402

TINY = """spec tinyhost
d = 16
block B(d) {
  residual {
    ln1: layernorm
    attn: attention(heads = 2)
  }
  residual {
    ln2: layernorm
    mlp: mlp(hidden = 32)
  }
}
model {
  tok: embed(vocab = 96, dim = d)
  pos: pos_embed(ctx = 16)
  blocks: repeat(2) {
    B(d = d)
  }
  ln_f: layernorm
  head: unembed(vocab = 96, tie = tok)
}
data {
  source = "stories"
  tokenizer = "chars"
  max_docs = 100
}
train {
  steps = 60
  batch = 4
  ctx = 16
  lr = 3e-3
  warmup = 2
  eval_every = 10
  eval_batches = 1
  sample_tokens = 0
  threads = 1
}
"""
ENV = dict(budget_steps=40, decide_every=10, hidden=16, eval_batches=1)


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    p = tmp_path_factory.mktemp("host") / "tiny.morph"
    p.write_text(TINY)
    return p


@pytest.fixture(scope="module")
def policy(host, tmp_path_factory):
    from morphdsl.garden.ppo import train_policy

    out = tmp_path_factory.mktemp("pol") / "garden.zip"
    rep = train_policy(host, out, timesteps=64, env_kwargs=ENV,
                       ppo_kwargs={"n_steps": 32, "batch_size": 16, "n_epochs": 2})
    return out, rep


def test_env_passes_the_gymnasium_checker(host):
    env = GardenEnv(host, **ENV)
    check_env(env, skip_render_check=True)
    assert env.action_space.n == 3 + 2 * 2 and env.space.sites == ("blocks.0", "blocks.1")


def test_masks_follow_the_gates_and_rewards_telescope(host):
    from morphdsl.garden import Gates

    env = GardenEnv(host, **ENV, gates=Gates(min_training=20, blend_steps=10, blend_updates=2,
                                             min_holding=10))
    obs, info = env.reset(seed=3)
    sp = env.space
    m = env.action_masks()
    assert m[0] and m[1:sp.advance].all() and not m[sp.advance] and not m[sp.prune]
    first, total = info["val_loss"], 0.0
    obs, r, done, _, info = env.step(1)  # germinate mlp at blocks.0
    total += r
    m = env.action_masks()
    assert not m[1:sp.advance].any() and m[sp.prune]
    assert not m[sp.advance]  # the gate: 10 of min_training = 20 steps spent in training
    assert obs[-7:-3].tolist() == [0.0, 1.0, 0.0, 0.0]  # the live seed's stage: training
    obs, r, done, _, info = env.step(0)
    total += r
    assert env.action_masks()[sp.advance]
    obs, r, done, _, info = env.step(sp.advance)  # -> blending, the ramp runs by itself
    total += r
    while not done:
        obs, r, done, _, info = env.step(0)
        total += r
    added = info["params"] - env.host_params
    assert added > 0 and 0 < rent(info["params"], env.host_params) <= 1.5
    assert info["flops"] >= env.budget and math.isfinite(total)
    # the rewards are the loss gains minus the rent: they sum to first - last - rents
    assert total < first - info["val_loss"] + 1e-9
    assert obs.shape == env.observation_space.shape and env.observation_space.contains(obs)


def test_env_episodes_are_reproducible_from_the_seed(host):
    def episode(env):
        env.reset(seed=5)
        out = []
        for a in (2, 0, 0, 0):
            obs, r, done, _, info = env.step(a if env.action_masks()[a] else 0)
            out.append((r, info["params"], obs.tolist()))
            if done:
                break
        return out

    assert episode(GardenEnv(host, **ENV)) == episode(GardenEnv(host, **ENV))


def test_ppo_trains_saves_without_pickle_and_keeps_entropy(policy):
    out, rep = policy
    assert rep["timesteps"] >= 64 and rep["episodes"] >= 1
    ent = [e["entropy"] for e in rep["entropy"]]
    assert ent and all(0 < e <= math.log(7) + 1e-6 for e in ent)
    with zipfile.ZipFile(out) as z:
        assert sorted(z.namelist()) == ["config.json", "policy.safetensors"]
        cfg = json.loads(z.read("config.json"))
    assert cfg["sites"] == ["blocks.0", "blocks.1"] and cfg["n_actions"] == 7
    assert json.loads(out.with_name(out.name + ".json").read_text())["timesteps"] == rep["timesteps"]


def test_saved_policy_acts_like_the_trained_one(host, tmp_path):
    from sb3_contrib import MaskablePPO

    env = GardenEnv(host, **ENV)
    model = MaskablePPO("MlpPolicy", env, seed=1, device="cpu", policy_kwargs={"net_arch": [8]})
    save_policy(model, env, tmp_path / "p.zip")
    _, net = load_policy(tmp_path / "p.zip")
    obs = torch.as_tensor(np.random.default_rng(0).uniform(-3, 3, (20, env.observation_space.shape[0])),
                          dtype=torch.float32)
    with torch.no_grad():
        a = model.policy.get_distribution(obs).distribution.probs
        b = net.get_distribution(obs).distribution.probs
    assert torch.equal(a, b)


def test_bad_policy_files_are_clear_errors(host, tmp_path):
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("data.pkl", b"\x80\x04K\x01.")
    spec = tmp_path / "s.morph"
    for path, msg in ((bad, "is not a morphdsl policy"), (tmp_path / "none.zip", "no policy file")):
        spec.write_text(TINY + f'grow {{\n  policy("{path}")\n}}\n')
        with pytest.raises(MorphError, match=msg) as e:
            train_spec(spec, tmp_path / "run")
        assert e.value.span.line == TINY.count("\n") + 2


def test_train_with_policy_runs_logs_and_resumes_exactly(host, policy, tmp_path, capsys):
    out, _ = policy
    assert main(["train", str(host), "--policy", str(out), "--out", str(tmp_path / "full"),
                 "--quiet"]) == 0
    ev = read_jsonl(tmp_path / "full/events.jsonl")
    assert all("policy garden.zip" in e["reason"] for e in ev if e["type"] == "growth" and
               e["op"] in ("germinate", "prune", "fossilize"))
    spec = (tmp_path / "full/checkpoints/latest/spec.morph").read_text()
    assert f'policy("{out.resolve()}")' in spec
    assert main(["train", str(host), "--policy", str(out), "--out", str(tmp_path / "cut"),
                 "--stop-at", "25", "--quiet"]) == 0
    resume(tmp_path / "cut")
    a, b = read_jsonl(tmp_path / "full/metrics.jsonl"), read_jsonl(tmp_path / "cut/metrics.jsonl")
    assert [r["loss"] for r in a] == [r["loss"] for r in b]
    assert [(e["step"], e.get("op")) for e in ev] == [
        (e["step"], e.get("op")) for e in read_jsonl(tmp_path / "cut/events.jsonl")]
