"""Hugging Face interop: import a pretrained GPT-2 or Llama-style model as a readable spec with
its weights, export a (grown) model back to a directory `transformers` loads.

    spec_text, state = morphdsl.hf.import_dir("gpt2-dir")   # config.json + model.safetensors
    module = morphdsl.hf.load("gpt2-dir")                     # compiled, weights loaded
    morphdsl.hf.save(module, "out-dir")                       # config.json + model.safetensors

Families live one per module (gpt2.py, llama.py) in `FAMILIES`; how each op's tensors are laid
out is the op's own `external` rule. `transformers` is never imported here: reading and writing
is safetensors and JSON only (nothing is unpickled).
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from .convert import exportable, to_hf, to_morph
from .files import TOKENIZER_FILES, HFError, model_dir, read_config, read_weights, weight_files
from .files import write_config, write_weights
from .gpt2 import GPT2
from .llama import Llama

FAMILIES = (GPT2(), Llama())

__all__ = ["FAMILIES", "HFError", "export", "import_dir", "load", "save"]


def family_of(cfg: dict, path: Path):
    mt = cfg.get("model_type")
    for f in FAMILIES:
        if mt in f.model_types:
            return f
    known = ", ".join(t for f in FAMILIES for t in f.model_types)
    raise HFError(path, f"config field `model_type` = {mt!r} is not supported" if mt is not None
                  else "config field `model_type` is missing", hint=f"supported: {known}")


def _name(d: Path) -> str:
    s = re.sub(r"[^A-Za-z0-9_]", "_", d.resolve().name or "imported").strip("_") or "imported"
    return s if s[0].isalpha() else f"m_{s}"


def import_dir(directory, weights=None, name: str | None = None) -> tuple[str, dict]:
    """(spec text, state dict in morphdsl names) of the HF model in `directory`."""
    from ..ir.build import build
    from ..syntax.parser import parse

    d = model_dir(directory)
    cfg = read_config(d)
    fam = family_of(cfg, d / "config.json")
    h = fam.hparams(cfg, d / "config.json")
    tok = str(d.resolve()) if (d / "tokenizer.json").is_file() else None
    text = fam.spec(h, name or _name(d), str(directory), tok)
    files = weight_files(d, weights)
    state = to_morph(build(parse(text)), fam, h, read_weights(files), files[0])
    return text, state


def load(directory, weights=None):
    """The compiled module of an HF model directory, its weights loaded (strictly)."""
    from ..api import compile as compile_spec

    text, state = import_dir(directory, weights)
    m = compile_spec(text)
    m.load_state_dict(state, strict=True)
    return m


def _family_for_graph(g):
    ops = {u.op for _, u in g.units()}
    return FAMILIES[1] if "rmsnorm" in ops else FAMILIES[0]


def export(graph, state: dict, directory, tokenizer_dir=None) -> Path:
    """Write `graph` with weights `state` as an HF model directory; returns it."""
    d = Path(directory)
    fam = _family_for_graph(graph)
    h = exportable(graph, fam, Path(graph.filename or "<spec>"))
    tensors = to_hf(graph, fam, h, state, d)
    d.mkdir(parents=True, exist_ok=True)
    write_config(fam.config(h), d)
    write_weights(tensors, d / "model.safetensors")
    src = tokenizer_dir or _tokenizer_of(graph)
    if src is not None:
        for n in TOKENIZER_FILES:
            if (Path(src) / n).is_file():
                shutil.copyfile(Path(src) / n, d / n)
    return d


def _tokenizer_of(graph):
    tok = str(graph.sections.get("data", {}).get("tokenizer", ""))
    return tok[3:] if tok.startswith("hf:") else None


def save(module, directory, tokenizer_dir=None) -> Path:
    """Export a compiled module (grown or not) to an HF directory."""
    return export(module.morph_graph, module.state_dict(), directory, tokenizer_dir)
