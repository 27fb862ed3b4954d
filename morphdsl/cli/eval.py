"""`morphc eval RUN_DIR [--data PATH]`: validation loss and perplexity of a run's checkpoint."""
from __future__ import annotations

import json
from pathlib import Path

from .common import UsageError


def register(sub):
    p = sub.add_parser("eval", help="evaluate a trained run (val loss, perplexity)",
                       description="Load RUN_DIR's latest checkpoint and evaluate it on the "
                                   "validation split of its data (or of --data PATH).")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--data", metavar="PATH", help="evaluate on this source instead")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..train import evaluate_run

    if not Path(args.run_dir).is_dir():
        raise UsageError(f"no such run directory: {args.run_dir}")
    r = evaluate_run(args.run_dir, args.data)
    if args.json:
        print(json.dumps(r))
    else:
        print(f"step {r['step']}: val loss {r['val_loss']:.4f}  ppl {r['val_ppl']:.2f}  "
              f"params {r['params']:,}  ({r['tokens']:,} tokens)")
    return 0
