"""Devices and precision (bf16/fp16 autocast on the CPU), torch.compile (recompiled after
growth) and TensorBoard logging."""
from __future__ import annotations

import math

import pytest
import torch

from morphdsl.cli import main
from morphdsl.train import Callback, resume, train_spec
from morphdsl.train.checkpoint import load_checkpoint
from morphdsl.train.devices import Precision, resolve_device
from morphdsl.train.loop import read_jsonl
from tests.test_engine import metrics
from tests.test_train import _env, cache, spec  # noqa: F401

FAST = {"sample_tokens": 0}
GROW = "  step(4) -> widen_mlp(blocks.*.mlp, by = 8)"


def test_auto_is_cpu_here_and_float32_adds_no_autocast():
    dev = resolve_device("auto")
    assert dev.type == ("cuda" if torch.cuda.is_available() else "cpu")
    p = Precision(torch.device("cpu"), "fp32")
    assert (p.name, p.enabled, p.scaler) == ("float32", False, None)
    assert Precision(torch.device("cpu"), "bf16").autocast().fast_dtype == torch.bfloat16


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_autocast_on_cpu_trains_grows_and_checkpoints_load_on_cpu(tmp_path, dtype):
    run = tmp_path / "run"
    out = train_spec(spec(tmp_path, GROW), run, {"steps": 8, "dtype": dtype, **FAST})
    rows = read_jsonl(run / "metrics.jsonl")
    assert len(rows) == 8 and all(math.isfinite(r["loss"]) for r in rows)
    assert rows[-1]["loss"] < rows[0]["loss"] and out["growth_events"] == 1
    (e,) = read_jsonl(run / "events.jsonl")
    assert e["max_verify_error"] < 0.1  # the identity check runs in the training precision
    r = load_checkpoint(run, training=True)
    assert r["state"]["config"]["dtype"] == dtype
    assert all(t.dtype == torch.float32 and t.device.type == "cpu"
               for t in r["module"].state_dict().values())  # master weights stay float32
    assert torch.isfinite(r["module"](torch.zeros(1, 8, dtype=torch.long))).all()
    if dtype == "float16":  # the GradScaler's state travels in the checkpoint
        assert r["state"]["grad_scaler"]["scale"] > 0
    assert main(["train", "--resume", str(run), "--steps", "10", "--device", "cpu",
                 "--dtype", "float32", "--quiet"]) == 0  # resumes in another precision
    assert len(read_jsonl(run / "metrics.jsonl")) == 10


class NetSeen(Callback):
    def __init__(self):
        self.nets = []

    def on_step(self, engine, row):
        self.nets.append((row["step"], id(engine.net), type(engine.net).__name__))


def test_compile_runs_the_model_under_torch_compile_and_recompiles_after_growth(tmp_path):
    seen = NetSeen()
    s = spec(tmp_path, GROW)
    over = {"steps": 8, "compile": True, "compile_backend": "eager", **FAST}
    train_spec(s, tmp_path / "compiled", over, callbacks=[seen])
    train_spec(s, tmp_path / "plain", {"steps": 8, **FAST})
    assert {name for _, _, name in seen.nets} == {"OptimizedModule"}
    ids = [i for _, i, _ in seen.nets]
    assert len(set(ids[:4])) == 1 and len(set(ids[4:])) == 1 and ids[3] != ids[4]  # new after step 4
    a, b = metrics(tmp_path / "compiled"), metrics(tmp_path / "plain")
    assert [r["params"] for r in a] == [r["params"] for r in b]
    assert max(abs(x["loss"] - y["loss"]) for x, y in zip(a, b)) < 1e-5
    resume(tmp_path / "compiled", {"steps": 10})  # a compiled run resumes (and compiles again)
    assert len(read_jsonl(tmp_path / "compiled/metrics.jsonl")) == 10


def test_tensorboard_events_hold_loss_lr_params_flops_and_growth(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    assert main(["train", spec(tmp_path, GROW), "--out", str(run), "--steps", "10",
                 "--tensorboard", "--quiet"]) == 0
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    tags = acc.Tags()
    for tag in ("train/loss", "train/lr", "train/flops", "model/params", "val/loss",
                "model/param_norm", "growth/params"):
        assert tag in tags["scalars"], tag
    rows = read_jsonl(run / "metrics.jsonl")
    loss = acc.Scalars("train/loss")
    assert [e.step for e in loss] == list(range(1, 11))
    assert [e.value for e in loss] == pytest.approx([r["loss"] for r in rows], rel=1e-6)
    assert [e.value for e in acc.Scalars("train/lr")] == pytest.approx([r["lr"] for r in rows])
    params = acc.Scalars("model/params")
    assert params[3].value < params[4].value == rows[4]["params"]
    (g,) = acc.Scalars("growth/params")
    assert (g.step, g.value) == (4, rows[4]["params"])
    assert "growth" in tags["tensors"] or "growth/text_summary" in tags["tensors"]
