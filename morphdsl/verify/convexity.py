"""The static convexity verifier: every region or op marked `convex` must be proven convex in
its input by the composition rule (`dcp.py`); otherwise a `VerifyError` names the lowest node
where the proof fails, the rule that failed and that node's spec location."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import VerifyError
from ..ir.graph import MorphGraph
from .dcp import Curv, RegionIO, region_curvature, regions

HINT = ("a convex region may only use convex ops that are nondecreasing in convex arguments "
        "(relu, softplus, exp, max, hull/petal on affine inputs, `linear(nonneg = true)`, ...)")


@dataclass
class RegionCurvature:
    path: str
    kind: str
    convex_declared: bool
    curvature: str
    why: str
    node: str | None      # the lowest failing node, when not proven
    span: object          # that node's span (or the region's)

    @property
    def ok(self) -> bool:
        return not self.convex_declared or self.curvature in ("constant", "affine", "convex")

    def as_dict(self) -> dict:
        return {"path": self.path, "kind": self.kind, "convex": self.convex_declared,
                "curvature": self.curvature, "why": self.why, "node": self.node,
                "span": str(self.span) if self.span else None, "ok": self.ok}


def _result(g: MorphGraph, rio: RegionIO, c: Curv) -> RegionCurvature:
    node, why = c.culprit, c.why
    if c.curvature == "concave":
        node, why = rio.output, "the region is concave in its input, not convex"
    span = g.dag.nodes[node].get("span") if node else None
    node = g.written(node) if node else node
    return RegionCurvature(rio.path, rio.kind, bool(getattr(rio.region, "convex", False)),
                           c.curvature, why, node, span or rio.span)


def curvatures(g: MorphGraph, only_convex: bool = False) -> list[RegionCurvature]:
    """The curvature of every region (named groups, partitions, convex regions and ops)."""
    cache: dict = {}
    out = []
    for rio in regions(g):
        if only_convex and not getattr(rio.region, "convex", False):
            continue
        out.append(_result(g, rio, region_curvature(g, rio, cache)))
    return out


def check_convexity(g: MorphGraph) -> list[RegionCurvature]:
    """Raise `VerifyError` for the first region marked `convex` that is not proven convex."""
    res = curvatures(g, only_convex=True)
    for r in res:
        if not r.ok:
            where = f"`{r.path}`" if r.path else "the model"
            raise VerifyError(f"{where} is marked convex but is {r.curvature}: {r.why}",
                              r.span, hint=HINT, node=r.node)
    return res
