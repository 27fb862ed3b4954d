"""Widening the model axis by channel duplication: the shared pieces of every op's rule.

`widen_embed(factor = k)` turns the residual stream x into [x, x, ..., x] (k copies). Each op
says how its tensors follow, in `Op.widen(r, ctx) -> Widened | None` (None: it cannot):

    embed / pos_embed       weight columns repeated k times
    layernorm / rmsnorm     gains and biases repeated (mean and variance of [x, x] are those of
                            x); divided by k when a tied unembed reads the norm
    attention / mlp / the first linear of a chain   input columns repeated and divided by k
                            (W'[x, x] = W x), with paired cancelling noise (below)
    proj of attention / mlp / the last linear of a chain   output rows repeated
    unembed                 input columns divided by k (tied: the norm before it is rescaled)
    channel-wise ops without parameters   nothing: they commute with duplication

`noise = e` adds +E on the first copy of an input-column block and -E on the second (and so on
for further pairs), E ~ N(0, e^2): the copies' sum, which is what [x, x] sees, is unchanged, but
the copies get different gradients and can become different channels. Every tensor also says
how its optimizer state moves (`state`): the same duplication without the 1/k and the noise.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch


@dataclass
class WidenCtx:
    """What an op's rule needs to know beyond its own arguments."""

    k: int                        # the factor
    noise: float                  # std of the paired symmetry-breaking noise
    seed: int                     # the noise seed of this node
    role: str = "stream"          # a linear's place: "reads" / "writes" the stream, or "inner"
    tied_next: bool = False       # a norm whose output a tied unembed reads
    after_absorber: bool = False  # the op before this one can take a 1/k (a norm)


@dataclass
class Widened:
    """An op's widening: per parameter, (new tensor from old, new state from old state)."""

    tensors: dict = field(default_factory=dict)   # param -> (fn, state_fn)
    args: dict = field(default_factory=dict)      # user arguments to set (e.g. dim = k * d)
    drop: tuple = ()                              # user arguments to drop (e.g. mult)

    def add(self, param: str, fn: Callable, state_fn: Callable | None = None) -> "Widened":
        self.tensors[param] = (fn, state_fn or fn)
        return self


def rep(t: torch.Tensor, k: int, dim: int, scale: float = 1.0) -> torch.Tensor:
    """k copies of t along dim, times scale."""
    return torch.cat([t] * k, dim=dim) * scale


def in_cols(k: int, noise: float, seed: int) -> Callable:
    """(out, C) -> (out, kC): input columns repeated / k, paired noise on copies (0, 1), (2, 3)..."""
    def f(w):
        parts = [w / k for _ in range(k)]
        if noise:
            gen = torch.Generator().manual_seed(seed)
            for a in range(0, k - 1, 2):  # an odd last copy differs from the noised ones anyway
                e = (torch.randn(w.shape, generator=gen) * noise).to(w)
                parts[a], parts[a + 1] = parts[a] + e, parts[a + 1] - e
        return torch.cat(parts, dim=1)
    return f


def head_index(H: int, hd: int, k: int, sections: int) -> torch.Tensor:
    """Row/column index (into the old layout [sections][H][hd]) of each new [sections][kH][hd]
    position: head j of the widened layer is a copy of head j mod H."""
    idx = []
    for s in range(sections):
        for j in range(k * H):
            base = s * H * hd + (j % H) * hd
            idx.extend(range(base, base + hd))
    return torch.tensor(idx)


def reads_stream(ctx: WidenCtx) -> Callable:
    """The input-column rule of an op reading the widened stream (with noise)."""
    return in_cols(ctx.k, ctx.noise, ctx.seed)


def copies(ctx: WidenCtx, dim: int) -> Callable:
    return lambda w: rep(w, ctx.k, dim)
