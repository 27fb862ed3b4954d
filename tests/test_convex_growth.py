"""Convexity survives growth: a proven-convex hull stays convex (statically and by the float64
Jensen audit) after `add_petals`, blending the new petals in, and optimizer steps."""
import pytest
import torch

import morphdsl
from morphdsl.rewrites import blend, grow_model
from morphdsl.verify import jensen, static_checks

SPEC = """
model(features = 6) {
  convex h: hull(petals = 3, width = 8, layers = 2, pool = {pool})
}
"""


@pytest.mark.parametrize("pool", ["max", "logsumexp", "mean", "sum"])
def test_hull_stays_convex_after_add_petals_and_training(pool):
    torch.manual_seed(0)
    m = morphdsl.compile(SPEC.replace("{pool}", pool))
    grown = grow_model(m, "add_petals", target="h", n=2)
    m2 = grown.module
    assert m2.h.alpha.shape[-1] == 5
    static_checks(m2.morph_graph)  # the grown graph is still proven convex
    blend(m2, "h", 0.5)            # new petals half in: alpha is a nonneg constant
    opt = torch.optim.AdamW(m2.parameters(), lr=1e-2)
    x = torch.randn(16, 4, 6)
    y = torch.randn(16, 4, 6)
    for _ in range(20):
        loss = ((m2(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    rep = jensen(m2, n_pairs=128, seed=1)  # the whole model: its input width is read off the graph
    assert rep.ok, rep
    assert rep.rate == 0.0


def test_top_level_growth_api():
    """The issue's interface: morphdsl.grow(graph, op, **args) and morphdsl.grow_model(...)."""
    g = morphdsl.build("specs/gpt_tiny.morph")
    res = morphdsl.grow(g, "add_head", target="blocks.0.attn", n=1)
    assert res.graph.n_params() > g.n_params()
    m = morphdsl.compile(g)
    out = morphdsl.grow_model(m, "widen_mlp", target="blocks.1.mlp", by=8)
    assert out.reports[-1].max_abs_err <= 1e-5
    assert morphdsl.verify.identity(m, out.module).ok
