"""Per-step cost of the ViscoElastic optimizer against AdamW, measured in the same run.

    python -m benchmarks.optim_cost [--spec specs/convex_lanes.morph] [--steps 50] [--repeats 5]

For one spec's parameters, times (a) `optimizer.step()` alone and (b) a whole training step
(forward, backward, step) with AdamW as the engine builds it (nanoGPT betas, foreach off) and
with ViscoElastic; the two alternate, repeat by repeat, on one thread, and the report gives
the median of each and their ratios. Also the optimizer state's size per parameter (AdamW 2
tensors, ViscoElastic 6).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import morphdsl
from morphdsl.train.config import TrainConfig
from morphdsl.train.optim import make_optimizer


def _setup(spec, name, batch, ctx):
    torch.manual_seed(0)
    m = morphdsl.compile(spec)
    opt = make_optimizer(m, TrainConfig(optimizer=name, lr=3e-3))
    x = torch.randint(0, 256, (batch, ctx))
    y = torch.randint(0, 256, (batch, ctx))
    return m, opt, x, y


def _time(m, opt, x, y, steps, whole):
    def loss():
        return torch.nn.functional.cross_entropy(m(x).flatten(0, 1), y.flatten())

    loss().backward()  # grads exist for the optimizer-only timing
    opt.step()
    t0 = time.perf_counter()
    for _ in range(steps):
        if whole:
            opt.zero_grad(set_to_none=True)
            loss().backward()
        opt.step()
    return (time.perf_counter() - t0) / steps


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default="specs/convex_lanes.morph")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--ctx", type=int, default=64)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    runs = {name: _setup(args.spec, name, args.batch, args.ctx) for name in ("adamw", "visco_elastic")}
    times = {(n, w): [] for n in runs for w in (False, True)}
    for _ in range(args.repeats):
        for whole in (False, True):
            for name, r in runs.items():
                times[(name, whole)].append(_time(*r, args.steps, whole))
    med = {k: statistics.median(v) for k, v in times.items()}
    n = sum(p.numel() for p in runs["adamw"][0].parameters())
    state = {name: sum(v.numel() for st in r[1].state.values() for v in st.values()
                       if torch.is_tensor(v) and v.dim()) / n for name, r in runs.items()}
    print(f"{args.spec}: {n:,} params, batch {args.batch} x ctx {args.ctx}, 1 thread, "
          f"median of {args.repeats} x {args.steps} steps")
    for whole, what in ((False, "optimizer.step()"), (True, "training step")):
        a, v = med[("adamw", whole)], med[("visco_elastic", whole)]
        print(f"  {what:18s} AdamW {a * 1e3:8.3f} ms   ViscoElastic {v * 1e3:8.3f} ms   "
              f"ratio {v / a:5.2f}")
    print(f"  optimizer state per parameter: AdamW {state['adamw']:.0f}, "
          f"ViscoElastic {state['visco_elastic']:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
