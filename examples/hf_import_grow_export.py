"""Import a Hugging Face model, grow it exactly, train it further, export it back.

    python examples/hf_import_grow_export.py [WORKDIR]

A tiny random GPT-2 (byte vocabulary) is built with `transformers` from a config (nothing is
downloaded) and saved locally; then the four commands of docs/hf.md run on it:

    morphc import WORKDIR/hf-tiny -o m.morph
    morphc grow m.morph --weights m.safetensors --op "widen_mlp(blocks.*.mlp, by = 64)" -o g.morph --save g.safetensors
    morphc train g.morph --init g.safetensors --out run --steps 30
    morphc export run -o hf-grown

and `transformers` loads hf-grown with the trained, grown model's logits.
"""
from __future__ import annotations

import shlex
import sys
import tempfile
from pathlib import Path

import torch


def morphc(*argv) -> None:
    from morphdsl.cli import main

    print("$ morphc " + " ".join(shlex.quote(str(a)) for a in argv), flush=True)
    code = main([str(a) for a in argv])
    if code != 0:
        raise SystemExit(code)


def main(work: Path) -> float:
    import transformers

    import morphdsl
    from morphdsl.train.checkpoint import load_checkpoint

    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=256, n_embd=64, n_layer=2, n_head=2, n_positions=128,
                                  bos_token_id=0, eos_token_id=0)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(work / "hf-tiny")

    morphc("import", work / "hf-tiny", "-o", work / "m.morph")
    morphc("grow", work / "m.morph", "--weights", work / "m.safetensors",
           "--op", "widen_mlp(blocks.*.mlp, by = 64)", "-o", work / "g.morph", "--save", work / "g.safetensors")
    morphc("train", work / "g.morph", "--init", work / "g.safetensors", "--out", work / "run",
           "--steps", "30", "--quiet", "--force")
    morphc("export", work / "run", "-o", work / "hf-grown")

    ours = load_checkpoint(work / "run")["module"].eval()
    theirs = transformers.AutoModelForCausalLM.from_pretrained(work / "hf-grown").eval()
    idx = torch.randint(0, 256, (2, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        err = (ours(idx) - theirs(idx).logits).abs().max().item()
    print(f"transformers loads the grown model: n_inner = {theirs.config.n_inner}, "
          f"max |logit difference| = {err:.2e}")
    assert morphdsl.build(str(work / "g.morph")).n_params() == sum(p.numel() for p in theirs.parameters())
    return err


if __name__ == "__main__":
    if len(sys.argv) > 1:
        d = Path(sys.argv[1])
        d.mkdir(parents=True, exist_ok=True)
        main(d)
    else:
        with tempfile.TemporaryDirectory() as d:
            main(Path(d))
