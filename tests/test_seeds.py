"""Seeds: growths on probation as state of the graph (language, IR, rewrites, emit, show).

`s: seed(stage, alpha) { body }` is gate(body(x)): training = s - s.detach() (forward 0, gradient
as at full strength), blending = alpha s, holding = s. The rewrites seed_stage, fossilize and
prune move it along its lifecycle; prune gives back exactly the host written without the seed.
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import morphdsl
from morphdsl.cli.show import summary
from morphdsl.errors import GrowthError, ShapeError, SpecError
from morphdsl.ir import emit as E
from morphdsl.rewrites import grow, grow_model

V, D = 32, 16

# logits are linear in the residual stream after the seed (no norm after it), so the gradient
# reaching the seed does not depend on the seed's strength: training grads = holding grads
LINEAR = """model {{
  tok: embed(vocab = 32, dim = 16)
  residual {{
    ln: layernorm
    attn: attention(heads = 2)
  }}
  {seed}
  head: unembed(vocab = 32)
}}
"""
BLOCK_SEED = """residual {{
    s: seed({args}) {{
      ln: layernorm
      mlp: mlp(hidden = 32)
    }}
  }}"""
BRANCH_HOST = """model {
  tok: embed(vocab = 32, dim = 16)
  parallel(join = add) {
    attn: attention(heads = 2)
  }
  ln_f: layernorm
  head: unembed(vocab = 32)
}
"""
BRANCH = BRANCH_HOST.replace("attn: attention(heads = 2)\n", """attn: attention(heads = 2)
    s: seed(stage = training) {
      attention(heads = 1, head_dim = 8)
    }
""")


def spec(args: str | None) -> str:
    return LINEAR.format(seed=BLOCK_SEED.format(args=args) if args is not None else "")


def model(text_or_graph, seed=0):
    torch.manual_seed(seed)
    m = morphdsl.compile(text_or_graph).double()
    with torch.no_grad():
        for p in m.parameters():  # no zero-initialised projections: every part has an effect
            p.copy_(torch.randn_like(p) * 0.3)
    return m


def copy_weights(dst, src):
    """Load src's weights into dst (every name of dst must be in src)."""
    sd = src.state_dict()
    dst.load_state_dict({k: sd[k] for k in dst.state_dict()}, strict=True)
    return dst


IDS = torch.randint(0, V, (2, 7), generator=torch.Generator().manual_seed(1))


def out(m):
    return m(IDS)


# ----------------------------------------------------------------------------- isolation, blending
def test_training_seed_is_isolated_forward_bitwise_host_and_gradient_as_at_holding():
    seeded = model(spec("stage = training"))
    host = copy_weights(morphdsl.compile(spec(None)).double(), seeded)
    assert torch.equal(out(seeded), out(host))
    c = torch.randn(2, 7, V, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    holding = copy_weights(morphdsl.compile(spec("stage = holding")).double(), seeded)
    grads = []
    for m in (seeded, holding):
        m.zero_grad()
        (out(m) * c).sum().backward()
        grads.append({k: p.grad.clone() for k, p in m.named_parameters() if k.startswith("s.")})
    assert set(grads[0]) == {k for k, _ in seeded.named_parameters() if k.startswith("s.")}
    for k, g in grads[0].items():
        assert g.abs().sum() > 0, k
        torch.testing.assert_close(g, grads[1][k], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.4, 1.0])
def test_blending_gives_host_plus_alpha_times_seed(alpha):
    hold = model(spec("stage = holding"))
    host = copy_weights(morphdsl.compile(spec(None)).double(), hold)
    blend = copy_weights(morphdsl.compile(spec(f"stage = blending, alpha = {alpha}")).double(), hold)
    with torch.no_grad():
        want = out(host) + alpha * (out(hold) - out(host))
        torch.testing.assert_close(out(blend), want, rtol=0, atol=1e-6)


@settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.just(("training", None)), st.just(("holding", None)),
                          st.tuples(st.just("blending"), st.floats(0, 1))), min_size=1, max_size=4))
def test_seed_stage_sequences_keep_forward_host_plus_strength_times_seed(steps):
    m = model(spec("stage = training"))
    host = copy_weights(morphdsl.compile(spec(None)).double(), m)
    hold = copy_weights(morphdsl.compile(spec("stage = holding")).double(), m)
    with torch.no_grad():
        h, s = out(host), out(hold) - out(host)
    for stage, alpha in steps:
        r = grow_model(m, "seed_stage", target="s", stage=stage, alpha=alpha)
        m = r.module
        a = {"training": 0.0, "holding": 1.0}.get(stage, alpha)
        with torch.no_grad():
            torch.testing.assert_close(out(m), h + a * s, rtol=0, atol=1e-6)
        if r.results[0].exact:  # checked by the identity verifier on the way
            assert r.reports[0] is not None and r.reports[0].ok
    assert E.check(m.morph_graph, morphdsl.emit(m.morph_graph)) is None


# ----------------------------------------------------------------------------- rewrites
def test_seed_stage_exactness_follows_the_forward_strength():
    g = morphdsl.build(spec("stage = training"))
    assert grow(g, "seed_stage", target="s", stage="blending", alpha=0.0).exact
    r = grow(g, "seed_stage", target="s", stage="blending", alpha=0.3)
    assert not r.exact and "not exact" in r.notes[0]
    g2 = grow(g, "seed_stage", target="s", stage="blending", alpha=1.0).graph
    assert grow(g2, "seed_stage", target="s", stage="holding").exact
    assert r.graph.find_region("s").attrs == {"stage": "blending", "alpha": 0.3}


@pytest.mark.parametrize("args, exact", [("stage = holding", True), ("stage = blending, alpha = 1.0", True),
                                          ("stage = blending, alpha = 0.5", False)])
def test_fossilize_keeps_names_and_is_exact_at_full_strength(args, exact):
    m = model(spec(args))
    r = grow_model(m, "fossilize", target="s")
    f = r.module
    assert r.results[0].exact is exact
    assert f.state_dict().keys() == m.state_dict().keys()
    assert "seed" not in morphdsl.emit(f.morph_graph)
    hold = copy_weights(morphdsl.compile(spec("stage = holding")).double(), m)
    with torch.no_grad():
        torch.testing.assert_close(out(f), out(hold), rtol=0, atol=1e-9)


@pytest.mark.parametrize("stage", ["training", "stage = blending, alpha = 0.7", "holding"])
def test_prune_gives_the_host_written_without_the_seed(stage):
    args = stage if "=" in stage else f"stage = {stage}"
    m = model(spec(args))
    r = grow_model(m, "prune", target="s")
    assert r.results[0].exact is (stage == "training")
    host_g = morphdsl.build(spec(None))
    assert r.module.morph_graph.param_shapes() == host_g.param_shapes()
    assert E.check(host_g, morphdsl.emit(r.module.morph_graph)) is None
    host = copy_weights(morphdsl.compile(host_g).double(), m)
    with torch.no_grad():
        assert torch.equal(out(r.module), out(host))


def test_prune_a_seed_branch_of_parallel_add():
    m = model(BRANCH)
    host_g = morphdsl.build(BRANCH_HOST)
    r = grow_model(m, "prune", target="s")
    assert r.results[0].exact and r.reports[0].ok
    assert r.module.morph_graph.param_shapes() == host_g.param_shapes()
    host = copy_weights(morphdsl.compile(host_g).double(), m)
    with torch.no_grad():
        assert torch.equal(out(r.module), out(host))
        assert torch.equal(out(r.module), out(m))  # training stage: the seed's forward was 0


def test_seed_rewrite_errors_are_growth_errors():
    g = morphdsl.build(spec("stage = training"))
    with pytest.raises(GrowthError, match="no seed at `t`") as e:
        grow(g, "fossilize", target="t")
    assert "s" in e.value.hint
    with pytest.raises(GrowthError, match="unknown seed stage `hold`") as e:
        grow(g, "seed_stage", target="s", stage="hold")
    assert "holding" in e.value.hint
    with pytest.raises(GrowthError, match=r"alpha must be a number in \[0, 1\]"):
        grow(g, "seed_stage", target="s", stage="blending", alpha=1.5)
    with pytest.raises(GrowthError, match="alpha = 0"):
        grow(g, "seed_stage", target="s", stage="training", alpha=0.5)
    tail = morphdsl.build(LINEAR.format(seed="residual {\n s: seed { relu }\n relu\n }"))
    with pytest.raises(GrowthError, match="not added to the host"):
        grow(tail, "prune", target="s")


# ----------------------------------------------------------------------------- emit, show
@pytest.mark.parametrize("args", ["stage = training", "stage = blending, alpha = 0.4", "stage = holding"])
def test_emit_round_trips_stage_alpha_and_logits(args):
    g = morphdsl.build(spec(args))
    text = morphdsl.emit(g)
    assert f"s: seed({args})" in text
    assert E.check(g, text) is None
    a = model(g)
    b = copy_weights(morphdsl.compile(text).double(), a)
    assert b.state_dict().keys() == a.state_dict().keys()
    with torch.no_grad():
        assert torch.equal(out(a), out(b))


def test_show_lists_seeds():
    g = morphdsl.build(spec("stage = blending, alpha = 0.4"))
    seeds = summary(g)["seeds"]
    n = sum(v.numel() for k, v in morphdsl.compile(g).state_dict().items() if k.startswith("s."))
    assert seeds == [{"path": "s", "stage": "blending", "alpha": 0.4, "params": n}]
    regions = {r["path"]: r["kind"] for r in summary(g)["regions"]}
    assert regions["s"] == "seed(blending, alpha = 0.4)"


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("seed, err, message, hint", [
    ("residual {\n s: seed(stage = hold) { relu }\n }", SpecError, "unknown seed stage `hold`", "holding"),
    ("residual {\n s: seed(stage = blending, alpha = 1.5) { relu }\n }", SpecError,
     r"alpha must be a number in \[0, 1\], got 1.5", "mix coefficient"),
    ("residual {\n s: seed(stage = training, alpha = 0.5) { relu }\n }", SpecError, "has alpha = 0", "only at"),
    ("residual {\n seed(stage = training) { relu }\n }", SpecError, "a seed needs a name", "path"),
    ("residual {\n s: seed(stage = training, alfa = 1) { relu }\n }", SpecError, "not `alfa`", "alpha"),
    ("residual {\n s: seed(stage = training)\n }", SpecError, "needs a body", "e.g."),
    ("residual {\n s: seed(stage = training) { linear(out = 8) }\n }", ShapeError,
     "changes the width from 16 to 8", "keep the width"),
])
def test_bad_seeds_are_located_errors_with_hints(seed, err, message, hint):
    with pytest.raises(err, match=message) as e:
        morphdsl.build(LINEAR.format(seed=seed).replace("{{", "{").replace("}}", "}"))
    assert e.value.span is not None and e.value.line >= 5
    assert hint in e.value.hint
