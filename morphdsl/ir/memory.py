"""Memory a model needs, estimated from its IR graph before anything is allocated.

`train_memory(graph, batch, ctx)` is what `morphc train` holds at its peak, in float32:

- weights (parameters and buffers), their gradients, and AdamW's two moments (2x weights);
- the trainer's rollback snapshot (a copy of the weights and of the AdamW moments, kept so a
  non-finite loss can be undone), and the copy a checkpoint write makes (the same size again,
  only while no activations are alive, so the peak counts the larger of the two);
- activations for one (batch, ctx) batch: for every op, the elements per token that autograd
  keeps for the backward pass (`Op.saved_per_token`, declared by each op), x batch x ctx x 4 bytes; attention keeps
  its scores and probabilities, heads x ctx per token (T^2 per head for a sequence: the math
  kernel's count, an upper bound for the fused kernels); the unembed keeps its logits, their
  log-softmax and gradient (3 x vocab per token).

It is a rough model (within a factor of about 2 of what torch allocates, on the high side), good
for refusing a run that cannot fit before it takes the machine's memory with it.
`available_memory(device)` reads what the machine has: /proc/meminfo's MemAvailable, lowered
by a cgroup memory limit, or torch.cuda.mem_get_info for a cuda device.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import MorphError
from ..ops import get_op

FLOAT = 4  # bytes per float32
MiB, GiB = 2**20, 2**30


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes, by what holds them. `total` is the estimated peak."""

    params: int
    batch: int
    ctx: int
    weights: int
    grads: int
    optimizer: int
    snapshot: int
    activations: int
    checkpoint: int

    @property
    def total(self) -> int:
        return (self.weights + self.grads + self.optimizer + self.snapshot
                + max(self.activations, self.checkpoint))

    def parts(self) -> str:
        return (f"weights {fmt_bytes(self.weights)}, grads {fmt_bytes(self.grads)}, AdamW "
                f"{fmt_bytes(self.optimizer)}, rollback copy {fmt_bytes(self.snapshot)}, "
                f"activations {fmt_bytes(self.activations)}")

    def to_dict(self) -> dict:
        return {"total_bytes": self.total, "batch": self.batch, "ctx": self.ctx,
                **{k: getattr(self, k) for k in ("weights", "grads", "optimizer", "snapshot",
                                                 "activations", "checkpoint")}}


def weight_elements(graph) -> tuple[int, int]:
    """(parameter numbers, buffer numbers) of a graph."""
    bufs = sum(math.prod(s) for _, d in graph.nodes() for s in d.get("buffer_shapes", {}).values())
    return graph.n_params(), bufs


def activation_elements(graph, ctx: int) -> int:
    """Elements per token kept for backward by a forward pass at context `ctx`, plus the
    token ids and targets (int64: 2 floats each)."""
    total = 4
    for _, d in graph.nodes():
        if d.get("kind") != "op":
            continue
        out = d.type.channels or 0
        total += get_op(d.op).saved_per_token(d.get("resolved") or {}, out, ctx)
    return total


def train_memory(graph, batch: int, ctx: int) -> MemoryEstimate:
    """The estimated peak memory of training `graph` on (batch, ctx) batches (see the module
    docstring for what is counted)."""
    params, bufs = weight_elements(graph)
    w = (params + bufs) * FLOAT
    p = params * FLOAT
    return MemoryEstimate(params=params, batch=batch, ctx=ctx, weights=w, grads=p,
                          optimizer=2 * p, snapshot=w + 2 * p,
                          activations=activation_elements(graph, ctx) * batch * ctx * FLOAT,
                          checkpoint=w + 2 * p)


def hold_memory(graph, batch: int = 2, ctx: int = 16, copies: int = 1) -> int:
    """Bytes to hold `copies` of `graph`'s weights and run it forward on a small (batch, ctx)
    batch with every node's output kept (what `morphc grow` does to check a rewrite; the
    grown model counts twice: its fresh init and the transferred tensors coexist)."""
    params, bufs = weight_elements(graph)
    return (copies * (params + bufs) * FLOAT
            + activation_elements(graph, ctx) * batch * ctx * FLOAT)


def train_shape(graph) -> tuple[int, int]:
    """(batch, ctx) a spec trains at: its train section's values (defaults 16 and 128), with
    ctx capped at the model's pos_embed context. Lenient: bad values fall back to defaults."""
    train = graph.sections.get("train") or {}

    def num(key: str, default: int) -> int:
        v = train.get(key)
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and 1 <= v < 2**63
        return int(v) if ok else default

    batch, ctx = num("batch", 16), num("ctx", 128)
    return batch, min(ctx, graph.ctx or ctx)


def fmt_bytes(n: int) -> str:
    """1536 -> '0.0 MiB'; 3 * 2**30 -> '3.0 GiB'."""
    if n >= GiB:
        return f"{n / GiB:,.1f} GiB"
    return f"{n / MiB:.1f} MiB"


# --------------------------------------------------------------------------- the machine

def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cgroup_room() -> int | None:
    """Room left under this process's cgroup memory limit (v2, then v1), if it has one."""
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                         ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                          "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        lim, used = _read_int(limit), _read_int(usage)
        if lim is not None and used is not None and lim < 2**60:
            return max(0, lim - used)
    return None


def available_memory(device: str = "cpu") -> tuple[int | None, str]:
    """(bytes this process can still allocate, where the number comes from); None if unknown."""
    if str(device).startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free), f"free memory on {device}"
    avail, source = None, "MemAvailable in /proc/meminfo"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        avail = None
    if avail is None and hasattr(os, "sysconf"):
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
            source = "free physical memory"
        except (OSError, ValueError):
            avail = None
    room = _cgroup_room()
    if room is not None and (avail is None or room < avail):
        avail, source = room, "room under the cgroup memory limit"
    return avail, source


class MemoryLimitError(MorphError):
    """The estimated memory of a run exceeds what the machine has."""


def ensure_fits(needed: int, what: str, *, device: str = "cpu", force: bool = False,
                flag: str = "--force-memory", detail: str = "",
                advice: str = "use a smaller model, batch or ctx") -> None:
    """Raise MemoryLimitError when `needed` bytes exceed the available memory (unless
    `force`, or the available memory cannot be read)."""
    if force:
        return
    avail, source = available_memory(device)
    if avail is None or needed <= avail:
        return
    raise MemoryLimitError(
        f"{what} needs about {needed / GiB:,.1f} GiB{detail}, but only {avail / GiB:,.1f} GiB is "
        f"available ({source})",
        hint=f"{advice}; or pass {flag} to try anyway")
