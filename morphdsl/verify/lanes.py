"""Lane isolation: inside `partition(lanes = H)`, lane h's channels depend only on lane h's
channels, except through a declared mixer (`mix`, channel map `mixer`).

Static: each op's `channel_map(resolved)` says how it moves channels; `elementwise` and `lane`
keep lanes apart, `mixer` is the declared crossing, `full` crosses lanes -> `VerifyError`.
Dynamic: `lane_probe` takes the Jacobian of a partition's output (up to its first mixer) in its
input and checks that every off-diagonal lane block is zero.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import VerifyError
from ..ir.graph import MorphGraph
from ..ops import get_op
from .dcp import regions
from .subgraph import subfunction


def check_lanes(g: MorphGraph) -> None:
    """Raise `VerifyError` at the first op that crosses lanes inside a partition."""
    for key, d in g.nodes():
        if d["kind"] != "op" or not d.get("lanes"):
            continue
        cm = get_op(d["op"]).channel_map(d["resolved"])
        own = d["resolved"].get("lanes") or 1
        if cm in ("elementwise", "mixer") or (cm == "lane" and own % d["lanes"] == 0):
            continue  # a finer split than the partition's keeps its lanes apart too
        shown = f"{d['op']}(lanes = {d['args']['lanes']})" if "lanes" in d["args"] else f"`{d['op']}`"
        where = f"partition(lanes = {d['lanes']})"
        raise VerifyError(f"{shown} mixes lanes inside {where}: use a declared mixer",
                          d.get("span"), node=key,
                          hint="let the op run per lane (drop `lanes = 1`), or cross lanes "
                               "only with `mix(kind = sinkhorn)`")


@dataclass
class LaneReport:
    path: str
    lanes: int
    upto: str                        # the node whose output was probed
    max_cross: float                 # largest |d out_lane_i / d in_lane_j|, i != j
    max_own: float                   # largest |d out_lane_i / d in_lane_i|
    ok: bool
    leaks: list = field(default_factory=list)  # (out lane, in lane) pairs with nonzero blocks

    def as_dict(self):
        return dict(self.__dict__)


def _segments(g: MorphGraph):
    """(path, lanes, input key, last key before the first mixer) per partition."""
    for rio in regions(g):
        if getattr(rio.region, "kind", None) != "partition" or rio.input is None:
            continue
        upto = rio.output
        for i, k in enumerate(rio.keys):
            if g.dag.nodes[k]["kind"] == "op" and g.dag.nodes[k]["op"] == "mix":
                upto = rio.keys[i - 1] if i else None
                break
        if upto is not None:
            yield rio.path, rio.region.attrs["lanes"], rio.input, upto


def lane_jacobian(module, x: torch.Tensor, path: str | None = None):
    """Jacobian (T, C_out, T, C_in) of a partition (up to its first mixer) at input x (1, T, C_in),
    in float64; `path` picks the partition (default: the first). Returns (J, report fields)."""
    g = module.morph_graph
    segs = [s for s in _segments(g) if path is None or s[0] == path]
    if not segs:
        raise VerifyError(f"no partition {f'`{path}` ' if path else ''}to probe")
    p, L, inp, upto = segs[0]
    f = subfunction(module, inp, upto, dtype=torch.float64)
    J = torch.autograd.functional.jacobian(lambda v: f(v[None])[0], x[0].to(torch.float64))
    return J, (p, L, upto)


def lane_probe(module, T: int = 3, seed: int = 0, tol: float = 1e-9) -> list[LaneReport]:
    """For every partition of a compiled model, the lane block structure of its Jacobian.

    One vector-Jacobian product per output lane i, with a random cotangent on lane i: block
    (i, j) is nonzero (almost surely) iff some output of lane i depends on input lane j."""
    g = module.morph_graph
    gen = torch.Generator().manual_seed(seed)
    out = []
    for path, L, inp, upto in _segments(g):
        f = subfunction(module, inp, upto, dtype=torch.float64)
        C = g.dag.nodes[inp]["type"].channels
        x = torch.randn(1, T, C, generator=gen, dtype=torch.float64, requires_grad=True)
        y = f(x)                                                          # (1, T, Co)
        Co = y.shape[-1]
        B = torch.zeros(L, L, dtype=torch.float64)
        for i in range(L):
            u = torch.zeros_like(y).view(1, T, L, Co // L)
            u[:, :, i] = torch.randn(1, T, Co // L, generator=gen, dtype=torch.float64)
            (gx,) = torch.autograd.grad(y, x, u.view_as(y), retain_graph=True)  # (1, T, C)
            B[i] = gx.abs().view(T, L, C // L).amax(dim=(0, 2))
        eye = torch.eye(L, dtype=torch.bool)
        cross = B.masked_fill(eye, 0)
        scale = max(float(B[eye].max()), 1.0)
        leaks = [(int(i), int(j)) for i, j in (cross > tol * scale).nonzero().tolist()]
        out.append(LaneReport(path, L, upto, float(cross.max()), float(B[eye].max()), not leaks, leaks))
    return out
