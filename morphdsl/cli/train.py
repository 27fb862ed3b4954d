"""`morphc train FILE [--steps N] [--out RUN_DIR] [--resume RUN_DIR] [--force] [--seed S] ...`.

`--device auto|cpu|cuda|mps`, `--dtype bfloat16`, `--compile`, `--tensorboard`; under
`torchrun --nproc_per_node N` every process runs this command (data-parallel, see train/dist.py).

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
    p.add_argument("--device", metavar="DEVICE",
                   help="auto (default: cuda if available, else cpu), cpu, cuda, cuda:N or mps "
                        "(overrides train.device)")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16", "fp32", "bf16", "fp16"],
                   help="float32 (default), or bfloat16/float16 autocast (overrides train.dtype)")
    p.add_argument("--compile", action="store_true", default=None,
                   help="run the model under torch.compile (recompiled after each growth)")
    p.add_argument("--optimizer", metavar="NAME",
                   help="adamw (default), a torch.optim name (sgd, adam, ...), or "
                        "package.module:Class (overrides train.optimizer)")
    p.add_argument("--tensorboard", action="store_true", default=None,
                   help="also write TensorBoard events to RUN_DIR/tensorboard")
    p.add_argument("--callback", action="append", metavar="pkg.module:Class",
                   help="add a training callback class (repeatable)")
    p.add_argument("--init", metavar="W",
                   help="start from these weights: a .safetensors file in morphdsl's names "
                        "(morphc import / grow --save) or a Hugging Face model directory")
    p.add_argument("--stop-at", type=int, metavar="STEP",
                   help="stop after STEP steps (checkpointed) without changing the LR schedule")
    p.add_argument("--policy", metavar="ZIP", help="let a trained gardener policy (morphc garden "
                                                   "train) plant and advance seeds: adds "
                                                   "`policy(\"ZIP\")` to the spec's grow section")
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..train import resume, train_spec
    from ..train.progress import Reporter

    overrides = {"steps": args.steps, "seed": args.seed, "source": args.data,
                 "stop_at": args.stop_at, "flops": args.flops, "device": args.device,
                 "dtype": args.dtype, "compile": args.compile, "optimizer": args.optimizer,
                 "tensorboard": args.tensorboard, "callbacks": args.callback}
    if args.flops is not None and not 0 < args.flops < float("inf"):
        raise UsageError("--flops must be positive and finite")
    for k in ("steps", "stop_at"):
        if overrides[k] is not None and overrides[k] < 1:
            raise UsageError(f"--{k.replace('_', '-')} must be at least 1")
    reporter = Reporter(enabled=not args.quiet, summary=True)
    if args.resume:
        if not Path(args.resume).is_dir():
            raise UsageError(f"no such run directory: {args.resume}")
        for flag, v in (("--seed", args.seed), ("--optimizer", args.optimizer), ("--init", args.init),
                        ("--policy", args.policy)):
            if v is not None:
                raise UsageError(f"{flag} cannot change when resuming a run")
        if args.force:
            raise UsageError("--force starts a run over and --resume continues one: give one")
        resume(args.resume, overrides, reporter=reporter, force_memory=args.force_memory)
        return 0
    if not args.file:
        raise UsageError("give a spec FILE to train, or --resume RUN_DIR")
    read_text(args.file)  # usage error if missing
    out = args.out or str(Path("runs") / Path(args.file).stem)
    spec = args.file
    if args.policy:
        import morphdsl

        if not Path(args.policy).is_file():
            raise UsageError(f"no such policy file: {args.policy}")
        spec = morphdsl.build(args.file)
        spec.sections["grow"] = list(spec.sections.get("grow") or []) + [
            {"controller": {"name": "policy", "args": [str(Path(args.policy).resolve())],
                            "kwargs": {}, "span": None}, "span": None}]
    train_spec(spec, out, overrides, reporter=reporter, replace=args.force,
               force_memory=args.force_memory, init=args.init)
    return 0
