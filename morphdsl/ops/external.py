"""External names: how an op's parameters are stored by another framework (Hugging Face).

Each op states, next to its axes, `Op.external(r, style)`: per parameter, the external tensors
it is made of, relative to the op's external module path (`transformer.h.0.attn` for GPT-2's
`blocks.0.attn`). A family (morphdsl/hf/) maps module paths and configs; the layout of the
tensors is the op's knowledge, stated once here:

    style "conv1d"   GPT-2: weights stored (in, out), i.e. transposed (`transpose = True`)
    style "linear"   Llama, Mistral: nn.Linear weights (out, in); fused tensors are split
                     (`qkv` <- q_proj, k_proj, v_proj; `kv` <- k_proj, v_proj; a gated mlp's
                     `fc` <- gate_proj, up_proj), concatenated along dim 0

`None` from `external` means the op cannot be written in that style (lanes, a nonneg linear).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Ext:
    """One parameter as external tensors: `names` concatenated along dim 0 (after transposing
    each when `transpose`); a fused one has the `sizes` of its parts along dim 0."""

    names: tuple
    transpose: bool = False
    sizes: tuple = ()

    def gather(self, get) -> torch.Tensor:
        """Our tensor from the external ones (`get(name) -> tensor`)."""
        parts = [get(n) for n in self.names]
        parts = [p.t() if self.transpose else p for p in parts]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)

    def scatter(self, t: torch.Tensor) -> dict:
        """The external tensors of our tensor `t` (split along dim 0 by `sizes` when fused)."""
        parts = [t] if len(self.names) == 1 else list(t.split(list(self.sizes), dim=0))
        return {n: (p.t() if self.transpose else p).contiguous() for n, p in zip(self.names, parts)}


def plain(*params: str, transpose: bool = False) -> dict:
    """Parameters stored under their own names (`weight` -> `weight`)."""
    return {p: Ext((p,), transpose) for p in params}
