"""A Hugging Face model family: its config <-> the spec's parameters, its module names.

A family knows three things: which config fields mean what (`hparams` from config.json, checked
field by field), the readable spec that architecture is (`spec`: parameters, one block, a
`repeat`), and where each of the spec's ops lives in HF's module tree (`paths`). How an op's
tensors are laid out is the op's own knowledge (`Op.external`, ops/external.py)."""
from __future__ import annotations

from pathlib import Path

from .files import HFError


class Family:
    name: str = ""
    model_types: tuple = ()
    style: str = "linear"        # Op.external style
    architecture: str = ""       # config.json `architectures`

    # --- import
    def hparams(self, cfg: dict, path: Path) -> dict:
        """The spec's parameters from config.json, or an HFError naming the field."""
        raise NotImplementedError

    def spec(self, h: dict, name: str, source: str, tokenizer: str | None) -> str:
        raise NotImplementedError

    def paths(self, h: dict) -> dict:
        """{spec op path: HF module path}, every layer."""
        raise NotImplementedError

    # --- export
    def from_graph(self, g) -> dict:
        """The parameters of a (possibly grown) graph, read from its ops; `exportable` then
        checks the graph is exactly what they describe."""
        raise NotImplementedError

    def config(self, h: dict) -> dict:
        raise NotImplementedError

    def unsupported(self, path: Path, field: str, value, why: str, hint: str | None = None):
        import json

        return HFError(path, f"{self.name}: config field `{field}` = {json.dumps(value)}: {why}",
                       hint=hint)


def unit(g, key, op=None):
    """The op `key` as written, checked to be `op`."""
    u = g.unit(key)
    if u is None or u.kind != "op" or (op is not None and u.op != op):
        got = "nothing" if u is None else f"`{u.op}`"
        raise HFError(Path(g.filename or "<spec>"), f"expected {'an op' if op is None else '`' + op + '`'} "
                      f"at `{key}`, found {got}",
                      hint="export writes models shaped like the Hugging Face architecture "
                           "(`morphc import` writes such a spec)")
    return u


def layers(g, prefix: str = "blocks") -> int:
    n = 0
    while g.unit(f"{prefix}.{n}.attn") is not None:
        n += 1
    return n


def head_and_data(h: dict, tokenizer: str | None) -> tuple[str, str]:
    """The spec's unembed (tied or not) and its data section (an hf: tokenizer, if any)."""
    head = "unembed(vocab = vocab, tie = tok)" if h["tie"] else "unembed(vocab = vocab)"
    return head, (f'\ndata {{\n  tokenizer = "hf:{tokenizer}"\n}}\n' if tokenizer else "")


def fmt(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return str(v)
