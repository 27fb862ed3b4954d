"""Adding lanes to a partition: the shared pieces of every op's rule (`Op.add_lanes`).

`add_lane(n)` turns a partition of L lanes over width C (lane width c = C / L) into L + n lanes
over C + n c, new channels appended. Each op says how its tensors follow, in
`Op.add_lanes(r, ctx) -> LaneGrowth | None` (None: it cannot keep the function):

    inside the partition   per-lane tensors carry the lane dim first (L, ...): old lanes are
                           copied, new lanes get a fresh init (their own heads, units, petals);
                           per-channel tensors (a norm's gains) keep the old channels; the
                           lane-scaled size (heads, hidden, out) grows with the lanes
    the mixer              its logits get -1e4 between old and new lanes (exp underflows to 0,
                           so the old block of the doubly-stochastic matrix is unchanged)
    outside                embeddings gain columns (zero when a tied unembed reads them back),
                           an untied unembed zero input columns, channel-wise ops nothing
Old lanes never read new ones (lane isolation), and nothing downstream reads the new channels
until training moves the unembedding's zero columns: the function is unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class LaneCtx:
    L: int              # lanes before
    L2: int             # lanes after
    C: int              # width before
    C2: int             # width after
    inside: bool        # the op runs inside the partition being grown
    tied: bool = False  # the model's unembed is tied to its embed
    args: dict = field(default_factory=dict)  # the op's user arguments (as written)

    @property
    def lanes(self):
        """(old index, new index) along a lane dim: old lanes keep their place."""
        return list(range(self.L)), list(range(self.L))

    @property
    def channels(self):
        """(old index, new index) along a channel dim: old channels keep their place."""
        return list(range(self.C)), list(range(self.C))


@dataclass
class LaneGrowth:
    """An op's lane growth: per tensor (maps per dim, init), and arguments to set."""

    tensors: dict = field(default_factory=dict)   # name -> (maps, init)
    args: dict = field(default_factory=dict)

    def add(self, name: str, maps: tuple, init="random") -> "LaneGrowth":
        self.tensors[name] = (maps, init)
        return self


def per_lane(op, r: dict, ctx: LaneCtx, size_arg: str | None) -> LaneGrowth | None:
    """The rule of an op whose tensors all carry the lane dim first: copy old lanes, fresh new
    ones, and scale `size_arg` (heads, hidden, out) with the lane count (None: the size follows
    the width by itself)."""
    if not ctx.inside:  # (add_lane has refused ops with a lane count of their own)
        return None
    g = LaneGrowth()
    for name in [*op.param_shapes(r), *op.buffer_shapes(r)]:
        g.add(name, (ctx.lanes,))
    if size_arg is not None:
        g.args[size_arg] = r[size_arg] // ctx.L * ctx.L2
    return g
