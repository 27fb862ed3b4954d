"""Weights between Hugging Face names and morphdsl names, driven by the ops' declared layouts.

For every op as written (`MorphGraph.units`, so an attention is one op over its parts), the
family says where it lives in HF's module tree and the op says how its parameters are made of
HF tensors (`Op.external`). Nothing here knows an op by name."""
from __future__ import annotations

from pathlib import Path

import torch

from ..ops import get_op
from .files import HFError

# tensors HF files may hold that are not parameters: GPT-2's causal-mask buffers, rotary
# frequency tables of older Llama checkpoints
IGNORED = (".attn.bias", ".attn.masked_bias", ".rotary_emb.inv_freq")


def _externals(g, fam, h, path: Path):
    paths = fam.paths(h)
    for key, u in g.units():
        if u.kind != "op" or not u.param_shapes:
            continue
        ext = get_op(u.op).external(u.resolved, fam.style)
        if ext is None or key not in paths or set(ext) != set(u.param_shapes):
            raise HFError(path, f"`{key}` ({u.op}) has no place in Hugging Face's {fam.name}",
                          hint="export writes the ops of that architecture only (no lanes, hulls, "
                               "extra layers)")
        yield key, u, paths[key], ext


def to_morph(g, fam, h, hf: dict, path: Path) -> dict:
    """Our state dict from HF tensors `hf` (read from `path`); every tensor must be used."""
    out, used = {}, set()
    for key, u, prefix, ext in _externals(g, fam, h, path):
        for p, shape in u.param_shapes.items():
            def get(n, prefix=prefix):
                full = f"{prefix}.{n}"
                if full not in hf:
                    raise HFError(path, f"tensor `{full}` is missing",
                                  hint=f"the config describes a {fam.name} model that has it")
                used.add(full)
                return hf[full]

            t = ext[p].gather(get)
            if tuple(t.shape) != tuple(shape):
                names = ", ".join(f"{prefix}.{n}" for n in ext[p].names)
                raise HFError(path, f"`{names}` has shape {tuple(t.shape) if len(ext[p].names) > 1 else tuple(hf[f'{prefix}.{ext[p].names[0]}'].shape)}, "
                                    f"but config.json says `{key}.{p}` is {tuple(shape)}"
                                    + (" (transposed in the file)" if ext[p].transpose else ""),
                              hint="the weights do not belong to this config.json")
            out[f"{key}.{p}"] = t.to(torch.float32) if t.is_floating_point() else t
    extra = sorted(k for k in set(hf) - used if not k.endswith(IGNORED) and not _tied_copy(k, hf, h, fam))
    if extra:
        raise HFError(path, f"{len(extra)} tensor(s) the {fam.name} config does not explain: "
                            + ", ".join(f"`{k}`" for k in extra[:3]),
                      hint="check model_type and the layer counts in config.json")
    return out


def _tied_copy(k: str, hf: dict, h: dict, fam) -> bool:
    """A saved copy of the tied embedding as `lm_head.weight`."""
    return k == "lm_head.weight" and h.get("tie") and any(
        n.endswith(("wte.weight", "embed_tokens.weight")) and torch.equal(hf[n], hf[k]) for n in hf)


def to_hf(g, fam, h, state: dict, path: Path) -> dict:
    out = {}
    for key, u, prefix, ext in _externals(g, fam, h, path):
        for p in u.param_shapes:
            for n, t in ext[p].scatter(state[f"{key}.{p}"].detach()).items():
                out[f"{prefix}.{n}"] = t
    return out


def exportable(g, fam, path: Path) -> dict:
    """The family's parameters for graph `g`, checked: `g` must be exactly the architecture
    they describe (every layer alike, nothing HF cannot hold). An HFError says what differs."""
    from ..ir.build import build
    from ..syntax.parser import parse

    h = fam.from_graph(g)
    fam.check(h, path)
    want = build(parse(fam.spec(h, "template", "", None)))
    ours, theirs = dict(g.units()), dict(want.units())
    for key, t in theirs.items():
        u = ours.get(key)
        if u is None:
            raise HFError(path, f"{fam.name} has `{key}` ({t.op}), this model does not")
        if u.op != t.op or u.inputs != t.inputs:
            raise HFError(path, f"`{key}` is `{u.op}` reading {u.inputs}; {fam.name} has `{t.op}` "
                                f"reading {t.inputs}")
        diff = sorted(k for k in set(u.resolved) | set(t.resolved)
                      if u.resolved.get(k) != t.resolved.get(k) and k != "dropout")
        if diff:
            k = diff[0]
            ref = "blocks.0" + key[key.index(".", 7):] if key.startswith("blocks.") else None
            raise HFError(path, f"`{key}` has {k} = {u.resolved.get(k)}, but {fam.name} needs "
                                f"{t.resolved.get(k)} (as in {ref or 'the config'})",
                          hint="Hugging Face layers are all alike: grow every block "
                               "(`blocks.*.attn`, `blocks.*.mlp`)" if ref else None)
    extra = [k for k in ours if k not in theirs]
    if extra:
        raise HFError(path, f"`{extra[0]}` ({ours[extra[0]].op}) has no place in {fam.name}",
                      hint="export writes the ops of that architecture only")
    return h
