"""The Jensen audit: sample x1, x2, lambda and check, in float64,

    f(lam x1 + (1 - lam) x2) <= lam f(x1) + (1 - lam) f(x2) + eps,

reporting the violation rate and the worst gap relative to the output scale. Sampling can miss a
violation (a network near-linear at init passes), so the static rule is the authority; the audit
is evidence that the compiled code computes what the rule proved.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from ..errors import VerifyError
from .subgraph import SubFunction, region_function


@dataclass
class JensenReport:
    n_checks: int
    violations: int
    worst_gap: float      # max over checks of (lhs - rhs) / output scale (negative: slack)
    out_scale: float
    tol: float

    @property
    def rate(self) -> float:
        return self.violations / max(self.n_checks, 1)

    @property
    def ok(self) -> bool:
        return self.violations == 0

    def as_dict(self) -> dict:
        return {"n_checks": self.n_checks, "violations": self.violations, "rate": self.rate,
                "worst_gap": self.worst_gap, "out_scale": self.out_scale, "ok": self.ok}


def _as_float64(f, region):
    if isinstance(f, torch.nn.Module):
        if region is not None:
            return region_function(f, region, torch.float64)
        g = getattr(f, "morph_graph", None)  # read before the copy: deepcopy drops it
        m = copy.deepcopy(f).double().eval()
        if g is not None and g.input_type.channels is None:
            raise VerifyError("the model takes token ids; audit a region of it with `region = path`")
        m.in_dim = g.input_type.channels if g is not None else None
        return m
    return f


def jensen(module_or_callable, n_pairs: int = 256, lambdas=(0.25, 0.5, 0.75), in_dim: int | None = None,
           scale: float = 1.0, seed: int = 0, tol: float = 1e-9, region: str | None = None,
           T: int = 1) -> JensenReport:
    """Audit convexity of a module, a callable, or (with `region`) a region of a compiled model.

    Inputs are (n_pairs, T, in_dim) normal samples times `scale`; every output coordinate is
    checked. A violation is a gap above `tol` times the mean |output| (non-finite outputs, e.g.
    log of a negative number, are skipped)."""
    f = _as_float64(module_or_callable, region)
    in_dim = in_dim or getattr(f, "in_dim", None)
    if not in_dim:
        raise VerifyError(f"region `{region}` takes token ids, not real vectors: nothing to audit"
                          if region is not None else "jensen needs `in_dim` for a plain callable")
    gen = torch.Generator().manual_seed(seed)
    x1 = torch.randn(n_pairs, T, in_dim, generator=gen, dtype=torch.float64) * scale
    x2 = torch.randn(n_pairs, T, in_dim, generator=gen, dtype=torch.float64) * scale
    with torch.no_grad():
        f1, f2 = f(x1), f(x2)                                   # (n, T, C_out)
        both = torch.cat([f1, f2]).abs()
        out_scale = max(float(both[both.isfinite()].mean()) if both.isfinite().any() else 0.0, 1e-12)
        worst, bad, n = -float("inf"), 0, 0
        for lam in lambdas:
            mid = f(lam * x1 + (1 - lam) * x2)
            gap = (mid - (lam * f1 + (1 - lam) * f2)) / out_scale
            worst = max(worst, float(gap.max()))
            bad += int((gap > tol).sum())
            n += gap.numel()
    return JensenReport(n, bad, worst, out_scale, tol)


__all__ = ["jensen", "JensenReport", "SubFunction"]
