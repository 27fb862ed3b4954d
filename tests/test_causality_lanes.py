"""Causality (static + perturbation probe) and lane isolation (static + Jacobian probe)."""
from glob import glob

import pytest
import torch

import morphdsl
from morphdsl import verify as V
from morphdsl.errors import VerifyError

ENCODER = """spec enc
model {
  tok: embed(vocab = 16, dim = 8)
  pos: pos_embed(ctx = 16)
  attn: attention(heads = 2, causal = false)
  head: unembed(vocab = 16)
}
"""

LANES = """spec lanes
model(features = 8) {
  part: partition(lanes = 4) {
    a: linear(out = 8)
    r: softplus
    attn: attention(heads = 4)
    x: linear(out = 8, lanes = 1)
    m: mix
    n: layernorm
  }
}
"""

TOKEN_LANES = """spec token_lanes
model {
  tok: embed(vocab = 16, dim = 8)
  part: partition(lanes = 4) {
    a: linear(out = 8)
    r: softplus
    attn: attention(heads = 4)
    m: mix
    n: layernorm
  }
  head: unembed(vocab = 16)
}
"""


def test_noncausal_attention_found_statically_with_location():
    g = morphdsl.build(ENCODER)  # allowed on build: encoders are legitimate
    (f,) = V.causality(g)
    assert f.node == "attn" and (f.span.line, f.span.column) == (5, 3)
    assert "attention(causal = false) lets position t see the future" in f.message


def test_noncausal_attention_caught_by_probe():
    rep = V.causality_probe(morphdsl.compile(ENCODER), T=6)
    assert not rep.ok and rep.max_leak > 1e-6
    assert all(t < tp for t, tp in rep.leaks)


def test_causal_model_on_features_passes_probe():
    m = morphdsl.compile("spec f\nmodel(features = 4) { attention(heads = 2)  relu  attention(heads = 1) }\n")
    assert V.causality(m.morph_graph) == []
    assert V.causality_probe(m, T=5).ok


@pytest.mark.parametrize("path", sorted(glob("specs/*.morph")))
def test_every_spec_is_causal(path):
    m = morphdsl.compile(path)
    assert V.causality(m.morph_graph) == []
    rep = V.causality_probe(m, T=6)
    assert rep.ok, rep


def test_lane_crossing_linear_rejected_statically():
    with pytest.raises(VerifyError) as ei:
        morphdsl.build(LANES)
    e = ei.value
    assert "linear(lanes = 1) mixes lanes inside partition(lanes = 4): use a declared mixer" in e.message
    assert e.node == "part.x" and (e.line, e.column) == (7, 5)


def test_lane_crossing_linear_caught_by_probe():
    m = morphdsl.compile(LANES, check=False)
    (rep,) = V.lane_probe(m)
    assert not rep.ok and rep.upto == "part.x" and rep.max_cross > 0
    assert (0, 1) in rep.leaks


def test_isolated_partition_has_block_diagonal_jacobian():
    m = morphdsl.compile(LANES.replace("x: linear(out = 8, lanes = 1)", ""))
    (rep,) = V.lane_probe(m, T=4)
    assert rep.ok and rep.max_cross == 0.0 and rep.max_own > 0 and rep.upto == "part.attn"


def test_full_width_layernorm_in_partition_rejected():
    text = "spec s\nmodel(features = 8) {\n  partition(lanes = 2) { a: linear(out = 8)  n: layernorm(lanes = 1) }\n}\n"
    with pytest.raises(VerifyError, match="mixes lanes") as ei:
        morphdsl.build(text)
    assert ei.value.node == "n"


@pytest.mark.parametrize("path", [p for p in sorted(glob("specs/*.morph"))])
def test_specs_lane_probe(path):
    m = morphdsl.compile(path)
    for rep in V.lane_probe(m, T=2):
        assert rep.ok, rep


def test_add_lane_keeps_old_lane_blocks():
    try:
        from morphdsl.rewrites import REWRITES, grow_model
    except ImportError:
        pytest.skip("morphdsl.rewrites is not importable yet")
    if "add_lane" not in REWRITES:
        pytest.skip("the add_lane rewrite is not written yet (morphdsl.rewrites)")
    torch.manual_seed(0)
    m = morphdsl.compile(TOKEN_LANES)
    grown = grow_model(m, "add_lane", target="part", verify=False).module
    x = torch.randn(1, 3, 8, dtype=torch.float64)
    J_old, (_, L, upto) = V.lane_jacobian(m, x)
    assert (L, upto) == (4, "part.attn")
    C_new = grown.morph_graph.dag.nodes["tok"]["type"].channels
    assert C_new == 10
    x_new = torch.cat([x, torch.randn(1, 3, C_new - 8, dtype=torch.float64)], -1)
    J_new, _ = V.lane_jacobian(grown, x_new)
    Co = J_old.shape[1]
    assert torch.allclose(J_new[:, :Co, :, :8], J_old, atol=1e-10)
    assert all(r.ok for r in V.lane_probe(grown))
