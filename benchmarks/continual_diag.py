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


def diagnose(run, val) -> dict:
    """The losses after stage 1, after the last stage, and after the last stage with only the
    petals crystallized after stage 1 on; the largest relative move of a stage-1 crystal."""
    from morphdsl.ops.modules import Hull
    from morphdsl.train.checkpoint import load_checkpoint

    first = load_checkpoint(f"{run}/stage0-{C.DOMAINS[0]}", training=True)
    last = load_checkpoint(f"{run}/stage{len(C.DOMAINS) - 1}-{C.DOMAINS[-1]}", training=True)
    m0, m2, st0 = first["module"], last["module"], first["optimizer"]["state"]
    out = {"after_stage1": C.evaluate(m0, val), "after_last": C.evaluate(m2, val)}
    with torch.no_grad():
        for n, h in m2.named_modules():
            if isinstance(h, Hull):
                keep = st0[n + ".w0"]["crystal"].reshape(h.L, -1, h.w * h.d).amax(-1) > 0
                h.alpha[:, keep.shape[1]:] = 0
                h.alpha[:, :keep.shape[1]] *= keep.float()
    out["stage1_crystals_only"] = C.evaluate(m2, val)
    worst, old = 0.0, dict(m0.named_parameters())
    for n, p in m2.named_parameters():
        q, c = old[n], st0[n]["crystal"].bool()
        if c.any():
            moved = (p[tuple(slice(0, s) for s in q.shape)] - q)[c].abs().max()
            worst = max(worst, (moved / q[c].abs().max().clamp_min(1e-12)).item())
    out["largest_crystal_move"] = worst
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="an `ours` run directory of benchmarks.continual")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    r = diagnose(args.run, C.domains(None, 16, 64, 16).val)
    fmt = lambda xs: " / ".join(f"{x:.4f}" for x in xs)  # noqa: E731
    print(f"after stage 1:                       {fmt(r['after_stage1'])}")
    print(f"after the last stage:                {fmt(r['after_last'])}")
    print(f"... with only stage-1 crystals on:   {fmt(r['stage1_crystals_only'])}")
    print(f"largest move of a stage-1 crystallized weight: {r['largest_crystal_move']:.2e} of its "
          f"tensor's largest entry")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
