"""`morphc import DIR -o SPEC [--weights W]`: a Hugging Face model directory as a readable
spec and a safetensors file of its weights in morphdsl's names."""
from __future__ import annotations

from pathlib import Path

from .common import UsageError


def register(sub):
    p = sub.add_parser("import", help="import a Hugging Face model directory (GPT-2, Llama)",
                       description="Read DIR (config.json + model.safetensors, as written by "
                                   "save_pretrained) and write a .morph spec and its weights. "
                                   "The spec has the config's parameters, one block definition "
                                   "and a repeat; `morphc check` passes it.")
    p.add_argument("dir", metavar="DIR", help="a local Hugging Face model directory")
    p.add_argument("-o", "--out", required=True, metavar="SPEC", help="the .morph file to write")
    p.add_argument("--weights", metavar="W", help="where the weights go (default: SPEC with "
                                                   ".safetensors)")
    p.add_argument("--from-weights", metavar="FILE", help="read these HF weights instead of "
                                                          "DIR/model.safetensors")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..hf import import_dir
    from ..hf.files import write_weights

    out = Path(args.out)
    weights = Path(args.weights) if args.weights else out.with_suffix(".safetensors")
    text, state = import_dir(args.dir, args.from_weights, name=None)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        write_weights(state, weights)
    except OSError as e:
        raise UsageError(f"cannot write {e.filename}: {e.strerror}") from None
    n = sum(t.numel() for t in state.values())
    print(f"wrote {out} and {weights} ({n:,} parameters)")
    return 0
