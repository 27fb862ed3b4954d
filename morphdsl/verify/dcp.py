"""Convexity by composition (CVXPY's DCP rule) over the IR DAG, and region input/output lookup.

`analyze(g, inp, keys)` gives every node in `keys` a curvature (constant | affine | convex |
concave | unknown) *as a function of the value at node `inp`*, from its op's `facts(resolved)`
and its inputs' curvatures and signs. The rule is written once, in `compose`:

    f(g1..gk) is convex  if f is convex/affine and every gi is affine, or convex where f is
                         nondecreasing in it, or concave where f is nonincreasing in it;
    concave is the mirror image; both = affine; no input-dependent argument = constant.
Products need all but one factor constant (of known sign); a divisor must be constant.
Nodes made by scalar affine ops (add, sub, scale, ...) are kept as exact sums of the nodes below
them (`sums.py`), so like terms cancel before the rule sees them: x + (-0.5) x is 0.5 x.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..ir.graph import MorphGraph
from ..ops import get_op
from ..ops.registry import Facts
from .sums import Sum, combine, mixed_why, sum_curvature

FLIP = {"nonneg": "nonpos", "nonpos": "nonneg", "unknown": "unknown"}
MAX_TERMS = 32  # atoms kept in one exact sum; beyond it the sum is a new atom (linear time)
NEG_CURV = {"convex": "concave", "concave": "convex"}


@dataclass(frozen=True)
class Curv:
    """The curvature of one node in a region's input; `why` explains an `unknown`."""

    curvature: str
    sign: str = "unknown"
    why: str = ""
    culprit: str | None = None  # the lowest node where the curvature became unknown

    @property
    def is_convex(self) -> bool:
        return self.curvature in ("constant", "affine", "convex")


@dataclass
class RegionIO:
    """A region of the spec as a set of DAG nodes with one input and one output node."""

    region: object          # Region or OpInst
    path: str               # its scope path
    keys: list[str]         # member nodes, topological order
    input: str | None       # the node whose value enters the region (None: several)
    output: str

    @property
    def kind(self) -> str:
        return getattr(self.region, "kind", None) or f"op {self.region.op}"

    @property
    def span(self):
        return self.region.span


def regions(g: MorphGraph) -> list[RegionIO]:
    """Every region recorded on the DAG nodes (named groups, partitions, convex regions/ops)."""
    members: dict[int, list] = {}
    for key, d in g.nodes():
        for reg, path in d.get("regions", []):
            members.setdefault(id(reg), [reg, path, []])[2].append(key)
    out = []
    for reg, path, keys in members.values():
        inside = set(keys)
        ins = {p for k in keys for p in g.dag.nodes[k].inputs if p not in inside}
        out.append(RegionIO(reg, path, keys, ins.pop() if len(ins) == 1 else None, keys[-1]))
    return out


def find_region(g: MorphGraph, path: str) -> RegionIO | None:
    """The region (or op) at a dotted path; the outermost when several share it."""
    for r in regions(g):
        if r.path == path:
            return r
    if path in g.dag:
        d = g.dag.nodes[path]
        if d.kind == "op":
            return RegionIO(None, path, [path], d.inputs[0] if len(d.inputs) == 1 else None, path)
    return None


def _mono(f: Facts, i: int, n: int, sign: str) -> str:
    def pick(t):
        return t[i] if len(t) == n else t[min(i, len(t) - 1)]

    if sign == "nonneg" and f.mono_nonneg is not None:
        return pick(f.mono_nonneg)
    if sign == "nonpos" and f.mono_nonpos is not None:
        return pick(f.mono_nonpos)
    return pick(f.mono)


def _sign(op: str, r: dict, f: Facts, args: list[Curv]) -> str:
    if f.sign != "unknown":
        return f.sign
    signs = {a.sign for a in args}
    if op in ("add", "mean", "concat", "identity", "dropout", "slice", "mix", "max", "leaky_relu"):
        if op == "max" and "nonneg" in signs:
            return "nonneg"
        return signs.pop() if len(signs) == 1 else "unknown"
    if op == "neg":
        return FLIP[args[0].sign]
    if op == "scale":
        return args[0].sign if r["by"] >= 0 else FLIP[args[0].sign]
    if op == "shift":
        s = args[0].sign
        return s if (s == "nonneg" and r["by"] >= 0) or (s == "nonpos" and r["by"] <= 0) else "unknown"
    if op in ("mul", "div"):
        if "unknown" in signs:
            return "unknown"
        return "nonneg" if sum(a.sign == "nonpos" for a in args) % 2 == 0 else "nonpos"
    return "unknown"


def _scaled(x: Curv, by_sign: str, what: str) -> tuple[str, str]:
    """Curvature of x times (or divided by) a constant of sign `by_sign`, and a reason."""
    if x.curvature in ("constant", "affine"):
        return x.curvature, ""
    if by_sign == "nonneg":
        return x.curvature, ""
    if by_sign == "nonpos":
        return NEG_CURV.get(x.curvature, x.curvature), ""
    return "unknown", f"{what} a constant of unknown sign"


def compose(op: str, r: dict, args: list[Curv]) -> tuple[str, str]:
    """(curvature, why) of op(args) from the op's facts and its arguments' curvatures."""
    f = get_op(op).facts(r)
    live = [i for i, a in enumerate(args) if a.curvature != "constant"]
    if not live:
        return "constant", ""
    if f.bilinear:
        if len(live) > 1:
            return "unknown", "product of two input-dependent terms"
        const = [a for i, a in enumerate(args) if i != live[0]]
        sign = _sign("mul", r, f, const) if const else "nonneg"
        return _scaled(args[live[0]], sign, "product with")
    if f.divides:
        if any(i > 0 for i in live):
            return "unknown", "division by an input-dependent value"
        return _scaled(args[0], args[1].sign if len(args) > 1 else "nonneg", "division by")
    if f.curvature == "constant":
        return "constant", ""
    if f.curvature == "unknown":
        return "unknown", f.why or f"{op} is neither convex nor concave"
    n = len(args)
    ok_cvx = f.curvature in ("convex", "affine")
    ok_ccv = f.curvature in ("concave", "affine")
    bad = []    # (argument, monotonicity) that breaks the curvature f needs
    terms = []  # (argument curvature, curvature it brings) for the message of a mixed sum
    for i in live:
        a, m = args[i], _mono(f, i, n, args[i].sign)
        if a.curvature == "affine":
            continue
        up = (a.curvature == "convex" and m == "incr") or (a.curvature == "concave" and m == "decr")
        down = (a.curvature == "concave" and m == "incr") or (a.curvature == "convex" and m == "decr")
        if up or down:
            terms.append((a.curvature, "convex" if up else "concave"))
        if (f.curvature == "convex" and not up) or (f.curvature == "concave" and not down) \
                or not (up or down):
            bad.append((a, m))
        ok_cvx, ok_ccv = ok_cvx and up, ok_ccv and down
    if ok_cvx and ok_ccv:
        return "affine", ""
    if ok_cvx:
        return "convex", ""
    if ok_ccv:
        return "concave", ""
    if bad and bad[0][1] == "none":
        a = bad[0][0]
        return "unknown", f.why or f"{op} is not monotone, so its argument must be affine, but it is {a.curvature}"
    if not bad:  # an affine op of a convex and a concave term (or convex minus convex)
        return "unknown", mixed_why(op, terms)
    a, m = bad[0]
    word = "nondecreasing" if m == "incr" else "nonincreasing"
    return "unknown", f"{op} is {f.curvature} and {word}, but its argument is {a.curvature}"


def _linear(op: str, r: dict, n: int):
    """(coefficients, offset) when the op is a scalar affine map of its n inputs, else None."""
    lc = getattr(get_op(op), "linear_coeffs", None)
    res = lc(r) if lc else None
    if res is None or len(res[0]) != n or not all(math.isfinite(c) for c in (*res[0], res[1])):
        return None
    return res


def _node(g: MorphGraph, k: str, out: dict, sums: dict) -> tuple[Curv, Sum]:
    """The curvature of node k and its exact sum, from those of its inputs."""
    d = g.dag.nodes[k]
    args = [out.get(i, Curv("constant")) for i in d.inputs]
    if d.kind != "op":
        return Curv("constant"), Sum.atom(k)
    f = get_op(d.op).facts(d.resolved)
    lin = _linear(d.op, d.resolved, len(args))
    if lin is not None:
        s = combine(lin[0], lin[1], [sums.get(i) or Sum.atom(i) for i in d.inputs])
        curv, sign, why, atom = sum_curvature(d.op, s, lambda a: out.get(a, Curv("constant")))
        if len(s.terms) > MAX_TERMS:  # a long residual stream: k becomes an atom (still sound)
            s = Sum.atom(k)
        if atom is not None:
            a = out[atom]
            return Curv("unknown", "unknown", a.why, a.culprit), s
        if sign == "unknown":
            sign = _sign(d.op, d.resolved, f, args)
        return Curv(curv, sign, why, k if curv == "unknown" else None), s
    curv, why = compose(d.op, d.resolved, args)
    culprit = next((a.culprit for a in args if a.curvature == "unknown"), None)
    if curv == "unknown" and culprit is not None:
        first = next(a for a in args if a.culprit == culprit)
        return Curv("unknown", "unknown", first.why, culprit), Sum.atom(k)
    sign = _sign(d.op, d.resolved, f, args)
    return Curv(curv, sign, why, k if curv == "unknown" else None), Sum.atom(k)


def analyze(g: MorphGraph, inp: str, keys, cache: dict | None = None) -> dict[str, Curv]:
    """Curvature of each node in `keys` (topological order) as a function of node `inp`."""
    cache = {} if cache is None else cache
    out: dict[str, Curv] = {inp: Curv("affine", "unknown")}
    sums: dict[str, Sum] = {}
    for k in keys:
        if k == inp:
            continue
        ck = (inp, k)
        if ck not in cache:
            cache[ck] = _node(g, k, out, sums)
        out[k], sums[k] = cache[ck]
    return out


def region_curvature(g: MorphGraph, rio: RegionIO, cache: dict | None = None) -> Curv:
    """The curvature of a region's output in its input (`unknown` with the lowest culprit)."""
    if rio.input is None:
        return Curv("unknown", why="the region has more than one input")
    return analyze(g, rio.input, rio.keys, cache)[rio.output]
