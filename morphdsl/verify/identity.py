"""The identity verifier: does a grown module compute the same function as before?

`identity(before, after)` runs both (eval mode) on the same random batch and compares outputs.
On a mismatch it re-runs both fx graphs node by node (torch.fx.Interpreter), records each node's
output under `node.meta['morph_path']`, and names the first IR node (in the AFTER graph's
topological order) whose output differs from the BEFORE graph's node of the same path (only
same-shape pairs are compared; nodes that exist only after growth are skipped).

"Same" is normwise: max |after - before| <= atol + rtol * max |before| (`close`). Float32
round-off of a reordered sum (a widened matmul or norm adds its terms in another order) is
bounded by the size of the terms, not of each output element, so an elementwise test
(`torch.allclose`) fails exact rewrites on trained models whose logits are large while most
are near zero (3.3e-5 on logits of size ~10 was a rejected `widen_embed`). A wrong transfer
changes the output by a fraction of its scale, orders of magnitude above rtol = 1e-5.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.fx as fx


@dataclass
class IdentityReport:
    ok: bool
    max_abs_err: float
    node: str | None = None       # first divergent IR node path
    span: str | None = None       # its spec location
    rewrite: object = None        # the last rewrite in after.morph_graph.history
    node_err: float | None = None

    def __str__(self) -> str:
        s = f"identity {'ok' if self.ok else 'FAILED'}: max |after - before| = {self.max_abs_err:.3g}"
        if self.node:
            s += f"; first divergent node `{self.node}`" + (f" ({self.span})" if self.span else "")
            s += f", error {self.node_err:.3g}"
        return s


class _Recorder(fx.Interpreter):
    def __init__(self, gm):
        super().__init__(gm)
        self.out: dict = {}

    def run_node(self, n):
        v = super().run_node(n)
        p = n.meta.get("morph_path")
        if p is not None and isinstance(v, torch.Tensor):
            self.out[p] = v.detach()
        return v


def close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5, rtol: float = 1e-5) -> bool:
    """Normwise closeness: max |a - b| <= atol + rtol * max |b| (same shapes; NaN is never close)."""
    if a.shape != b.shape:
        return False
    a, b = a.to(b.device).float(), b.float()
    err = (a - b).abs().max() if a.numel() else torch.tensor(0.0)
    scale = b.abs().max() if b.numel() else torch.tensor(0.0)
    return bool(err <= atol + rtol * scale)


def sample_inputs(module, batch=2, seq=16, seed=0):
    """A random batch for a compiled module: token ids, or feature vectors."""
    from ..compile.inputs import example_input

    return example_input(module.morph_graph, batch, seq, torch.Generator().manual_seed(seed))


def _dev(module):
    p = next(iter(module.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def identity(before, after, inputs=None, atol=1e-5, rtol=1e-5, batch=2, seq=16, seed=0) -> IdentityReport:
    x = sample_inputs(before, batch, seq, seed) if inputs is None else inputs
    x = x.to(_dev(before))
    modes = before.training, after.training
    before.eval(), after.eval()
    try:
        yb, ya = before(x), after(x.to(_dev(after)))
        hist = getattr(getattr(after, "morph_graph", None), "history", [])
        rw = hist[-1] if hist else None
        err = (ya.to(yb.device) - yb).abs().max().item() if ya.shape == yb.shape else float("inf")
        if close(ya, yb, atol, rtol):
            return IdentityReport(True, err, rewrite=rw)
        rb, ra = _Recorder(before), _Recorder(after)
        rb.run(x)
        ra.run(x.to(_dev(after)))
        for path in after.morph_graph.order:
            if path not in ra.out or path not in rb.out or ra.out[path].shape != rb.out[path].shape:
                continue
            a, b = ra.out[path], rb.out[path].to(ra.out[path].device)
            if not close(a, b, atol, rtol):
                sp = after.morph_graph.dag.nodes[path].get("span")
                return IdentityReport(False, err, path, str(sp) if sp else None, rw, (a - b).abs().max().item())
        return IdentityReport(False, err, after.morph_graph.output, None, rw, err)
    finally:
        before.train(modes[0]), after.train(modes[1])
