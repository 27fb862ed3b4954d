"""A random input a compiled graph accepts: token ids below its vocab, or features."""
from __future__ import annotations

import torch


def example_input(g, batch: int = 2, T: int = 8, generator: torch.Generator | None = None):
    """(batch, T') token ids (T' = T capped at the model's position table) or (batch, T', C)."""
    T = min(T, g.ctx or T)
    if g.input_type.channels is None:
        vocab = min([d.resolved["vocab"] for _, d in g.op_nodes("embed")] or [2])
        return torch.randint(0, vocab, (batch, T), generator=generator)
    return torch.randn(batch, T, g.input_type.channels, generator=generator)
