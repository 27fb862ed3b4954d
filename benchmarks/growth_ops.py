"""How long does growing take, next to one training step?

    .venv/bin/python -m benchmarks.growth_ops [--depths 4 8 16 32] [--quick]

For specs/gpt_host.morph (4 layers, d=256) and the same host at several depths, one growth
through morphdsl.growth.GrowthTransaction with its stages timed: the rewrite (graph edit +
re-lower), the static checks of the grown graph, compile (fx + fresh init), weight transfer,
optimizer transfer (one new AdamW), slice metadata and the identity check, as a ratio to one
training step (forward + backward + AdamW on a batch of 8 x 128 tokens) measured in the same run; and the peak resident memory of a
growth step relative to the model's parameter bytes: `held` counts the tensors the step
allocates (new weights + moved optimizer state); `ΔRSS` is the rise of the process's peak
resident memory (Linux VmHWM, reset before the step; often ~0, as the allocator reuses memory
freed by the training step). "growth" = rewrite + checks + compile + weights + optimizer + meta;
"+ identity" adds the identity check (one forward of each model on a 2 x 16 probe; the
node-by-node pass runs only on a mismatch).
Prints markdown tables.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import morphdsl
from morphdsl.growth import GrowthTransaction

HOST = Path(__file__).resolve().parents[1] / "specs" / "gpt_host.morph"


def host_text(layers: int) -> str:
    text = HOST.read_text()
    return text.replace("layers = 4", f"layers = {layers}")


def _rss_peak_reset():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        return True
    except OSError:
        return False


def _vm(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
    return 0


def train_step_time(m, opt, B=8, T=128, reps=3):
    x = torch.randint(0, 256, (B, T + 1))
    ts = []
    for _ in range(reps + 1):
        t = time.perf_counter()
        logits = m(x[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        ts.append(time.perf_counter() - t)
    return min(ts[1:])  # the first step pays one-time costs


def growth_times(m, opt, op, args, share=False):
    """One growth through a GrowthTransaction (the path training uses), its stages timed."""
    can_reset = _rss_peak_reset()
    base = _vm("VmRSS:")
    t0 = time.perf_counter()
    r = GrowthTransaction(m, opt, share=share).apply(op, args)
    total = time.perf_counter() - t0
    t = dict(r.times)
    t["total"] = total
    t["peak_mem"] = (_vm("VmHWM:") - base) if can_reset else float("nan")
    # bytes the growth step allocates and holds: the new weights and the moved optimizer state
    t["held"] = sum(p.numel() * p.element_size() for p in r.module.parameters()) + sum(
        v.numel() * v.element_size() for st in r.optimizer.state.values() for v in st.values()
        if isinstance(v, torch.Tensor))
    assert r.report.ok, str(r.report)
    return t


def prepared(text):
    torch.manual_seed(0)
    m = morphdsl.compile(text)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    step = train_step_time(m, opt)
    return m, opt, step


def best_of(m, opt, op, args, repeats, share=False):
    """Per-component minimum over `repeats` growths (the machine may be shared: min is robust)."""
    runs = [growth_times(m, opt, op, args, share) for _ in range(repeats)]
    return {k: min(r[k] for r in runs) for k in runs[0]}


PHASES = ("rewrite", "checks", "compile", "weights", "optimizer", "meta")


def row(label, nparams, step, t):
    grow_s = sum(t[k] for k in PHASES)
    mem, held = t["peak_mem"] / (4 * nparams), t["held"] / (4 * nparams)
    ms = " | ".join(f"{t[k] * 1e3:.1f}" for k in PHASES + ("identity",))
    return (f"| {label} | {nparams / 1e6:.2f}M | {ms} | {grow_s * 1e3:.1f} | "
            f"{(grow_s + t['identity']) * 1e3:.1f} | {step * 1e3:.0f} | {grow_s / step:.2f} | "
            f"{(grow_s + t['identity']) / step:.2f} | {held:.2f} | {mem:.2f} |")


HEADER = ("| case | params | rewrite | checks | compile | weights | optim | meta | identity | "
          "growth ms | + identity ms | train step ms | growth / step | + identity / step | "
          "held / model bytes | ΔRSS peak / model bytes |\n|" + "---|" * 16)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--depths", type=int, nargs="+", default=[4, 8, 16, 32])
    ap.add_argument("--quick", action="store_true", help="depths 4 and 8 only")
    ap.add_argument("--repeats", type=int, default=3, help="growths per case (min is reported)")
    ap.add_argument("--share", action="store_true",
                    help="hand unchanged tensors' optimizer state over without a copy")
    a = ap.parse_args(argv)
    depths = [4, 8] if a.quick else a.depths
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU\n")
    print("gpt_host (4 layers, d=256), one growth op each:\n")
    print(HEADER)
    m, opt, step = prepared(HOST.read_text())
    n = m.morph_graph.n_params()
    growth_times(m, opt, "add_head", {"n": 1})  # warm-up: first-call costs (imports, allocator)
    for op, args in [("add_head", {"n": 1}), ("widen_mlp", {"by": 256}),
                     ("insert_block", {"target": "blocks", "at": 2})]:
        print(row(op, n, step, best_of(m, opt, op, args, a.repeats, a.share)), flush=True)
    print("\ninsert_block at the middle, scaling with depth:\n")
    print(HEADER)
    for L in depths:
        m, opt, step = prepared(host_text(L))
        t = best_of(m, opt, "insert_block", {"target": "blocks", "at": L // 2}, a.repeats, a.share)
        print(row(f"{L} layers", m.morph_graph.n_params(), step, t), flush=True)


if __name__ == "__main__":
    main()
