"""Verifiers: convexity by composition, causality, lane isolation (and identity of rewrites).

`static_checks(graph)` runs on every build/compile (from `morphdsl.api.build`): it raises a
`VerifyError` (with the spec location and the IR node) for the first convex region that is not
proven convex or the first op that crosses lanes inside a partition. It is cheap: one pass over
the DAG per convex region. Causality is checked by `causality(graph)` and `morphc verify`, not on
build, since non-causal attention is a legitimate encoder construct.
"""
from __future__ import annotations

from ..ir.graph import MorphGraph
from .causality import ProbeReport, causality, causality_probe
from .convexity import RegionCurvature, check_convexity, curvatures
from .dcp import Curv, analyze, compose, find_region, regions
from .jensen import JensenReport, jensen
from .lanes import LaneReport, check_lanes, lane_jacobian, lane_probe
from .subgraph import region_function, subfunction

try:
    from .identity import IdentityReport, identity  # noqa: F401
except ImportError:
    pass


def static_checks(graph: MorphGraph) -> None:
    """Raise `VerifyError` for the first violated static property (lanes, then convexity)."""
    check_lanes(graph)
    check_convexity(graph)


__all__ = ["static_checks", "check_convexity", "check_lanes", "curvatures", "causality",
           "causality_probe", "lane_probe", "lane_jacobian", "jensen", "region_function", "subfunction", "regions",
           "find_region", "analyze", "compose", "Curv", "RegionCurvature", "JensenReport",
           "LaneReport", "ProbeReport"]
