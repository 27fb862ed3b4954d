"""The training engine's options, measured as ratios within one run:

    python -m benchmarks.train_engine compile [--spec specs/gpt_tiny.morph] [--steps 30]
    python -m benchmarks.train_engine ddp [--spec specs/gpt_tiny.morph] [--steps 30]

`compile`: `train { compile = true }` (torch.compile, inductor) against eager, same spec, data
and seed: steady-state ms per step (median over the steps after the first few, and after a
growth), the first step's cost (the compile), and the first step after a growth (recompile).
`ddp`: tokens/s of `torchrun --nproc_per_node 2` (gloo, 1 thread per rank) against one process
with 1 thread and with 2 threads, same global batch; tok/s as the engine logs it (time in
training steps). On a 2-core CPU machine this shows the overhead of DDP, not a speed-up.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from morphdsl.train import Callback, train_spec


class StepTimes(Callback):
    def __init__(self):
        self.t, self.times, self.grew = None, [], []

    def on_train_start(self, engine):
        self.t = time.perf_counter()

    def on_step(self, engine, row):
        now = time.perf_counter()
        self.times.append(now - self.t)
        self.t = now

    def on_growth(self, engine, event):
        self.grew.append(event["step"])

    def on_step_end(self, engine, row):
        self.t = time.perf_counter()  # growth, evaluation and checkpoints are not in a step


def compile_bench(spec: str, steps: int, threads: int, grow_at: int) -> dict:
    out = {}
    for mode in ("eager", "compile"):
        cb = StepTimes()
        over = {"steps": steps, "eval_every": 10 * steps, "checkpoint_every": 10 * steps,
                "threads": threads, "sample_tokens": 0, "compile": mode == "compile"}
        with tempfile.TemporaryDirectory() as d:
            text = Path(spec).read_text()
            if "grow {" not in text:
                text += f"\ngrow {{\n  step({grow_at}) -> widen_mlp(blocks.*.mlp, by = 64)\n}}\n"
            p = Path(d) / "spec.morph"
            p.write_text(text)
            train_spec(str(p), Path(d) / "run", over, callbacks=[cb])
        t = cb.times
        g = cb.grew[0] if cb.grew else steps  # step g is the last before the growth
        out[mode] = {"first": t[0], "steady": statistics.median(t[3:g]),
                     "after_growth_first": t[g] if g < steps else None,
                     "after_growth_steady": statistics.median(t[g + 3:]) if g + 3 < steps else None}
    e, c = out["eager"], out["compile"]
    return {"spec": spec, "eager ms/step": 1e3 * e["steady"], "compiled ms/step": 1e3 * c["steady"],
            "speed-up": e["steady"] / c["steady"],
            "compile (1st step) s": c["first"], "recompile after growth s": c["after_growth_first"],
            "speed-up after growth": (e["after_growth_steady"] / c["after_growth_steady"]
                                      if c["after_growth_steady"] else None)}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tok_s(run: Path) -> float:
    rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    return rows[-1]["tok_s"]


def _with_threads(text: str, threads: int) -> str:
    """The spec with `threads = N` in its train section."""
    if re.search(r"^\s*threads\s*=", text, re.M):
        return re.sub(r"^(\s*)threads\s*=.*$", rf"\g<1>threads = {threads}", text, flags=re.M)
    return text.replace("train {", f"train {{\n  threads = {threads}", 1)


def ddp_bench(spec: str, steps: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = {}
    with tempfile.TemporaryDirectory() as d:
        for name, threads, nproc in (("1 process, 1 thread", 1, 1),
                                     ("1 process, 2 threads", 2, 1),
                                     ("2 ranks x 1 thread (DDP, gloo)", 1, 2)):
            run = Path(d) / name.replace(" ", "_").replace(",", "")
            p = Path(d) / f"spec{threads}.morph"
            p.write_text(_with_threads(Path(spec).read_text(), threads))
            args = ["-m", "morphdsl", "train", str(p), "--out", str(run), "--steps", str(steps),
                    "--quiet", "--force"]
            pre = ([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
                    "--master_port", str(_port())] if nproc > 1 else [sys.executable])
            subprocess.run(pre + args, env=env, check=True, capture_output=True)
            res[name] = _tok_s(run)
    base = res["1 process, 1 thread"]
    return {k: (v, v / base) for k, v in res.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["compile", "ddp"])
    ap.add_argument("--spec", default="specs/gpt_tiny.morph")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    print(f"{time.strftime('%Y-%m-%d')}, {a.what}, {a.spec}, {a.steps} steps")
    if a.what == "compile":
        r = compile_bench(a.spec, a.steps, a.threads, grow_at=a.steps // 2)
        for k, v in r.items():
            print(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}")
    else:
        for k, (v, ratio) in ddp_bench(a.spec, a.steps).items():
            print(f"| {k} | {v:,.0f} tok/s | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
