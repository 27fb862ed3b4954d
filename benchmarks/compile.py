"""Compile time and forward+backward time of compiled specs vs a hand-written nanoGPT.

    python -m benchmarks.compile [--device cpu|cuda] [--repeats 30] [--threads N]

1. check: `morphdsl.build(path)` (parse, elaborate, lower, static checks) and check+compile:
   `morphdsl.compile(path)` (the same, then fx codegen and weight allocation/init) for
   specs/gpt_host.morph and a generated 48-layer host; median of N runs.
2. forward+backward of the compiled gpt_host vs tests/reference_gpt.GPT holding the same
   weights, batch 8 x 128 tokens, cross-entropy loss, float32. The two models alternate
   (ABAB...) after a warm-up, so drift in machine load hits both; medians are reported with
   ratio = reference_time / morph_time (>= 1 means the compiled module is as fast), both as
   the ratio of the medians and as the median of the per-pair ratios (robust to load drift).
"""
from __future__ import annotations

import argparse
import platform
import re
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import morphdsl
from tests.reference_gpt import GPTConfig, from_morph

ROOT = Path(__file__).resolve().parents[1]
HOST = ROOT / "specs" / "gpt_host.morph"


def deep_host(layers: int) -> str:
    """gpt_host with `layers` blocks (the spec text, edited)."""
    text = HOST.read_text()
    return re.sub(r"^layers\s*=\s*\d+", f"layers = {layers}", text, count=1, flags=re.M)


def time_compile(path: str, n: int) -> tuple[float, float]:
    """Medians of (check only: parse + elaborate + lower + static checks, full compile)."""
    checks, full = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        morphdsl.build(path)
        t1 = time.perf_counter()
        morphdsl.compile(path)
        full.append(time.perf_counter() - t1)
        checks.append(t1 - t0)
    return statistics.median(checks), statistics.median(full)


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def fwd_bwd(model, idx, tgt, device) -> tuple[float, float]:
    """(wall seconds, this thread's CPU seconds) of one forward + backward."""
    _sync(device)
    t0, c0 = time.perf_counter(), time.thread_time()
    logits = model(idx)  # (B, T, vocab)
    loss = F.cross_entropy(logits.flatten(0, 1), tgt.flatten())
    loss.backward()
    _sync(device)
    dt, dc = time.perf_counter() - t0, time.thread_time() - c0
    model.zero_grad(set_to_none=True)
    return dt, dc


def time_fwd_bwd(device: str, repeats: int, B=8, T=128, warmup=5) -> dict:
    torch.manual_seed(0)
    ours = morphdsl.compile(str(HOST)).to(device)
    ref = from_morph(ours, GPTConfig(256, 256, 4, 4, 256)).to(device)
    idx = torch.randint(0, 256, (B, T), device=device)
    tgt = torch.randint(0, 256, (B, T), device=device)
    with torch.no_grad():
        assert torch.allclose(ours(idx), ref(idx), atol=1e-4)
    for _ in range(warmup):
        fwd_bwd(ours, idx, tgt, device), fwd_bwd(ref, idx, tgt, device)
    t = {"ours": [], "ref": []}
    for i in range(repeats):  # interleaved, alternating which goes first
        order = ["ours", "ref"] if i % 2 == 0 else ["ref", "ours"]
        for name in order:
            t[name].append(fwd_bwd(ours if name == "ours" else ref, idx, tgt, device))
    out = {}
    for j, clock in enumerate(("wall", "cpu")):
        o = [x[j] for x in t["ours"]]
        r = [x[j] for x in t["ref"]]
        out[clock] = (statistics.median(o), statistics.median(r),
                      statistics.median(b / a for a, b in zip(o, r)))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--compile-runs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = a.device
    name = torch.cuda.get_device_name() if dev == "cuda" else platform.processor() or platform.machine()
    print(f"# {time.strftime('%Y-%m-%d')}  torch {torch.__version__}  device {dev} ({name}), "
          f"{torch.get_num_threads()} CPU threads")

    c_host = time_compile(str(HOST), a.compile_runs)
    with tempfile.TemporaryDirectory() as d:
        deep = Path(d) / "gpt_host48.morph"
        deep.write_text(deep_host(48))
        c_deep = time_compile(str(deep), max(3, a.compile_runs // 2))
        n48 = sum(p.numel() for p in morphdsl.compile(str(deep)).parameters())
    res = time_fwd_bwd(dev, a.repeats)

    rows = [
        ("check gpt_host (4 layers, 3.3M params)", f"{c_host[0] * 1e3:.1f} ms"),
        ("check+compile gpt_host (incl. weight init)", f"{c_host[1] * 1e3:.1f} ms"),
        (f"check 48-layer host ({n48 / 1e6:.1f}M params)", f"{c_deep[0] * 1e3:.1f} ms"),
        ("check+compile 48-layer host (incl. weight init)", f"{c_deep[1] * 1e3:.1f} ms"),
    ]
    # CPU time of the calling thread is robust to other load, but only covers all the work
    # when torch runs single-threaded on the CPU
    clocks = ["wall"] + (["cpu"] if dev == "cpu" and torch.get_num_threads() == 1 else [])
    for clock in clocks:
        t_ours, t_ref, pair = res[clock]
        rows += [
            (f"fwd+bwd 8x128, compiled gpt_host ({clock} time)", f"{t_ours * 1e3:.2f} ms"),
            (f"fwd+bwd 8x128, reference nanoGPT ({clock} time)", f"{t_ref * 1e3:.2f} ms"),
            (f"ratio reference / compiled, {clock}: of medians / median of pairs (goal >= 0.97)",
             f"{t_ref / t_ours:.3f} / {pair:.3f}"),
        ]
    print("| measure | median |\n|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} |")
    return res


if __name__ == "__main__":
    main()
