"""`morphc sample RUN_DIR --prompt TEXT --tokens N [--temperature T]`: generate from a run."""
from __future__ import annotations

from pathlib import Path

from .common import UsageError


def register(sub):
    p = sub.add_parser("sample", help="generate text from a trained run",
                       description="Load RUN_DIR's latest checkpoint and continue a prompt.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--prompt", default="Once upon a time", help="text to continue")
    p.add_argument("--tokens", type=int, default=200, help="new tokens to generate")
    p.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..train import sample_run

    if not Path(args.run_dir).is_dir():
        raise UsageError(f"no such run directory: {args.run_dir}")
    if args.tokens < 0 or args.temperature < 0:
        raise UsageError("--tokens and --temperature must be >= 0")
    print(sample_run(args.run_dir, args.prompt, args.tokens, args.temperature, args.seed))
    return 0
