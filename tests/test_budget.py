"""FLOPs from the graph, FLOPs budgets, progress/staged-plateau triggers, LR re-warm, and
widen_embed's optimizer-state transfer: the machinery of the growth benchmark."""
from __future__ import annotations

import pytest
import torch

import morphdsl
from morphdsl.ir.cost import forward_flops, train_flops
from morphdsl.rewrites import grow, grow_model
from morphdsl.train import ControlState, train_spec
from morphdsl.train.config import TrainConfig, from_sections
from morphdsl.train.growth import ProgressTrigger, RuleController
from morphdsl.train.loop import read_jsonl
from morphdsl.train.optim import lr_at
from tests.test_train import _env, cache  # noqa: F401


def test_forward_flops_match_nanogpt_accounting():
    g = morphdsl.build("specs/bench/static.morph")
    C, L, T, V = 128, 4, 128, 96
    block = 2 * (12 * C * C + 9 * C) + 4 * T * C + 2 * 5 * C  # weights + biases, attention, norms
    expect = L * block + 5 * C + 2 * V * C  # final norm, tied unembed matmul
    assert abs(forward_flops(g, T) - expect) / expect < 1e-3
    assert train_flops(g, 16, T) == 3 * forward_flops(g, T) * 16 * T


def test_flops_follow_growth():
    g = morphdsl.build("specs/bench/grow_progress.morph")
    f0 = forward_flops(g, 128)
    g1 = grow(g, "widen_embed", factor=2).graph
    g2 = grow(g1, "insert_block", target="blocks", at=1).graph
    f1, f2 = forward_flops(g1, 128), forward_flops(g2, 128)
    assert f0 < f1 < f2
    per_block = (f1 - forward_flops(g1, 0)) / 2  # ctx part of one attention in g1
    assert per_block == 4 * 128 * 128


def test_progress_trigger_fires_once_at_fraction():
    t = ProgressTrigger(0.25)
    fired = [t.fires(ControlState(s, "step", 0, 0, progress=s / 40)) for s in range(1, 41)]
    assert fired.index(True) == 9 and sum(fired) == 1
    with pytest.raises(ValueError):
        ProgressTrigger(1.5)


def test_staged_plateau_rules_fire_one_stage_per_plateau():
    rule = lambda n: {"trigger": {"name": "plateau", "kwargs": {  # noqa: E731
        "patience": 1, "min_delta": 0.01, "cooldown": 20, "times": 1}},
        "actions": [{"name": f"stage{n}", "args": [], "kwargs": {}}]}
    c = RuleController([rule(1), rule(2)])
    fired, last = [], 0
    for step, val in [(10, 2.0), (20, 2.0), (30, 2.0), (40, 2.0), (50, 1.0), (60, 1.0),
                      (70, 1.0), (80, 1.0)]:
        acts = c.decide(ControlState(step, "eval", 0, 0, val_loss=val, last_growth_step=last))
        if acts:
            last = step
        fired += [(step, a.op) for a in acts]
    # stage 1 at the first plateau; stage 2 (also ready) waits for the cooldown; never again
    assert fired == [(20, "stage1"), (40, "stage2")]


def test_lr_follows_flops_budget_and_rewarms():
    cfg = TrainConfig(steps=100, lr=1.0, min_lr=0.0, warmup=0)
    assert lr_at(10, cfg, progress=0.5) == pytest.approx(0.5)
    assert lr_at(10, cfg) == pytest.approx(0.5 * (1 + torch.cos(torch.tensor(0.1 * torch.pi))).item())


def test_flops_budget_run_stops_at_budget_and_logs_flops(tmp_path):
    from tests.test_train import spec as mk

    p = mk(tmp_path, "  progress(0.3) -> widen_mlp(blocks.*.mlp, by = 32)")
    g = morphdsl.build(p)
    per = train_flops(g, 8, 32)
    s = train_spec(p, tmp_path / "run", {"flops": 30 * per, "steps": 10**6, "rewarm": 5,
                                          "sample_tokens": 0})
    rows = read_jsonl(tmp_path / "run/metrics.jsonl")
    (e,) = read_jsonl(tmp_path / "run/events.jsonl")
    assert e["flops"] >= 0.3 * 30 * per and e["flops"] - per < 0.3 * 30 * per
    assert s["flops"] >= 30 * per and s["flops"] == rows[-1]["flops"]
    assert "val_loss" in rows[-1] and s["step"] < 30  # grown steps cost more: fewer of them
    assert all(b["flops"] > a["flops"] for a, b in zip(rows, rows[1:]))
    k, budget = e["step"], 30 * per  # re-warm over 5 steps from 0: x 1/5, 2/5, ..., 1
    cfg = from_sections(g.sections, {"flops": budget})
    for i in range(6):
        sched = lr_at(k + i, cfg, progress=rows[k + i - 1]["flops"] / budget)
        assert rows[k + i]["lr"] == pytest.approx(sched * min(1.0, (i + 1) / 5))


def test_widen_embed_carries_adam_moments():
    torch.manual_seed(0)
    m = morphdsl.compile(morphdsl.build("specs/gpt_tiny.morph"))
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    x = torch.randint(0, 256, (2, 16))
    for _ in range(3):
        loss = torch.nn.functional.cross_entropy(m(x).flatten(0, 1), x.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    g = grow_model(m, "widen_embed", optimizer=opt, verify=True, factor=2)
    new = dict(g.module.named_parameters())
    st = g.optimizer.state[new["tok.weight"]]
    old = opt.state[dict(m.named_parameters())["tok.weight"]]
    assert int(st["step"]) == 3
    assert torch.equal(st["exp_avg_sq"], torch.cat([old["exp_avg_sq"]] * 2, dim=1))
    q = g.optimizer.state[new["blocks.0.attn.qkv.weight"]]["exp_avg"]
    assert q.shape == new["blocks.0.attn.qkv.weight"].shape and q.abs().sum() > 0


def test_lr_scales_with_width_after_widen_embed(tmp_path):
    """The default LR rule is muP-style: the spec's lr is for the starting width, so doubling the
    width halves the LR (lr_width = 0 turns it off)."""
    from tests.test_train import spec as mk

    p = mk(tmp_path, "  step(10) -> widen_embed(factor = 2, noise = 0.01)")
    for lw, ratio in ((None, 0.5), (0, 1.0)):
        run = tmp_path / f"run{lw}"
        train_spec(p, run, {"steps": 14, "sample_tokens": 0, "lr_width": lw, "warmup": 0,
                            "min_lr": 3e-3})  # flat schedule: only the width rule moves lr
        rows = read_jsonl(run / "metrics.jsonl")
        assert rows[9]["lr"] == pytest.approx(3e-3) and rows[10]["lr"] == pytest.approx(3e-3 * ratio)


def test_bad_settings_point_at_their_line(tmp_path, capsys):
    """Bad train/data values and unknown keys are reported at FILE:LINE:COL with the source."""
    from morphdsl.cli import main
    from tests.test_train import spec as mk

    text = open(mk(tmp_path, "")).read()
    for old, new, msg in [("  warmup = 5\n", "  warmup = 5\n  lr_width = -4\n", "'lr_width' must be >= 0"),
                          ("  warmup = 5\n", "  warmup = 5\n  rewarm_fom = 2\n", "did you mean 'rewarm_from'"),
                          ("  warmup = 5\n", "  warmup = 5\n  flops = -1\n", "'flops' must be positive"),
                          ("  lr = 3e-3\n  warmup = 5\n", "  warmup = 5\n  lr = 1e300\n", "'lr' must be in (0, 10]"),
                          ("  warmup = 5\n", "  warmup = 5\n  seed = 1e30\n", "'seed' must be in"),
                          ("  sample_tokens = 20\n  threads = 1\n", "  sample_tokens = 20\n  threads = 100000\n",
                           "'threads' must be at most"),
                          ("  warmup = 5\n", "  warmup = 5\n  min_lr = 1\n", "'min_lr' must be in [0, lr = 0.003]"),
                          ("  warmup = 5\n", "  warmup = 5\n  weight_decay = 1000\n", "'weight_decay' x lr")]:
        p = tmp_path / "bad.morph"
        p.write_text(text.replace(old, new))
        line = text.replace(old, new).splitlines().index(new.splitlines()[1].rstrip()) + 1
        assert main(["train", str(p), "--out", str(tmp_path / "r")]) == 1
        err = capsys.readouterr().err
        assert f"bad.morph:{line}:3: error" in err and msg in err and "Traceback" not in err


def test_bad_progress_trigger_and_cli_flops(tmp_path, capsys):
    from morphdsl.cli import main
    from tests.test_train import spec as mk

    p = mk(tmp_path, "  progress(1.5) -> widen_mlp(blocks.*.mlp, by = 32)")
    assert main(["train", p, "--out", str(tmp_path / "r")]) != 0
    err = capsys.readouterr().err
    assert "tiny.morph:" in err and "0 < F < 1" in err and "Traceback" not in err
    assert main(["train", mk(tmp_path, ""), "--flops", "-1"]) != 0
    assert "--flops must be positive" in capsys.readouterr().err
    g = morphdsl.build(mk(tmp_path, ""))
    budget = 12 * train_flops(g, 8, 32)
    assert main(["train", mk(tmp_path, ""), "--flops", str(budget), "--quiet",
                 "--out", str(tmp_path / "b")]) == 0
    rows = read_jsonl(tmp_path / "b/metrics.jsonl")
    assert rows[-1]["step"] == 12 and rows[-1]["flops"] == budget


def test_flops_trigger_fires_once_at_its_compute(tmp_path, capsys):
    """flops(N) fires at the first step whose FLOPs reach N, whatever the budget, and once."""
    from morphdsl.cli import main
    from tests.test_train import spec as mk

    g = morphdsl.build(mk(tmp_path, ""))
    per = train_flops(g, 8, 32)
    at = 7.5 * per
    for budget in (20, 40):
        p = mk(tmp_path, f"  flops({at}) -> widen_mlp(blocks.*.mlp, by = 32)")
        run = tmp_path / f"run{budget}"
        train_spec(p, run, {"flops": budget * per, "steps": 10**6, "sample_tokens": 0})
        (e,) = read_jsonl(run / "events.jsonl")
        assert e["step"] == 8 and at <= e["flops"] < at + per  # step 8 is the first past 7.5
    p = mk(tmp_path, "  flops(0) -> widen_mlp(blocks.*.mlp, by = 32)")
    assert main(["train", p, "--out", str(tmp_path / "r")]) != 0
    err = capsys.readouterr().err
    assert "tiny.morph:" in err and "flops(N) needs N > 0" in err and "Traceback" not in err
