"""Named axes of an op's tensors, and how each may grow or shrink without changing the function.

An op declares its growable axes with `Op.axes(r) -> {name: Axis}`: for each axis (the hidden
units of an MLP, the heads of an attention, the outputs or inputs of a linear, ...), the size in
units, and for every parameter that indexes it, one `Slice`: which dimension, how the dimension
is laid out (`sections` repeats of `units x unit` elements, e.g. q, k, v rows of `qkv` are 3
sections of heads x head_dim), and its role, which fixes what the *new* units' entries start
as so that the function is unchanged:

    "in"    the weights a unit reads its input with (fc rows, q/k/v rows): random, a fresh init
    "bias"  the unit's own bias: zero
    "out"   the weights its output is read with (proj columns): zero, so nothing sees the new
            units until training moves them
    "gate"  a buffer that switches a unit off (a hull's petal gate `alpha`): zero

A grown unit is appended at the end of its section (per lane when the op runs in lanes: then
every parameter has a leading lane dimension and `size` counts units over all lanes). The
generic rewrites (`morphdsl/rewrites/axes.py`) turn these declarations into transfer plans;
`Op.resize(axis, args, r, n)` writes the new size back into the op's arguments. A new op that
declares its axes gets widen_mlp / add_head / prune_units / prune_heads without touching any
rewrite.
"""
from __future__ import annotations

from dataclasses import dataclass

INIT = {"in": "random", "bias": "zero", "out": "zero", "gate": "zero"}


@dataclass(frozen=True)
class Slice:
    """One parameter's dimension along an axis."""

    param: str              # parameter name inside the op, e.g. "fc.weight"
    dim: int                # the dimension (not counting a leading lane dimension)
    role: str               # "in" | "bias" | "out" | "gate"
    sections: int = 1       # the axis repeats this many times along `dim` (q, k, v: 3)
    unit: int = 1           # elements per unit along `dim` (head_dim for heads)

    @property
    def init(self) -> str:
        """What new units' entries start as: "random" (a fresh init) or "zero"."""
        return INIT[self.role]


@dataclass(frozen=True)
class Axis:
    """A growable axis of one op instance."""

    name: str                     # "hidden", "heads", "out", "in", ...
    size: int                     # units, over all lanes
    slices: tuple[Slice, ...]
    lanes: int | None = None      # parameters carry a leading lane dim; units split per lane
    resizable: bool = True        # False: the size follows the input (a linear's `in`)

    @property
    def per_lane(self) -> int:
        return self.size // (self.lanes or 1)


def grow_maps(sl: Slice, old_units: int, new_units: int):
    """(old_idx, new_idx) along `sl.dim` when units per lane go old_units -> new_units (>=):
    every old unit keeps its place within its section, the new ones fill each section's end."""
    o, n = [], []
    u = sl.unit
    for s in range(sl.sections):
        for j in range(old_units * u):
            o.append(s * old_units * u + j)
            n.append(s * new_units * u + j)
    return o, n


def keep_maps(sl: Slice, old_units: int, kept: list[int]):
    """(old_idx, new_idx) along `sl.dim` keeping units `kept` (in that order) of old_units."""
    o, n = [], []
    u, k = sl.unit, len(kept)
    for s in range(sl.sections):
        for i, j in enumerate(kept):
            for e in range(u):
                o.append(s * old_units * u + j * u + e)
                n.append(s * k * u + i * u + e)
    return o, n


def unit_index(sl: Slice, units: int, unit: int) -> list[int]:
    """The indices along `sl.dim` that belong to `unit` (in every section)."""
    u = sl.unit
    return [s * units * u + unit * u + e for s in range(sl.sections) for e in range(u)]
