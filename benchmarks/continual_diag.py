"""Where does `ours` forget? Drift of crystallized weights against interference of new petals.

    python -m benchmarks.continual_diag runs/bench-continual/ours-s0

Loads the run's checkpoints after stage 1 and after the last stage and prints: the losses on
every domain after stage 1; after the last stage; after the last stage with only the petals
crystallized at the end of stage 1 switched on (every later petal gated off, exact); and the
largest move of a stage-1 crystallized weight relative to its tensor's largest entry. Equal
first and third rows mean the forgetting is interference from new petals, not drift.
"""
from __future__ import annotations

import argparse

import torch

from benchmarks import continual as C


def main(argv=None) -> int:
    from morphdsl.ops.modules import Hull
    from morphdsl.train.checkpoint import load_checkpoint

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="an `ours` run directory of benchmarks.continual")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    d = C.domains(None, 16, 64, 16)
    first = load_checkpoint(f"{args.run}/stage0-{C.DOMAINS[0]}", training=True)
    last = load_checkpoint(f"{args.run}/stage{len(C.DOMAINS) - 1}-{C.DOMAINS[-1]}", training=True)
    m0, m2, st0 = first["module"], last["module"], first["optimizer"]["state"]
    fmt = lambda xs: " / ".join(f"{x:.4f}" for x in xs)  # noqa: E731
    print(f"after stage 1:                       {fmt(C.evaluate(m0, d.val))}")
    print(f"after the last stage:                {fmt(C.evaluate(m2, d.val))}")
    with torch.no_grad():
        for n, h in m2.named_modules():
            if isinstance(h, Hull):
                keep = st0[n + ".w0"]["crystal"].reshape(h.L, -1, h.w * h.d).amax(-1) > 0
                h.alpha[:, keep.shape[1]:] = 0
                h.alpha[:, :keep.shape[1]] *= keep.float()
    print(f"... with only stage-1 crystals on:   {fmt(C.evaluate(m2, d.val))}")
    worst, old = 0.0, dict(m0.named_parameters())
    for n, p in m2.named_parameters():
        q = old[n]
        c = st0[n]["crystal"].bool()
        if c.any():
            moved = (p[tuple(slice(0, s) for s in q.shape)] - q)[c].abs().max()
            worst = max(worst, (moved / q[c].abs().max().clamp_min(1e-12)).item())
    print(f"largest move of a stage-1 crystallized weight: {worst:.2e} of its tensor's largest entry")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
