"""Attention is built from parts in the IR (ops/attention.py): projections, rope, sdpa, proj.

- the short form lowers to its parts, with the parameter names of before (`attn.qkv.weight`);
- the parts written out by hand are the same function as the short form, bit for bit, for
  plain, grouped-query, rotary (also partial) and per-lane attention;
- each part states its own facts: rope is affine and pointwise, sdpa is causal or not, and a
  finding names the op as written; growth still sees one op (`units`, `op_nodes`);
- a bad packed width is a located error.
"""
from __future__ import annotations

import pytest
import torch

import morphdsl
from morphdsl import grow_model
from morphdsl import verify as V
from morphdsl.errors import MorphError

HOST = """model {{
  tok: embed(vocab = 64, dim = 32)
  {pre}
  residual {{
    ln: layernorm
    {body}
  }}
  head: unembed(vocab = 64)
}}
"""


def host(body, pre=""):
    return HOST.format(body=body, pre=pre)


SHORT_AND_LONG = {
    "plain": ("attn: attention(heads = 4)",
              "attn { qkv: linear(out = 96)\n sdpa(heads = 4)\n proj: linear(out = 32) }"),
    "rope": ("attn: attention(heads = 4, rope = true, bias = false)",
             "attn { qkv: linear(out = 96, bias = false)\n rope(heads = 4)\n sdpa(heads = 4)\n"
             " proj: linear(out = 32, bias = false) }"),
    "partial_rope": ("attn: attention(heads = 2, rope = true, rope_fraction = 0.5, rope_theta = 500.0)",
                     "attn { qkv: linear(out = 96)\n rope(heads = 2, fraction = 0.5, theta = 500.0)\n"
                     " sdpa(heads = 2)\n proj: linear(out = 32) }"),
    "gqa": ("attn: attention(heads = 4, kv_heads = 2, rope = true)",
            "attn { parallel(join = concat) { q: linear(out = 32)\n kv: linear(out = 32) }\n"
            " rope(heads = 4, kv_heads = 2)\n sdpa(heads = 4, kv_heads = 2)\n proj: linear(out = 32) }"),
    "noncausal": ("attn: attention(heads = 2, causal = false)",
                  "attn { qkv: linear(out = 96)\n sdpa(heads = 2, causal = false)\n"
                  " proj: linear(out = 32) }"),
}


def parts_of(g, key):
    return [(k, d.op) for k, d in g.nodes() if d.owner == key]


def test_short_form_lowers_to_parts_with_the_old_parameter_names():
    g = morphdsl.build(host("attn: attention(heads = 4, kv_heads = 2, rope = true)"))
    assert parts_of(g, "attn") == [("attn.q", "linear"), ("attn.kv", "linear"),
                                   ("attn#concat0", "concat"), ("attn.rope", "rope"),
                                   ("attn.sdpa", "sdpa"), ("attn.proj", "linear")]
    assert g.dag.nodes["attn.sdpa"].type.channels == 32 and g.dag.nodes["attn.rope"].type.channels == 64
    assert [k for k in g.param_shapes() if k.startswith("attn.")] == \
        ["attn.q.weight", "attn.q.bias", "attn.kv.weight", "attn.kv.bias", "attn.proj.weight", "attn.proj.bias"]
    # growth's view: one op, its parts' parameters by their names inside it
    (key, u), = g.op_nodes("attention")
    assert key == "attn" and u.inputs == ["ln"] and u.output == "attn.proj"
    assert set(u.param_shapes) == {"q.weight", "q.bias", "kv.weight", "kv.bias", "proj.weight", "proj.bias"}
    assert "attn" not in g.dag and g.unit("attn").op == "attention"
    assert [k for k, _ in g.units()].count("attn") == 1 and "attn.sdpa" not in dict(g.units())


@pytest.mark.parametrize("case", sorted(SHORT_AND_LONG))
def test_parts_written_out_equal_the_short_form(case):
    short, long = SHORT_AND_LONG[case]
    torch.manual_seed(0)
    a = morphdsl.compile(host(short), check=False).eval()
    b = morphdsl.compile(host(long), check=False).eval()
    assert a.state_dict().keys() == b.state_dict().keys()
    with torch.no_grad():
        for p in a.parameters():  # move the zero biases and unit gains so a wrong layout shows
            p.add_(0.05 * torch.randn_like(p))
    b.load_state_dict(a.state_dict())
    idx = torch.randint(0, 64, (2, 11), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(a(idx), b(idx))


def test_parts_in_lanes_equal_the_short_form_and_keep_lanes_apart():
    pre = "lanes: partition(lanes = 2) {\n residual { ln0: layernorm\n %s }\n mix(kind = sinkhorn) }"
    short = host("", pre % "attn: attention(heads = 4, rope = true)")
    long = host("", pre % "attn { qkv: linear(out = 96)\n rope(heads = 4)\n sdpa(heads = 4)\n"
                         " proj: linear(out = 32) }")
    torch.manual_seed(0)
    a, b = morphdsl.compile(short).eval(), morphdsl.compile(long).eval()
    assert a.state_dict()["lanes.attn.qkv.weight"].shape == (2, 48, 16)
    b.load_state_dict(a.state_dict())
    idx = torch.randint(0, 64, (2, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(a(idx), b(idx))
    for m in (a, b):
        reps = V.lane_probe(m, T=4)
        assert reps and all(r.ok and r.max_own > 0 for r in reps)


def test_a_lane_linear_before_sdpa_that_mixes_lanes_is_named_as_written():
    text = host("", "lanes: partition(lanes = 2) {\n residual { ln0: layernorm\n"
                    " attn { qkv: linear(out = 96, lanes = 1)\n sdpa(heads = 4)\n proj: linear(out = 32) } }\n"
                    " mix(kind = sinkhorn) }")
    with pytest.raises(MorphError) as e:
        morphdsl.compile(text)
    assert e.value.node == "lanes.attn.qkv" and "mixes lanes" in e.value.message


def test_each_part_states_its_facts():
    g = morphdsl.build(host("attn: attention(heads = 2, rope = true, causal = false)"))
    (f,) = V.causality(g)  # from sdpa's fact, named as written
    assert f.node == "attn" and "attention(causal = false)" in f.message
    g2 = morphdsl.build(host(SHORT_AND_LONG["noncausal"][1]))
    (f2,) = V.causality(g2)
    assert f2.node == "attn.sdpa" and "sdpa(causal = false)" in f2.message  # written out: the part
    assert V.causality(morphdsl.build(host("attn: attention(heads = 2, rope = true)"))) == []
    from morphdsl.ops import get_op
    assert get_op("rope").positions == "pointwise" and get_op("rope").facts({}).curvature == "affine"
    assert get_op("sdpa").positions_of({"causal": True}) == "causal"
    # the probe agrees: position t never sees t' > t through the parts
    m = morphdsl.compile(host("attn: attention(heads = 2, rope = true, kv_heads = 1)"))
    assert V.causality_probe(m).ok


def test_rope_is_convex_by_composition_and_sdpa_is_not():
    feats = "model(features = 8) {{\n  convex c {{ {body} }}\n}}\n"
    ok = morphdsl.build(feats.format(body="rope(heads = 2, kv_heads = 1)"))  # a rotation: affine
    assert ok is not None
    with pytest.raises(MorphError) as e:
        morphdsl.build(feats.format(body="sdpa(heads = 2, kv_heads = 1)"))
    assert "softmax attention is not convex" in e.value.message


def test_heads_grow_through_the_parts_and_the_spec_stays_short():
    torch.manual_seed(0)
    m = morphdsl.compile(host("attn: attention(heads = 4, kv_heads = 2, rope = true)"))
    out = grow_model(m, "add_head", target="attn", n=1)
    assert out.reports[0].ok
    g = out.module.morph_graph
    assert g.dag.nodes["attn.sdpa"].resolved["heads"] == 6 and g.unit("attn").resolved["heads"] == 6
    text = morphdsl.emit(g)
    assert "attention(heads = 6" in text and "sdpa" not in text  # emitted as written


@pytest.mark.parametrize("bad, says", [
    ("qkv: linear(out = 90)\n sdpa(heads = 4)", "are not a packed [q | k | v] of 4 query"),
    ("qkv: linear(out = 96)\n rope(heads = 4, fraction = 0.01)", "fraction = 0.01 of head_dim 8 leaves no"),
    ("qkv: linear(out = 96)\n sdpa(heads = 4, kv_heads = 3)", "do not split into 3 key/value groups"),
])
def test_bad_packed_layouts_are_located_errors(bad, says):
    text = host(bad + "\n proj: linear(out = 32)")
    with pytest.raises(MorphError) as e:
        morphdsl.build(text)
    assert says in e.value.message and e.value.line == 7, e.value.render()


def test_kv_heads_in_lanes_is_refused_even_when_equal_to_heads():
    """`kv_heads` means the q / kv projection layout, which is not packed per lane."""
    text = host("", "lanes: partition(lanes = 2) {\n residual { ln0: layernorm\n"
                    " attn: attention(heads = 2, kv_heads = 2) }\n mix(kind = sinkhorn) }")
    with pytest.raises(MorphError) as e:
        morphdsl.build(text)
    assert "cannot run per lane yet" in e.value.message and e.value.hint and e.value.line == 5


def test_rope_and_the_seed_gate_are_affine_by_an_independent_check():
    """The facts say rope is affine and a blending seed's gate is a nonnegative scale: check it
    numerically, not from the facts — f(a x + b y) = a f(x) + b f(y) (T > 1, so positions
    matter), and the Jensen audit of a convex region holding both passes; sdpa's fails."""
    torch.manual_seed(0)
    spec = ("model(features = 8) {{\n  convex c {{ {body} }}\n}}\n")
    m = morphdsl.compile(spec.format(body="rope(heads = 2, kv_heads = 1)\n"
                                          " s: seed(stage = blending, alpha = 0.3) { linear(out = 8, nonneg = true, bias = false) }"),
                         check=True).double()
    x, y = torch.randn(3, 5, 8, dtype=torch.float64), torch.randn(3, 5, 8, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(m(0.7 * x - 1.3 * y), 0.7 * m(x) - 1.3 * m(y), rtol=1e-12, atol=1e-12)
    assert V.jensen(m, region="c", n_pairs=64, T=5).ok
    s = morphdsl.compile(spec.format(body="sdpa(heads = 2, kv_heads = 1)"), check=False)
    assert not V.jensen(s, region="c", n_pairs=64, T=5, scale=3.0).ok  # and the facts say unknown
