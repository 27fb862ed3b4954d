"""How long does growing take, next to one training step?

    .venv/bin/python -m benchmarks.growth_ops [--depths 4 8 16 32] [--quick]

For specs/gpt_host.morph (4 layers, d=256) and the same host at several depths: the time of the
rewrite (graph edit + re-lower), compile (fx + fresh init), weight transfer (apply_plan),
optimizer transfer and the identity check, as a ratio to one training step (forward + backward +
AdamW on a batch of 8 x 128 tokens) measured in the same run; and the peak resident memory of a
growth step relative to the model's parameter bytes: `held` counts the tensors the step
allocates (new weights + moved optimizer state); `ΔRSS` is the rise of the process's peak
resident memory (Linux VmHWM, reset before the step; often ~0, as the allocator reuses memory
freed by the training step). "growth / step" = (rewrite + compile + weights + optimizer) / step;
the identity check is listed apart (it runs the model twice, plus a node-by-node pass on failure).
Prints markdown tables.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import morphdsl
from morphdsl.compile import compile_graph
from morphdsl.rewrites import grow
from morphdsl.rewrites.transfer import apply_plan, transfer_optimizer
from morphdsl.verify.identity import identity

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


def growth_times(m, opt, op, args):
    can_reset = _rss_peak_reset()
    base = _vm("VmRSS:")
    t = {}
    t0 = time.perf_counter()
    res = grow(m.morph_graph, op, **args)
    t["rewrite"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    new = compile_graph(res.graph)
    t["compile"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    apply_plan(res.plan, m, new)
    t["weights"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    nopt = transfer_optimizer(res.plan, opt, m, new)
    t["optimizer"] = time.perf_counter() - t0
    t["peak_mem"] = (_vm("VmHWM:") - base) if can_reset else float("nan")
    # bytes the growth step allocates and holds: the new weights and the moved optimizer state
    t["held"] = sum(p.numel() * p.element_size() for p in new.parameters()) + sum(
        v.numel() * v.element_size() for st in nopt.state.values() for v in st.values()
        if isinstance(v, torch.Tensor))
    t0 = time.perf_counter()
    rep = identity(m, new, batch=2, seq=64)
    t["verify"] = time.perf_counter() - t0
    assert rep.ok, str(rep)
    return t


def prepared(text):
    torch.manual_seed(0)
    m = morphdsl.compile(text)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    step = train_step_time(m, opt)
    return m, opt, step


def best_of(m, opt, op, args, repeats):
    """Per-component minimum over `repeats` growths (the machine may be shared: min is robust)."""
    runs = [growth_times(m, opt, op, args) for _ in range(repeats)]
    return {k: min(r[k] for r in runs) for k in runs[0]}


def row(label, nparams, step, t):
    grow_s = t["rewrite"] + t["compile"] + t["weights"] + t["optimizer"]
    mem, held = t["peak_mem"] / (4 * nparams), t["held"] / (4 * nparams)
    return (f"| {label} | {nparams / 1e6:.2f}M | {t['rewrite'] * 1e3:.0f} | {t['compile'] * 1e3:.0f} | "
            f"{t['weights'] * 1e3:.0f} | {t['optimizer'] * 1e3:.0f} | {t['verify'] * 1e3:.0f} | "
            f"{step * 1e3:.0f} | {grow_s / step:.2f} | {held:.2f} | {mem:.2f} |")


HEADER = ("| case | params | rewrite ms | compile ms | weights ms | optim ms | verify ms | "
          "train step ms | growth / step | held / model bytes | ΔRSS peak / model bytes |\n|" + "---|" * 11)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--depths", type=int, nargs="+", default=[4, 8, 16, 32])
    ap.add_argument("--quick", action="store_true", help="depths 4 and 8 only")
    ap.add_argument("--repeats", type=int, default=3, help="growths per case (min is reported)")
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
        print(row(op, n, step, best_of(m, opt, op, args, a.repeats)), flush=True)
    print("\ninsert_block at the middle, scaling with depth:\n")
    print(HEADER)
    for L in depths:
        m, opt, step = prepared(host_text(L))
        t = best_of(m, opt, "insert_block", {"target": "blocks", "at": L // 2}, a.repeats)
        print(row(f"{L} layers", m.morph_graph.n_params(), step, t), flush=True)


if __name__ == "__main__":
    main()
