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
    before, after = V.lane_probe(m)  # the segments input -> mixer, mixer -> output
    assert (before.start, before.upto, after.start, after.upto) == ("input", "part.x", "part.m", "part.n")
    assert not before.ok and before.max_cross > 0 and (0, 1) in before.leaks
    assert after.ok and after.max_cross == 0.0


def test_isolated_partition_has_block_diagonal_jacobian():
    m = morphdsl.compile(LANES.replace("x: linear(out = 8, lanes = 1)", ""))
    reps = V.lane_probe(m, T=4)
    assert [(r.start, r.upto) for r in reps] == [("input", "part.attn.proj"), ("part.m", "part.n")]
    assert all(r.ok and r.max_cross == 0.0 and r.max_own > 0 for r in reps)


NESTED = """spec nested
model(features = 8) {
  p: partition(lanes = 4) {
    mix(kind = sinkhorn)
    inner: partition(lanes = INNER) {
      ln: layernorm
    }
  }
}
"""


def test_nested_partition_that_merges_lanes_rejected_statically():
    with pytest.raises(VerifyError) as ei:
        morphdsl.build(NESTED.replace("INNER", "1"))
    e = ei.value
    assert "partition(lanes = 1) inside partition(lanes = 4) would merge its lanes" in e.message
    assert e.node == "p.inner" and (e.line, e.column) == (5, 5)
    assert "multiple of 4" in e.hint
    with pytest.raises(VerifyError, match="inside partition\\(lanes = 4\\) would merge"):
        morphdsl.build(NESTED.replace("INNER", "2"))


def test_nested_partition_leak_after_a_mixer_caught_by_probe():
    m = morphdsl.compile(NESTED.replace("INNER", "1"), check=False)
    reps = {(r.path, r.start, r.upto): r for r in V.lane_probe(m)}
    leak = reps[("p", "p.mix", "p.inner.ln")]  # the segment after the mixer: full-width layernorm
    assert not leak.ok and leak.max_cross > 0.1 * leak.max_own
    assert reps[("p.inner", "p.mix", "p.inner.ln")].ok  # one lane: nothing to leak into


def test_nested_partition_that_refines_lanes_is_isolated():
    m = morphdsl.compile(NESTED.replace("INNER", "8"))  # 8 lanes of 1 channel split each of the 4
    assert m.morph_graph.dag.nodes["p.inner.ln"]["resolved"]["lanes"] == 8
    reps = V.lane_probe(m)
    assert reps and all(r.ok for r in reps)


def test_verify_cli_rejects_nested_partition(tmp_path, capsys):
    from morphdsl.cli import main

    p = tmp_path / "nested.morph"
    p.write_text(NESTED.replace("INNER", "1"))
    assert main(["check", str(p)]) == 1
    assert main(["verify", str(p)]) == 1
    out = capsys.readouterr().out
    assert "lane isolation (static): FAIL" in out
    assert "lane probe `p` (4 lanes, from p.mix up to p.inner.ln): FAIL" in out


def test_crossing_after_a_mixer_and_around_it_caught():
    text = """spec s
model(features = 8) {
  part: partition(lanes = 4) {
    residual { m: mix }
    x: linear(out = 8, lanes = 1)
  }
}
"""
    with pytest.raises(VerifyError, match="linear\\(lanes = 1\\) mixes lanes"):
        morphdsl.build(text)
    reps = V.lane_probe(morphdsl.compile(text, check=False))
    assert {(r.start, r.upto): r.ok for r in reps} == {("input", "part.x"): False,
                                                       ("part.m", "part.x"): False}
    ok = V.lane_probe(morphdsl.compile(text.replace("x: linear(out = 8, lanes = 1)", "x: linear(out = 8)")))
    assert len(ok) == 2 and all(r.ok for r in ok)  # x + mix(x): the direct path keeps lanes apart


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
    assert (L, upto) == (4, "part.attn.proj")  # the attention's output: its proj part
    C_new = grown.morph_graph.dag.nodes["tok"]["type"].channels
    assert C_new == 10
    x_new = torch.cat([x, torch.randn(1, 3, C_new - 8, dtype=torch.float64)], -1)
    J_new, _ = V.lane_jacobian(grown, x_new)
    Co = J_old.shape[1]
    assert torch.allclose(J_new[:, :Co, :, :8], J_old, atol=1e-10)
    assert all(r.ok for r in V.lane_probe(grown))
