"""Data-parallel training on the CPU (gloo, 2 processes): 2 ranks x batch B equal 1 process x
batch 2B (to 1e-5) over 20 steps with growth; a 2-rank run resumes on 1 process; a rank that
dies makes the other stop with a clear error and the checkpoint intact."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

from morphdsl.train import resume, train_spec
from morphdsl.train.checkpoint import load_checkpoint
from morphdsl.train.loop import read_jsonl
from tests.test_train import _env, cache, spec  # noqa: F401

pytestmark = pytest.mark.skipif(not torch.distributed.is_available()
                                or not torch.distributed.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")
GROW = ("  step(6) -> widen_mlp(blocks.*.mlp, by = 16)\n"
        "  step(15) -> add_head(blocks.0.attn, n = 1)")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env_vars(**extra) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MORPHDSL_DIST_TIMEOUT": "20", **extra}
    env["PYTHONPATH"] = os.pathsep.join([os.getcwd(), env.get("PYTHONPATH", "")])
    return env


def _morphc(*args) -> list[str]:
    return ["-m", "morphdsl", "train", *args, "--quiet"]


def test_two_ranks_equal_one_process_and_resume_on_one(tmp_path):
    s = spec(tmp_path, GROW)
    over = ["--steps", "20"]
    two = tmp_path / "two"
    cmd = TORCHRUN + ["--nproc_per_node", "2", "--master_port", str(_port())] + _morphc(
        s, "--out", str(two), *over)
    p = subprocess.run(cmd, env=_env_vars(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    one = train_spec(s, tmp_path / "one", {"steps": 20, "sample_tokens": 0})
    a, b = read_jsonl(tmp_path / "one/metrics.jsonl"), read_jsonl(two / "metrics.jsonl")
    assert [r["step"] for r in b] == list(range(1, 21))
    assert max(abs(x["loss"] - y["loss"]) for x, y in zip(a, b)) < 1e-5
    assert [r["params"] for r in a] == [r["params"] for r in b]
    assert [r["tokens"] for r in a] == [r["tokens"] for r in b]  # the global batch
    va = [r["val_loss"] for r in a if "val_loss" in r]
    vb = [r["val_loss"] for r in b if "val_loss" in r]
    assert len(va) == len(vb) == 2 and max(abs(x - y) for x, y in zip(va, vb)) < 1e-5
    ga, gb = read_jsonl(tmp_path / "one/events.jsonl"), read_jsonl(two / "events.jsonl")
    assert [(e["step"], e["op"], e["params_after"]) for e in ga] == \
        [(e["step"], e["op"], e["params_after"]) for e in gb] and len(ga) == 2
    assert all(e["max_verify_error"] < 1e-5 for e in gb)
    # the 2-rank run's checkpoint at step 10 continues on 1 process with the same losses
    cut = tmp_path / "cut"
    shutil.copytree(two, cut, symlinks=True)
    ck = load_checkpoint(cut, training=True)
    older = [d for d in (cut / "checkpoints").glob("step-*") if d.name == "step-000010"]
    assert ck["state"]["step"] == 20 and older
    resume(older[0])
    c = read_jsonl(cut / "metrics.jsonl")
    assert [r["step"] for r in c] == list(range(1, 21))
    assert max(abs(x["loss"] - y["loss"]) for x, y in zip(a, c)) < 1e-5
    assert c[:10] == b[:10]  # the rows before the checkpoint are kept as they were


def test_a_dead_rank_stops_the_other_with_the_checkpoint_intact(tmp_path):
    s = spec(tmp_path, "")
    run, port = tmp_path / "run", _port()
    procs = []
    for rank in (0, 1):
        env = _env_vars(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank),
                        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        procs.append(subprocess.Popen([sys.executable] + _morphc(s, "--out", str(run),
                                                                 "--steps", "100000"),
                                      env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True))
    try:
        deadline = time.time() + 90
        while not (run / "checkpoints" / "latest").exists():
            assert all(p.poll() is None for p in procs), procs[0].stderr.read()[-2000:]
            assert time.time() < deadline, "no checkpoint was written"
            time.sleep(0.2)
        procs[1].send_signal(signal.SIGKILL)
        rc = procs[0].wait(timeout=60)
        err = procs[0].stderr.read()
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert rc == 1 and "Traceback" not in err, err[-2000:]
    assert "error: process 0 of 2 lost contact with the others" in err
    assert "training stopped" in err and "is intact" in err and "--resume" in err
    r = load_checkpoint(run, training=True)
    assert r["state"]["step"] % 10 == 0 and r["state"]["step"] > 0
    assert torch.isfinite(r["module"](torch.zeros(1, 8, dtype=torch.long))).all()
