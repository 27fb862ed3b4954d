"""`morphc grow FILE --op "add_head(blocks.1.attn, n = 2)" [--op ...] -o OUT.morph`.

Applies growth rewrites in order, moves weights (from --weights, else a fresh init), checks each
exact rewrite with the identity verifier, writes the grown spec (and --save weights). Before
the spec is compiled and before each rewrite, the memory it needs (the old and the grown
weights, ir/memory.py) is checked against the machine's; `--force` skips that check.
"""
from __future__ import annotations

import json
import sys

from ..errors import MorphError
from .common import UsageError, load_graph


def register(sub):
    p = sub.add_parser("grow", help="grow a spec by rewrites (exact weight transfer, verified)",
                       description="Apply growth ops to a spec, verify that exact ones preserve the "
                                   "function, and write the grown spec (and weights).")
    p.add_argument("file", metavar="FILE", help=".morph spec")
    p.add_argument("--op", action="append", required=True, metavar="OP",
                   help='a growth op, e.g. "add_head(blocks.1.attn, n = 2)"; repeatable')
    p.add_argument("-o", "--out", metavar="OUT.morph", help="write the grown spec here")
    p.add_argument("--weights", metavar="IN.safetensors", help="start from these weights")
    p.add_argument("--save", metavar="OUT.safetensors", help="save the grown weights here")
    p.add_argument("--no-verify", action="store_true", help="skip the identity check")
    p.add_argument("--force", "--force-memory", dest="force", action="store_true",
                   help="grow even when the memory estimate exceeds the available memory")
    p.add_argument("--json", action="store_true", help="print a JSON report")
    p.set_defaults(func=run)


def _fits(needed: int, what: str, force: bool) -> None:
    from ..ir.memory import ensure_fits

    ensure_fits(needed, what, force=force, flag="--force",
                advice="grow by less, or on a machine with more memory")


def run(args) -> int:
    import torch

    from .. import api
    from ..compile import compile_graph
    from ..ir.memory import MemoryLimitError, hold_memory
    from ..rewrites import grow_model
    from ..rewrites.parse_op import parse_op

    g = load_graph(args.file)
    ops = [parse_op(t, g.params, label=f"--op {i + 1}") for i, t in enumerate(args.op)]
    _fits(hold_memory(g, copies=2 if args.weights else 1), f"loading {args.file} ({g.n_params():,} params)", args.force)
    torch.manual_seed(0)
    m = compile_graph(g)
    if args.weights:
        from safetensors.torch import load_model

        try:
            load_model(m, args.weights)
        except FileNotFoundError:
            raise UsageError(f"no such file: {args.weights}") from None
        except RuntimeError as e:
            raise MorphError(f"{args.weights} does not fit {args.file}: {' '.join(str(e).split())[:240]}",
                             hint="the weights must come from this spec (same names and shapes)") from None
        except Exception as e:  # noqa: BLE001 - SafetensorError: truncated, not safetensors
            raise MorphError(f"{args.weights}: not a readable safetensors file "
                             f"({str(e).splitlines()[0][:160] if str(e) else type(e).__name__})",
                             hint="--weights takes a file written by --save") from None
    steps = []
    for (name, kw, span), text in zip(ops, args.op):
        before = m.morph_graph.n_params()

        def fits(grown, old=m.morph_graph, text=text):  # the old and the grown model coexist
            _fits(hold_memory(old) + hold_memory(grown, copies=2),
                  f"growing by {text.strip()} (to {grown.n_params():,} params)", args.force)

        try:
            out = grow_model(m, name, verify=not args.no_verify, before_compile=fits, **kw)
        except MemoryLimitError:
            raise  # about the machine, not the --op text
        except MorphError as e:
            e.span = e.span or span
            raise e.with_source(text.strip()) if e.source is None and e.span is span else e
        m = out.module
        res, rep = out.results[-1], out.reports[-1]
        steps.append({"op": name, "args": {k: v for k, v in kw.items()}, "exact": res.exact,
                      "notes": res.notes, "params_before": before, "params_after": m.morph_graph.n_params(),
                      "max_abs_err": None if rep is None else rep.max_abs_err,
                      "ok": None if rep is None else (rep.ok or not res.exact)})
    text = api.emit(m.morph_graph)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    if args.save:
        from safetensors.torch import save_model

        save_model(m, args.save)
    if args.json:
        json.dump({"file": args.file, "steps": steps, "out": args.out, "save": args.save,
                   "params": m.morph_graph.n_params()}, sys.stdout, indent=2, default=str)
        print()
    else:
        for s in steps:
            err = "not checked" if s["max_abs_err"] is None else f"max |Δ| = {s['max_abs_err']:.2e}"
            kind = "exact" if s["exact"] else "approx"
            print(f"{s['op']}({', '.join(f'{k}={v}' for k, v in s['args'].items() if v is not None)}): "
                  f"{s['params_before']:,} -> {s['params_after']:,} params, {kind}, {err}")
            for n in s["notes"]:
                print(f"  {n}")
        if args.out:
            print(f"wrote {args.out}")
        if not args.out and not args.save:
            print(text)
    return 0
