"""Exact scalar sums for the convexity rule.

A node made by scalar affine ops — identity, neg, scale, shift, add, sub, mean,
leaky_relu(slope = 1): each op's `linear_coeffs(r) = (c, b)` says y = sum_i c_i x_i + b — is kept
as a sum  sum_k c_k a_k + b  over *atoms* a_k, the nodes below it made by any other op (or the
region input). Its curvature is read off the signs of the coefficients: c a is convex when a is
convex and c > 0, or a is concave and c < 0. So `softplus; residual { scale(by = -0.5) }`, which is
s + (-0.5) s = 0.5 s, is convex, where the term-by-term rule sees "convex + concave".

This is sound: the sum is the function the ops compute (up to rounding), and a term is only
dropped when its coefficient is exactly zero (`x - x`, `scale(by = 0)`).
"""
from __future__ import annotations

from dataclasses import dataclass

NEG = {"convex": "concave", "concave": "convex"}
NEG_SIGN = {"nonneg": "nonpos", "nonpos": "nonneg"}


@dataclass(frozen=True)
class Sum:
    """sum over terms of coefficient * atom, plus offset (terms: atom key -> coefficient)."""

    terms: dict
    offset: float = 0.0

    @staticmethod
    def atom(key: str) -> "Sum":
        return Sum({key: 1.0})


def combine(coeffs, offset: float, parts: list[Sum]) -> Sum:
    """sum_i coeffs[i] * parts[i] + offset, with like terms collected."""
    terms: dict = {}
    total = offset
    for c, p in zip(coeffs, parts):
        for k, v in p.terms.items():
            terms[k] = terms.get(k, 0.0) + c * v
        total += c * p.offset
    return Sum({k: v for k, v in terms.items() if v != 0}, total)


def mixed_why(op: str, terms) -> str:
    """Why an affine combination is neither convex nor concave; `terms` are pairs
    (curvature of the term's atom, curvature of the term as it enters the sum)."""
    up = {a for a, e in terms if e == "convex"}
    down = {a for a, e in terms if e == "concave"}
    same = up & down
    if same:  # c1 f - c2 g with f, g of the same curvature
        c = sorted(same)[0]
        return f"{op} gives {c} minus {c}, which is neither convex nor concave"
    return f"{op} of a convex and a concave term is neither convex nor concave"


def _term_sign(c: float, sign: str) -> str:
    if sign == "unknown":
        return "unknown"
    return sign if c > 0 else NEG_SIGN[sign]


def sum_curvature(op: str, s: Sum, curv_of):
    """(curvature, sign, why, culprit-atom) of a sum; `curv_of(key)` gives an atom's `Curv`.
    culprit-atom is the atom whose unknown curvature decides, else None."""
    live, signs = [], set()
    for k, c in s.terms.items():
        a = curv_of(k)
        signs.add(_term_sign(c, a.sign))
        if a.curvature == "constant":
            continue
        if a.curvature == "unknown":
            return "unknown", "unknown", a.why, k
        live.append((a.curvature, a.curvature if c > 0 or a.curvature == "affine" else NEG[a.curvature]))
    if s.offset > 0:
        signs.add("nonneg")
    elif s.offset < 0:
        signs.add("nonpos")
    sign = signs.pop() if len(signs) == 1 else ("nonneg" if not signs else "unknown")
    effs = {e for _, e in live} - {"affine"}
    if not live:
        return "constant", sign, "", None
    if not effs:
        return "affine", sign, "", None
    if len(effs) == 1:
        return effs.pop(), sign, "", None
    return "unknown", "unknown", mixed_why(op, live), None
