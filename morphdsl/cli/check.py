"""`morphc check FILE...`: parse, elaborate, shape-check (and optionally run) specs."""
from __future__ import annotations

import sys

from ..errors import MorphError
from .common import UsageError, load_graph


def register(sub):
    p = sub.add_parser("check", help="check specs: syntax, names, shapes, static verifiers",
                       description="Check .morph specs. Prints `FILE: ok (N params, ~X MiB to "
                                   "train at batch B x T)` per valid file (the memory estimate "
                                   "of `morphc train` at the spec's batch and ctx); errors are "
                                   "printed as FILE:LINE:COL diagnostics.")
    p.add_argument("files", nargs="+", metavar="FILE", help=".morph files")
    p.add_argument("--forward", action="store_true",
                   help="also compile each spec and run it once on random inputs")
    p.set_defaults(func=run)


def forward_shape(g) -> tuple:
    """Compile `g` and run it on a random batch of 2 x 8 tokens (or features); the output shape."""
    import torch

    from ..compile import compile_graph, example_input

    m = compile_graph(g)
    with torch.no_grad():
        return tuple(m(example_input(g, 2, 8)).shape)


def memory_note(g) -> str:
    """`~X MiB to train at batch B x T`: the training memory estimate at the spec's shape."""
    from ..ir.memory import fmt_bytes, train_memory, train_shape

    batch, ctx = train_shape(g)
    return f"~{fmt_bytes(train_memory(g, batch, ctx).total)} to train at batch {batch} x {ctx}"


def run(args) -> int:
    failed = missing = 0
    for f in args.files:
        try:
            g = load_graph(f)
            extra = ""
            if args.forward:
                extra = f", forward {forward_shape(g)}"
        except UsageError as e:
            print(f"morphc: error: {e}", file=sys.stderr)
            missing += 1
            continue
        except MorphError as e:
            print(e.render(), file=sys.stderr)
            failed += 1
            continue
        print(f"{f}: ok ({g.n_params()} params, {memory_note(g)}{extra})")
    if missing:
        return 2
    return 1 if failed else 0
