"""Compute cost of a graph, read from the op registry (so it follows growth).

`forward_flops(graph, ctx)` is the forward FLOPs per token: for each op, 2 x its weights (one
multiply-add per weight; `Op.flops`) plus its context-dependent part (`Op.flops_ctx`: attention's
scores and weighted sum, 4 x ctx x heads*head_dim, counted over the full ctx x ctx matrix as in
PaLM's accounting). Embedding lookups are free; a tied unembed still costs its matmul.
A training step costs 3x the forward (backward = 2x forward): `train_flops(graph, batch, ctx)`.
"""
from __future__ import annotations

from ..ops import get_op


def forward_flops(graph, ctx: int) -> int:
    """Forward FLOPs per token of `graph` at context length `ctx`."""
    total = 0
    for _, d in graph.nodes():
        if d.get("kind") == "op":
            op, r = get_op(d.op), d.resolved
            total += op.flops(r) + op.flops_ctx(r, ctx)
    return int(total)


def train_flops(graph, batch: int, ctx: int) -> int:
    """FLOPs of one training step (forward + backward) on a (batch, ctx) token batch."""
    return 3 * forward_flops(graph, ctx) * batch * ctx
