"""Tests for morphdsl.train and `morphc train|sample|eval`: runs, resume, checkpoints, growth."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from morphdsl.cli import main
from morphdsl.errors import MorphError
from morphdsl.train import ControlState, GrowthAction, TrainingStopped, resume, train_spec
from morphdsl.train.checkpoint import load_checkpoint
from morphdsl.train.growth import PlateauTrigger
from morphdsl.train.loop import read_jsonl

TINY = """spec tiny
vocab = {vocab}
d = 32
ctx = 32
block Block(d) {{
  residual {{
    ln1: layernorm
    attn: attention(heads = 2)
  }}
  residual {{
    ln2: layernorm
    mlp: mlp(hidden = 64)
  }}
}}
model {{
  tok: embed(vocab = vocab, dim = d)
  pos: pos_embed(ctx = ctx)
  blocks: repeat(1) {{
    Block(d = d)
  }}
  ln_f: layernorm
  head: unembed(vocab = vocab, tie = tok)
}}
data {{
  source = "stories"
  tokenizer = "{tokenizer}"
  max_docs = 200
}}
train {{
  steps = 40
  batch = 8
  ctx = ctx
  lr = 3e-3
  warmup = 5
  eval_every = 10
  eval_batches = 2
  sample_tokens = 20
  threads = 1
}}
grow {{
{grow}
}}
"""
GROW = "  step(20) -> widen_mlp(blocks.*.mlp, by = 32)"


@pytest.fixture(scope="session")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("morph-cache")


@pytest.fixture(autouse=True)
def _env(monkeypatch, cache):
    monkeypatch.setenv("MORPHDSL_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.delenv("MORPHDSL_CKPT_SLEEP", raising=False)
    monkeypatch.delenv("MORPHDSL_INJECT_NAN_AT_STEP", raising=False)


def spec(tmp_path, grow=GROW, vocab=256, tokenizer="bytes", name="tiny.morph") -> str:
    p = tmp_path / name
    p.write_text(TINY.format(grow=grow, vocab=vocab, tokenizer=tokenizer))
    return str(p)


def test_cli_train_writes_run_dir_and_learns(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", spec(tmp_path), "--out", str(run), "--steps", "30"]) == 0
    out = capsys.readouterr().out
    assert "final val loss" in out and "sample:" in out and "grow widen_mlp" in out
    for f in ("metrics.jsonl", "events.jsonl", "loss.png"):
        assert (run / f).stat().st_size > 0
    latest = run / "checkpoints" / "latest"
    for f in ("model.safetensors", "spec.morph", "optimizer.safetensors", "optimizer.json",
              "rng.safetensors", "rng.json", "state.json", "tokenizer.json"):
        assert (latest / f).exists(), f
    rows = read_jsonl(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, 31))
    vals = [r["val_loss"] for r in rows if "val_loss" in r]
    assert rows[-1]["loss"] < rows[0]["loss"] - 1.0 and vals[-1] < vals[0]
    assert "hidden = 96" in (latest / "spec.morph").read_text()  # the grown architecture
    assert main(["eval", str(run), "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["step"] == 30 and abs(ev["val_loss"] - vals[-1]) < 1e-5
    assert main(["sample", str(run), "--prompt", "Once", "--tokens", "12"]) == 0
    assert capsys.readouterr().out.startswith("Once")


def test_resume_equals_uninterrupted_across_growth(tmp_path):
    s = spec(tmp_path)
    full = train_spec(s, tmp_path / "full")
    train_spec(s, tmp_path / "cut", {"stop_at": 25})
    assert load_checkpoint(tmp_path / "cut")["state"]["step"] == 25
    resumed = resume(tmp_path / "cut")
    a, b = read_jsonl(tmp_path / "full/metrics.jsonl"), read_jsonl(tmp_path / "cut/metrics.jsonl")
    assert [r["step"] for r in b] == list(range(1, 41))
    assert [r["loss"] for r in a] == [r["loss"] for r in b]  # exactly
    assert [r.get("val_loss") for r in a] == [r.get("val_loss") for r in b]
    assert resumed["val_loss"] == full["val_loss"] and resumed["growth_events"] == 1


def test_growth_keeps_fixed_batch_loss(tmp_path):
    grow = ("  step(5) -> add_head(blocks.0.attn, n = 1)\n"
            "  step(10) -> widen_mlp(blocks.*.mlp, by = 16), insert_block(blocks, at = 1)\n"
            "  every(15) -> widen_mlp(blocks.0.mlp, by = 8)")
    train_spec(spec(tmp_path, grow), tmp_path / "run", {"steps": 30})
    events = read_jsonl(tmp_path / "run/events.jsonl")
    assert [(e["step"], e["op"]) for e in events] == [
        (5, "add_head"), (10, "widen_mlp"), (10, "insert_block"), (15, "widen_mlp"),
        (30, "widen_mlp")]
    for e in events:
        assert e["params_after"] > e["params_before"]
        assert abs(e["loss_after"] - e["loss_before"]) < 1e-5 and e["max_verify_error"] < 1e-5
    r = load_checkpoint(tmp_path / "run")  # the grown checkpoint reloads from spec.morph
    assert sum(p.numel() for p in r["module"].parameters()) == events[-1]["params_after"]


def test_nonfinite_loss_rolls_back_and_continues(tmp_path):
    out = train_spec(spec(tmp_path), tmp_path / "run", {"inject_nan_at_step": 15})
    ev = [e for e in read_jsonl(tmp_path / "run/events.jsonl") if e["type"] == "rollback"]
    assert len(ev) == 1 and ev[0]["step"] == 15 and ev[0]["resumed_from"] == 10
    assert ev[0]["lr_scale"] == 0.5
    rows = read_jsonl(tmp_path / "run/metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, 41)) and out["step"] == 40
    assert all(r["loss"] == r["loss"] and r["loss"] < 10 for r in rows)


def test_three_nonfinite_losses_stop_with_valid_checkpoint(tmp_path):
    with pytest.raises(TrainingStopped, match="not finite 3 times"):
        train_spec(spec(tmp_path), tmp_path / "run",
                   {"inject_nan_at_step": 15, "inject_nan_times": 3})
    r = load_checkpoint(tmp_path / "run")
    assert r["state"]["step"] == 10
    assert torch.isfinite(r["module"](torch.zeros(1, 8, dtype=torch.long))).all()


def test_rollback_halves_lr_cumulatively(tmp_path):
    import morphdsl
    from morphdsl.train.config import from_sections
    from morphdsl.train.optim import lr_at

    s = spec(tmp_path, "")
    train_spec(s, tmp_path / "run", {"inject_nan_at_step": 15, "inject_nan_times": 2})
    ev = [e for e in read_jsonl(tmp_path / "run/events.jsonl") if e["type"] == "rollback"]
    assert [(e["step"], e["resumed_from"], e["lr_scale"]) for e in ev] == [(15, 10, 0.5),
                                                                          (15, 10, 0.25)]
    rows = read_jsonl(tmp_path / "run/metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, 41))
    cfg = from_sections(morphdsl.build(s).sections)
    scale = [1.0] * 10 + [0.25] * 30  # steps 11.. retried at x0.5, then x0.25 for good
    assert [r["lr"] for r in rows] == pytest.approx([lr_at(i, cfg, scale[i]) for i in range(40)])


def test_rollback_skips_the_batch_that_failed(tmp_path, monkeypatch):
    """A batch whose loss is not finite is not replayed: without skipping it, the same
    batch would come back after the rollback and fail three times."""
    from morphdsl.train.loop import Trainer

    seen, real_loss = {"bad": None, "count": 0}, Trainer._loss

    def poisoned(self, x, y):
        loss = real_loss(self, x, y)
        if not self.model.training:
            return loss
        if self.step + 1 == 15 and seen["bad"] is None:
            seen["bad"] = x.clone()
        if seen["bad"] is not None and torch.equal(x, seen["bad"]):
            seen["count"] += 1
            return loss * float("inf")
        return loss

    monkeypatch.setattr(Trainer, "_loss", poisoned)
    out = train_spec(spec(tmp_path, ""), tmp_path / "run", {"sample_tokens": 0})
    ev = [e for e in read_jsonl(tmp_path / "run/events.jsonl") if e["type"] == "rollback"]
    assert [(e["step"], e["lr_scale"]) for e in ev] == [(15, 0.5)]
    assert seen["count"] == 1 and out["step"] == 40


def test_stop_without_checkpoint_says_so(tmp_path):
    with pytest.raises(TrainingStopped) as e:
        train_spec(spec(tmp_path, ""), tmp_path / "run",
                   {"inject_nan_at_step": 5, "inject_nan_times": 3})
    assert "no checkpoint was written" in e.value.hint and "intact" not in e.value.hint
    assert "x0.125" in e.value.hint  # 0.5, 0.25, 0.125
    assert not (tmp_path / "run/checkpoints/latest").exists()


def test_kill_during_checkpoint_leaves_previous_loadable(tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "MORPHDSL_CKPT_SLEEP": "20:60"}
    cmd = [sys.executable, "-c", "from morphdsl.cli import main; raise SystemExit(main())",
           "train", spec(tmp_path), "--out", str(run), "--quiet"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        while not list(run.glob("checkpoints/.tmp-step-000020-*/model.safetensors")):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.time() < deadline, "checkpoint 20 never started"
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    r = load_checkpoint(run)
    assert r["state"]["step"] == 10
    assert torch.isfinite(r["module"](torch.zeros(1, 8, dtype=torch.long))).all()
    assert list(run.glob("checkpoints/.tmp-step-*"))  # the killed write's temp dir ...
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert not list(run.glob("checkpoints/.tmp-step-*"))  # ... is gone after resuming
    assert load_checkpoint(run)["state"]["step"] == 40


def test_offline_hub_source_is_one_line_error(tmp_path, capsys):
    rc = main(["train", spec(tmp_path), "--data", "roneneldan/TinyStories",
               "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    first = err.splitlines()[0]
    assert first.startswith("error:") and "roneneldan/TinyStories" in first and "offline" in first


def test_unreadable_data_file_is_one_line_error(tmp_path, capsys):
    (tmp_path / "x.bin").write_bytes(bytes(range(256)))
    rc = main(["train", spec(tmp_path), "--data", str(tmp_path / "x.bin"),
               "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err and not (tmp_path / "run").exists()
    assert "x.bin' is of a type that cannot be read (.bin)" in err.splitlines()[0]
    assert ".txt" in err and ".jsonl" in err and ".parquet" in err
    assert main(["train", spec(tmp_path), "--flops", "inf"]) == 2
    assert "--flops must be positive and finite" in capsys.readouterr().err


def test_spec_errors_point_at_the_rule(tmp_path, capsys):
    bad = spec(tmp_path, "  sometimes(3) -> widen_mlp(blocks.*.mlp, by = 8)", name="bad.morph")
    assert main(["train", bad, "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "bad.morph:41:3: error: unknown growth trigger 'sometimes'" in err and "plateau" in err
    bad = spec(tmp_path, "  step(3) -> grow_wings(blocks)", name="bad2.morph")
    with pytest.raises(MorphError, match="unknown growth rewrite 'grow_wings'"):
        train_spec(bad, tmp_path / "run")
    small = spec(tmp_path, "", vocab=16, tokenizer="chars", name="small.morph")
    with pytest.raises(MorphError, match="model's unembed vocab is 16") as e:
        train_spec(small, tmp_path / "run")
    assert "vocab" in e.value.hint


def test_plateau_trigger_patience_cooldown_budget():
    t = PlateauTrigger(patience=2, min_delta=0.01, cooldown=50, max_params=1000)

    def ev(step, val, params=100, last=0):
        return t.fires(ControlState(step, "eval", params, 0, val_loss=val, last_growth_step=last))

    assert [ev(10, 3.0), ev(20, 2.0), ev(30, 1.995), ev(40, 1.99)] == [False, False, False, True]
    assert [ev(50, 1.99), ev(60, 1.99, last=40)] == [False, False]  # cooldown after growth
    assert ev(100, 1.99, last=40)
    assert not ev(110, 1.99) and not ev(120, 1.99, params=5000)  # over the parameter budget
    assert not t.fires(ControlState(130, "step", 100, 0))


def test_custom_controller_plugs_in(tmp_path):
    class GrowOnce:
        def __init__(self):
            self.done = False

        def decide(self, state):
            if state.event == "step" and state.step == 7 and not self.done:
                self.done = True
                return [GrowthAction("widen_mlp", ["blocks.0.mlp"], {"by": 4}, reason="custom")]
            return []

        def state_dict(self):
            return {"done": self.done}

        def load_state_dict(self, d):
            self.done = d["done"]

    train_spec(spec(tmp_path, ""), tmp_path / "run", {"steps": 12}, controllers=[GrowOnce()])
    (e,) = read_jsonl(tmp_path / "run/events.jsonl")
    assert (e["step"], e["reason"], e["params_after"] - e["params_before"]) == (7, "custom", 4 * 65)


def test_live_progress_on_a_terminal(tmp_path):
    import io

    from rich.console import Console

    from morphdsl.train.progress import Reporter

    buf = io.StringIO()
    rep = Reporter(console=Console(file=buf, force_terminal=True, width=120), live=True)
    train_spec(spec(tmp_path, "  step(4) -> widen_mlp(blocks.0.mlp, by = 4)"), tmp_path / "run",
               {"steps": 8, "sample_tokens": 0}, reporter=rep)
    text = buf.getvalue()
    assert "tok/s" in text and "grow widen_mlp" in text and "training summary" in text
