"""`morphc export SPEC --weights W -o DIR` or `morphc export RUN_DIR -o DIR`: a model (grown or
not) as a Hugging Face directory that `AutoModelForCausalLM.from_pretrained(DIR)` loads."""
from __future__ import annotations

from pathlib import Path

from .common import UsageError


def register(sub):
    p = sub.add_parser("export", help="export a model to a Hugging Face directory",
                       description="Write config.json and model.safetensors (and the tokenizer, "
                                   "when the spec uses an hf: one) for SPEC with --weights W, or "
                                   "for the latest checkpoint of RUN_DIR. The model must be one "
                                   "the Hugging Face architecture can express; if not, the error "
                                   "says what differs.")
    p.add_argument("source", metavar="SPEC|RUN_DIR")
    p.add_argument("--weights", metavar="W", help="safetensors weights of SPEC (morphdsl names)")
    p.add_argument("-o", "--out", required=True, metavar="DIR")
    p.set_defaults(func=run)


def _module(args):
    src = Path(args.source)
    if src.is_dir():
        from ..train.checkpoint import load_checkpoint

        return load_checkpoint(src)["module"]
    if args.weights is None:
        raise UsageError("exporting a spec needs --weights W (or give a run directory)")
    from ..api import compile as compile_spec
    from ..train.init import load_init

    module = compile_spec(str(src))
    load_init(module, args.weights)
    return module


def run(args) -> int:
    from ..hf import save

    d = save(_module(args), args.out)
    print(f"wrote {d}/config.json and {d}/model.safetensors")
    return 0
