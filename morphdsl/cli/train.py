"""`morphc train FILE [--steps N] [--out RUN_DIR] [--resume RUN_DIR] [--force] [--seed S] ...`.

Trains a spec with its `grow { }` rules, writing metrics.jsonl, events.jsonl, loss.png and an
atomic checkpoint (checkpoints/latest/) into RUN_DIR; `--resume RUN_DIR` continues exactly.
An existing run in RUN_DIR is never replaced without `--force`. A run whose estimated memory
exceeds the machine's is refused before anything is allocated, unless `--force-memory`.
"""
from __future__ import annotations

from pathlib import Path

from .common import UsageError, read_text


def register(sub):
    p = sub.add_parser("train", help="train a spec (growing it by its grow rules)",
                       description="Train a .morph spec on its data section, applying its growth "
                                   "rules; checkpoints and metrics go to the run directory.")
    p.add_argument("file", metavar="FILE", nargs="?", help=".morph spec (omit with --resume)")
    p.add_argument("--steps", type=int, help="total optimizer steps (overrides train.steps)")
    p.add_argument("--flops", type=float, help="a compute budget: train until this many FLOPs "
                   "(counted from the graph; the LR cosine follows the fraction spent)")
    p.add_argument("--out", metavar="RUN_DIR", help="run directory (default runs/SPEC_NAME)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    p.add_argument("--force", action="store_true",
                   help="start over in an --out directory that already holds a run, replacing it")
    p.add_argument("--force-memory", action="store_true",
                   help="train even when the memory estimate exceeds the available memory")
    p.add_argument("--seed", type=int, help="random seed (overrides train.seed)")
    p.add_argument("--data", metavar="PATH", help="data source: a file, a directory, "
                   "'stories', 'shakespeare' or a dataset name (overrides data.source)")
    p.add_argument("--device", default="cpu", choices=["cpu"], help="device (cpu)")
    p.add_argument("--stop-at", type=int, metavar="STEP",
                   help="stop after STEP steps (checkpointed) without changing the LR schedule")
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..train import resume, train_spec
    from ..train.progress import Reporter

    overrides = {"steps": args.steps, "seed": args.seed, "source": args.data,
                 "stop_at": args.stop_at, "flops": args.flops}
    if args.flops is not None and not 0 < args.flops < float("inf"):
        raise UsageError("--flops must be positive and finite")
    for k in ("steps", "stop_at"):
        if overrides[k] is not None and overrides[k] < 1:
            raise UsageError(f"--{k.replace('_', '-')} must be at least 1")
    reporter = Reporter(enabled=not args.quiet)
    if args.resume:
        if not Path(args.resume).is_dir():
            raise UsageError(f"no such run directory: {args.resume}")
        if args.seed is not None:
            raise UsageError("--seed cannot change when resuming a run")
        if args.force:
            raise UsageError("--force starts a run over and --resume continues one: give one")
        resume(args.resume, overrides, reporter=reporter, force_memory=args.force_memory)
        return 0
    if not args.file:
        raise UsageError("give a spec FILE to train, or --resume RUN_DIR")
    read_text(args.file)  # usage error if missing
    out = args.out or str(Path("runs") / Path(args.file).stem)
    train_spec(args.file, out, overrides, reporter=reporter, replace=args.force,
               force_memory=args.force_memory)
    return 0
