"""`morphc evolve SPEC --out DIR [--executor local|ray] [--address A]`, `morphc evolve --resume DIR`.

Evolves a population from SPEC by its `evolve { }` section (docs/evolution.md): every member a
run directory, mutations by growth rewrites, crossover, tournament selection; lineage.json,
evolution.png and best.morph (the best member's spec) in DIR.
"""
from __future__ import annotations

from pathlib import Path

from .common import UsageError


def register(sub):
    p = sub.add_parser("evolve", help="evolve a population of specs (docs/evolution.md)",
                       description="Evolve a population from SPEC: members train in parallel (in "
                                   "this process or on Ray), the worst are replaced by mutated or "
                                   "crossed-over children of tournament winners, generation after "
                                   "generation. Settings come from the spec's evolve section.")
    p.add_argument("file", metavar="SPEC", nargs="?", help=".morph spec (omit with --resume)")
    p.add_argument("--out", metavar="DIR", help="population directory (default runs/evolve-NAME)")
    p.add_argument("--resume", metavar="DIR", help="continue the population in DIR")
    p.add_argument("--force", action="store_true", help="replace a population already in --out")
    p.add_argument("--executor", choices=["local", "ray"], default="ray",
                   help="ray (default: tasks on a local Ray, or --address's cluster) or local "
                        "(one member after another in this process)")
    p.add_argument("--address", help="join this Ray cluster (e.g. 127.0.0.1:6379) instead of "
                                     "starting a local one")
    p.add_argument("--workers", type=int, help="CPUs of the local Ray (default: evolve.workers)")
    for name, typ, what in (("population", int, "members"), ("generations", int, "generations"),
                            ("steps", int, "training steps per member per generation"),
                            ("seed", int, "the selection seed"),
                            ("finish", int, "steps the best member then trains on alone"),
                            ("crossover", float, "share of children bred by crossover")):
        p.add_argument(f"--{name}", type=typ, help=f"{what} (overrides evolve.{name})")
    p.add_argument("--data", metavar="SOURCE", help="data source (overrides data.source)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..evolve import evolve, evolve_resume

    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be at least 1")
    kw = {"executor": args.executor, "workers": args.workers, "address": args.address, "log": print}
    if args.resume:
        if args.file:
            raise UsageError("give a SPEC or --resume DIR, not both")
        s = evolve_resume(args.resume, **kw)
    else:
        if not args.file:
            raise UsageError("give a .morph SPEC (or --resume DIR)")
        if not Path(args.file).is_file():
            raise UsageError(f"no such spec: {args.file}")
        out = args.out or f"runs/evolve-{Path(args.file).stem}"
        over = {k: getattr(args, k) for k in ("population", "generations", "steps", "seed",
                                              "crossover", "finish")}
        train = {"source": args.data} if args.data else None
        s = evolve(args.file, out, over, train=train, replace=args.force, **kw)
    b = s["best"]
    print(f"best: {b['id']} val loss {b['val_loss']:.4f}, {b['params']:,} params, "
          f"{b['blocks']} blocks, after {s['generations']} generations"
          f"{' and the finish' if s['finished'] else ''} "
          f"({s['flops_total']:.3g} training FLOPs in all)")
    print(f"its spec: {s['best_spec']}; lineage: {Path(s['out']) / 'lineage.json'}, "
          f"plot: {Path(s['out']) / 'evolution.png'}")
    return 0
