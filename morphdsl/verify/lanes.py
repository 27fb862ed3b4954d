"""Lane isolation: inside `partition(lanes = H)`, lane h's channels depend only on lane h's
channels, except through a declared mixer (`mix`, channel map `mixer`).

Static: each op's `channel_map(resolved)` says how it moves channels; `elementwise` and `lane`
(per-lane, with a lane count that splits every enclosing partition's lanes) keep lanes apart,
`mixer` is the declared crossing, anything else -> `VerifyError`. A nested partition must split
each lane of the partition around it further (its lane count a multiple of the outer one), so
the lanes of every enclosing partition stay apart inside it.

Dynamic: `lane_probe` cuts a partition at its mixers into segments — from the partition input or
a mixer output to the partition output or a mixer input, along paths that cross no mixer — and
checks that every off-diagonal lane block of each segment's Jacobian is zero.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import VerifyError
from ..ir.graph import MorphGraph
from ..ops import get_op
from .dcp import RegionIO, regions
from .subgraph import CutFunction, converted

HINT = ("let the op run per lane (drop `lanes = 1`), or cross lanes only with "
        "`mix(kind = sinkhorn)`")


def _partitions(d: dict) -> list:
    """The partitions around a node, outermost first, as (region, path)."""
    return [(reg, p) for reg, p in d.get("regions", []) if getattr(reg, "kind", None) == "partition"]


def _check_nesting(key: str, d: dict) -> None:
    parts = _partitions(d)
    for (outer, _), (inner, path) in zip(parts, parts[1:]):
        L, n = outer.attrs["lanes"], inner.attrs["lanes"]
        if n % L:
            raise VerifyError(f"partition(lanes = {n}) inside partition(lanes = {L}) would merge its "
                              f"lanes: a nested partition must split each of the {L} lanes further",
                              inner.span, node=path or key,
                              hint=f"give the nested partition a multiple of {L} lanes "
                                   f"({L}, {2 * L}, ...), or cross lanes only with `mix(kind = sinkhorn)`")


def check_lanes(g: MorphGraph) -> None:
    """Raise `VerifyError` at the first op that crosses the lanes of a partition around it
    (or the first nested partition that merges the lanes of the one around it)."""
    for key, d in g.nodes():
        if d.kind != "op" or not d.get("lanes"):
            continue
        _check_nesting(key, d)
        cm = get_op(d.op).channel_map(d.resolved)
        if cm in ("elementwise", "mixer"):
            continue
        own = d.resolved.get("lanes") or 1
        for reg, _ in _partitions(d):
            L = reg.attrs["lanes"]
            if cm == "lane" and own % L == 0:
                continue  # a finer split than the partition's keeps its lanes apart too
            shown = f"{d['op']}(lanes = {d['args']['lanes']})" if "lanes" in d.args else f"`{d['op']}`"
            raise VerifyError(f"{shown} mixes lanes inside partition(lanes = {L}): use a declared mixer",
                              d.get("span"), node=g.written(key), hint=HINT)


@dataclass
class LaneReport:
    """The lane block structure of one segment of a partition."""

    path: str
    lanes: int
    start: str                       # the node whose value enters the segment (input or a mixer)
    upto: str                        # the node whose output was probed (output or a mixer input)
    max_cross: float                 # largest |d out_lane_i / d in_lane_j|, i != j
    max_own: float                   # largest |d out_lane_i / d in_lane_i|
    ok: bool
    leaks: list = field(default_factory=list)  # (out lane, in lane) pairs with nonzero blocks

    def as_dict(self):
        return dict(self.__dict__)


@dataclass
class Segments:
    """A partition cut at its mixers: `sources` (input, mixer outputs) feed `sinks` (output,
    mixer inputs); `pairs` are the (source, sink) joined by a path that crosses no mixer."""

    rio: RegionIO
    lanes: int
    sources: list
    sinks: list
    pairs: list


def _is_mixer(d: dict) -> bool:
    return d.kind == "op" and get_op(d.op).channel_map(d.resolved) == "mixer"


def segments(g: MorphGraph) -> list[Segments]:
    """The segments of every partition with a single input, in order."""
    out = []
    for rio in regions(g):
        if getattr(rio.region, "kind", None) != "partition" or rio.input is None:
            continue
        mixers = [k for k in rio.keys if _is_mixer(g.dag.nodes[k])]
        sources = [rio.input, *mixers]
        sinks = [k for k in dict.fromkeys([*(g.dag.nodes[m].inputs[0] for m in mixers), rio.output])
                 if k not in sources]
        pairs = []
        for t in sinks:
            seen, todo = set(), [t]
            while todo:  # walk back from the sink, stopping at sources
                k = todo.pop()
                if k in seen:
                    continue
                seen.add(k)
                if k not in sources:
                    todo.extend(g.dag.nodes[k].inputs)
            pairs += [(s, t) for s in sources if s in seen]
        out.append(Segments(rio, rio.region.attrs["lanes"], sources, sinks, pairs))
    return out


def _source_values(module, seg: Segments, x: torch.Tensor) -> list[torch.Tensor]:
    """The value at each source when the partition input is x (mixer outputs by a forward)."""
    if len(seg.sources) == 1:
        return [x]
    with torch.no_grad():
        return [x, *CutFunction(module, [seg.sources[0]], seg.sources[1:])(x)]


def lane_jacobian(module, x: torch.Tensor, path: str | None = None, segment: int = 0):
    """Jacobian (T, C_out, T, C_in) of one segment of a partition at partition input x
    (1, T, C_in), in float64, with mixer outputs held at their values; `path` picks the
    partition (default: the first), `segment` the (source, sink) pair. Returns (J, (path, L, upto))."""
    segs = [s for s in segments(module.morph_graph) if path is None or s.rio.path == path]
    if not segs or segment >= len(segs[0].pairs):
        raise VerifyError(f"no partition {f'`{path}` ' if path else ''}to probe")
    seg = segs[0]
    src, sink = seg.pairs[segment]
    m = converted(module, torch.float64)
    held = _source_values(m, seg, x.to(torch.float64))
    i = seg.sources.index(src)
    f = CutFunction(m, seg.sources, [sink])

    def fn(v):
        return f(*held[:i], v[None], *held[i + 1:])[0][0]

    J = torch.autograd.functional.jacobian(fn, held[i][0])
    return J, (seg.rio.path, seg.lanes, sink)


def lane_probe(module, T: int = 3, seed: int = 0, tol: float = 1e-9) -> list[LaneReport]:
    """For every segment of every partition of a compiled model, its lane block structure.

    One vector-Jacobian product per (sink, output lane i), with a random cotangent on lane i,
    gives the gradient in every source: block (i, j) of a segment is nonzero (almost surely) iff
    some output of lane i depends on input lane j along a path that crosses no mixer. A width
    that does not split into the lanes, or a non-finite gradient, counts as a leak."""
    g = module.morph_graph
    m = converted(module, torch.float64)
    gen = torch.Generator().manual_seed(seed)
    out = []
    for seg in segments(g):
        L = seg.lanes
        C = g.dag.nodes[seg.rio.input].type.channels
        x = torch.randn(1, T, C, generator=gen, dtype=torch.float64)
        xs = [v.detach().requires_grad_(True) for v in _source_values(m, seg, x)]
        ys = CutFunction(m, seg.sources, seg.sinks)(*xs)
        for t, y in zip(seg.sinks, ys):
            srcs = [s for s, t2 in seg.pairs if t2 == t]
            idx = [seg.sources.index(s) for s in srcs]
            Co = y.shape[-1]
            widths = [xs[i].shape[-1] for i in idx]
            if Co % L or any(w % L for w in widths):
                out += [LaneReport(seg.rio.path, L, s, t, float("inf"), 0.0, False, [])
                        for s in srcs]  # the lanes are not even defined here
                continue
            B = torch.zeros(len(idx), L, L, dtype=torch.float64)
            for i in range(L):
                u = torch.zeros_like(y).view(*y.shape[:-1], L, Co // L)
                u[..., i, :] = torch.randn(u[..., i, :].shape, generator=gen, dtype=torch.float64)
                gs = torch.autograd.grad(y, [xs[k] for k in idx], u.view_as(y), retain_graph=True,
                                         allow_unused=True)
                for n, gx in enumerate(gs):
                    if gx is not None:
                        blk = gx.abs().view(T, L, -1).amax(dim=(0, 2))
                        B[n, i] = blk.nan_to_num(nan=float("inf"))
            out += [_report(seg.rio.path, L, s, t, B[n], tol) for n, s in enumerate(srcs)]
    return out


def _report(path: str, L: int, start: str, upto: str, B: torch.Tensor, tol: float) -> LaneReport:
    eye = torch.eye(L, dtype=torch.bool)
    cross = B.masked_fill(eye, 0)
    own = float(B[eye].max())
    scale = max(own, 1.0) if own == own and own != float("inf") else 1.0
    leaks = [(int(i), int(j)) for i, j in (cross > tol * scale).nonzero().tolist()]
    ok = not leaks and own != float("inf")
    return LaneReport(path, L, start, upto, float(cross.max()), own, ok, leaks)
