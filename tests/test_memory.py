"""Memory estimates from the graph (ir/memory.py), and train/grow/resume refusing a run that
does not fit before allocating anything; check and show print the estimate."""
from __future__ import annotations

import json
import resource
import time
from pathlib import Path

import pytest

import morphdsl
from morphdsl.cli import main
from morphdsl.ir import memory
from morphdsl.ir.memory import (MemoryLimitError, available_memory, ensure_fits, train_memory,
                                train_shape)
from morphdsl.train import TrainingStopped, train_spec
from tests.test_train import _env, cache, spec  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
GPT_TINY = ROOT / "specs" / "gpt_tiny.morph"


@pytest.fixture
def huge(tmp_path) -> str:
    """gpt_tiny with d = 30000: 21.6 billion parameters, about 800 GiB to train."""
    text = GPT_TINY.read_text()
    assert "d      = 64" in text
    p = tmp_path / "huge.morph"
    p.write_text(text.replace("d      = 64", "d      = 30000"))
    return str(p)


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_estimate_counts_weights_grads_adamw_and_activations():
    g = morphdsl.build(str(GPT_TINY))
    n = g.n_params()
    e = train_memory(g, 16, 128)
    assert e.params == n and e.grads == 4 * n and e.optimizer == 8 * n
    assert e.weights >= 4 * n and e.snapshot == e.weights + 8 * n
    a1, a2 = train_memory(g, 8, 128).activations, train_memory(g, 8, 256).activations
    assert e.activations == 2 * a1  # linear in the batch
    assert 2 * a1 < a2 < 4 * a1  # attention's scores grow with ctx^2, the rest linearly
    assert e.total == e.weights + e.grads + e.optimizer + e.snapshot + max(e.activations,
                                                                         e.checkpoint)
    assert train_shape(g) == (16, 128)


def test_available_memory_is_read_from_the_machine():
    avail, source = available_memory()
    assert avail is not None and avail > 2**26 and source
    ensure_fits(2**20, "a small run")  # fits: no error
    with pytest.raises(MemoryLimitError, match="needs about .* GiB, but only"):
        ensure_fits(avail * 4, "a huge run")
    ensure_fits(avail * 4, "a huge run", force=True)


def test_check_and_show_print_the_estimate(huge, capsys):
    assert main(["check", str(GPT_TINY), huge]) == 0
    out = capsys.readouterr().out
    assert "gpt_tiny.morph: ok (124672 params, ~36.9 MiB to train at batch 16 x 128)" in out
    assert "huge.morph: ok (21612360000 params, ~805.1 GiB to train at batch 16 x 128)" in out
    assert main(["show", str(GPT_TINY)]) == 0
    assert "memory to train at batch 16 x 128: ~36.9 MiB (weights" in capsys.readouterr().out
    assert main(["show", str(GPT_TINY), "--json"]) == 0
    mem = json.loads(capsys.readouterr().out)["memory"]
    g = morphdsl.build(str(GPT_TINY))
    assert mem["total_bytes"] == train_memory(g, 16, 128).total and mem["ctx"] == 128


def test_train_refuses_a_model_that_cannot_fit_without_allocating(huge, tmp_path, capsys):
    before, t0 = rss_mib(), time.time()
    rc = main(["train", huge, "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 1 and time.time() - t0 < 10 and rss_mib() - before < 500
    first, hint = err.splitlines()[0], err.splitlines()[-1]
    assert "needs about 805.1 GiB" in first and "GiB is available" in first and "AdamW" in first
    assert "--force-memory" in hint and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # nothing written either


def test_grow_refuses_a_growth_that_cannot_fit(huge, tmp_path, capsys):
    rc = main(["grow", huge, "--op", "add_head(blocks.0.attn)"])
    err = capsys.readouterr().err
    assert rc == 1 and "loading" in err and "GiB" in err and "--force" in err
    rc = main(["grow", str(GPT_TINY), "--op", "widen_embed(factor = 400)"])
    err = capsys.readouterr().err
    assert rc == 1 and "growing by widen_embed(factor = 400)" in err and "5,279,437,312" in err
    out = tmp_path / "g.morph"
    assert main(["grow", str(GPT_TINY), "--op", "widen_embed(factor = 2)", "-o", str(out)]) == 0
    assert morphdsl.build(out).param_shapes()["tok.weight"] == (256, 128)  # written `dim = d + 64`


def test_normal_spec_trains_and_growth_past_memory_stops_the_run(tmp_path, monkeypatch):
    s = spec(tmp_path, "  step(5) -> widen_embed(factor = 4)")
    g = morphdsl.build(s)
    small = train_memory(g, 8, 32).total
    assert small < available_memory()[0]  # fits: trains
    monkeypatch.setattr(memory, "available_memory", lambda device="cpu": (2 * small, "test"))
    with pytest.raises(TrainingStopped) as e:
        train_spec(s, tmp_path / "run", {"steps": 8, "sample_tokens": 0})
    assert "growing by widen_embed(factor=4) at step 5" in e.value.message
    assert "--force-memory" in e.value.hint and e.value.span.line == 41
    out = train_spec(s, tmp_path / "forced", {"steps": 8, "sample_tokens": 0},
                     force_memory=True)
    assert out["step"] == 8


def test_resume_checks_memory_first(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    train_spec(spec(tmp_path, ""), run, {"steps": 10, "sample_tokens": 0})
    monkeypatch.setattr(memory, "available_memory", lambda device="cpu": (2**20, "test"))
    assert main(["train", "--resume", str(run), "--steps", "12", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "resuming" in err and "needs about" in err and "--force-memory" in err
    assert main(["train", "--resume", str(run), "--steps", "12", "--quiet",
                 "--force-memory"]) == 0
