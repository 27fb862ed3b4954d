"""The identity verifier, and the property: random tiny hosts x random exact rewrites keep the
function (to 1e-5 in float32) and stay trainable (one AdamW step lowers the loss)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import morphdsl
from morphdsl.rewrites import grow_model
from morphdsl.verify.identity import identity, sample_inputs

PLAIN = """spec host
vocab = 32
d = {d}
block B(d, heads) {{
  residual {{
    ln1: layernorm
    attn: attention(heads = heads)
  }}
  residual {{
    ln2: layernorm
    mlp: mlp(hidden = {hidden})
  }}
}}
model {{
  tok: embed(vocab = vocab, dim = d)
  pos: pos_embed(ctx = 16)
  blocks: repeat({layers}) {{
    B(d = d, heads = {heads})
  }}
  ln_f: layernorm
  head: unembed(vocab = vocab, tie = tok)
}}
"""

LANES = """spec lanes
vocab = 32
d = {d}
model {{
  tok: embed(vocab = vocab, dim = d)
  pos: pos_embed(ctx = 16)
  lanes: partition(lanes = {lanes}) {{
    blocks: repeat({layers}) {{
      residual {{
        ln1: layernorm
        attn: attention(heads = {heads})
      }}
      residual {{
        ln2: layernorm
        mlp: hull(petals = {petals}, width = 8, pool = {pool})
      }}
    }}
    ln_f: layernorm
  }}
  head: unembed(vocab = vocab, tie = tok)
}}
"""


PYRAMID = """spec pyr
vocab = 32
block P(w, heads = 2) {{
  residual {{
    ln1: layernorm
    attn: attention(heads = heads)
  }}
  residual {{
    ln2: layernorm
    mlp: mlp(hidden = w)
  }}
}}
model {{
  tok: embed(vocab = vocab, dim = {d})
  pos: pos_embed(ctx = 16)
  p0: pyramid(block = P, width = {d}, levels = {levels})
  ln_f: layernorm
  head: unembed(vocab = vocab, tie = tok)
}}
"""


def tiny(**kw):
    torch.manual_seed(0)
    return morphdsl.compile(PLAIN.format(**{"d": 16, "hidden": 32, "layers": 2, "heads": 2, **kw}))


def test_identical_modules_pass():
    m = tiny()
    rep = identity(m, m)
    assert rep.ok and rep.max_abs_err == 0 and rep.node is None


def test_mismatch_names_first_divergent_node():
    a = tiny()
    b = morphdsl.compile(a.morph_graph.copy())
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        b.get_submodule("blocks.1.mlp").fc.bias.add_(0.5)
    rep = identity(a, b)
    assert not rep.ok and rep.max_abs_err > 1e-3
    assert rep.node == "blocks.1.mlp"
    assert "blocks.1.mlp" in str(rep)


def test_feature_input_graph():
    src = "spec f\nmodel(features = 6) {\n  l1: linear(out = 8)\n  a: relu\n  l2: linear(out = 6)\n}\n"
    m = morphdsl.compile(src)
    x = sample_inputs(m, 3, 5)
    assert x.shape == (3, 5, 6) and x.dtype == torch.float32
    assert identity(m, m).ok


# ---------------------------------------------------------------- the property test
@st.composite
def host_and_ops(draw):
    layers = draw(st.integers(1, 2))
    kind = draw(st.sampled_from(["plain", "lanes", "pyramid"]))
    if kind == "pyramid":
        text = PYRAMID.format(d=draw(st.sampled_from([8, 16])), levels=layers)
        menu = [("grow_pyramid", {}), ("add_head", {"target": "p0.tree.*"}), ("widen_mlp", {"by": 2})]
    elif kind == "lanes":
        lanes = draw(st.sampled_from([2, 4]))
        d = lanes * draw(st.sampled_from([4, 8]))
        text = LANES.format(d=d, lanes=lanes, layers=layers, heads=lanes * draw(st.sampled_from([1, 2])),
                            petals=draw(st.integers(1, 3)), pool=draw(st.sampled_from(["max", "logsumexp"])))
        menu = [("add_head", {"n": 1}), ("add_petals", {"n": 2}),
                ("add_petals", {"target": "lanes.blocks.0.mlp"}), ("add_lane", {"n": 1})]
    else:
        heads = draw(st.sampled_from([1, 2, 4]))
        d = draw(st.sampled_from([8, 16]))
        text = PLAIN.format(d=d, hidden=draw(st.sampled_from([8, 24])), layers=layers, heads=heads)
        menu = [("add_head", {"target": "blocks.0.attn", "n": 1}), ("add_head", {"n": 2}),
                ("widen_mlp", {"by": 4}), ("insert_block", {"target": "blocks", "at": 0}),
                ("insert_block", {"target": "blocks"}), ("widen_embed", {"noise": 0.01})]
    ops = draw(st.lists(st.sampled_from(menu), min_size=1, max_size=3))
    return text, ops


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(host_and_ops(), st.integers(0, 2**16))
def test_random_hosts_random_rewrites_are_exact_and_trainable(case, seed):
    text, ops = case
    torch.manual_seed(seed)
    m = morphdsl.compile(text)
    grown = grow_model(m, ops, atol=1e-5)  # raises VerifyError on any mismatch
    new = grown.module
    rep = identity(m, new, atol=1e-5, rtol=1e-5, seed=seed)
    assert rep.ok, str(rep)
    # trainable: one modest AdamW step lowers next-token cross-entropy on a fixed batch
    idx = torch.randint(0, 32, (4, 12), generator=torch.Generator().manual_seed(seed))
    opt = torch.optim.AdamW(new.parameters(), lr=1e-3, weight_decay=0.0)

    def loss():
        logits = new(idx[:, :-1])
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), idx[:, 1:].reshape(-1))

    l0 = loss()
    l0.backward()
    opt.step()
    with torch.no_grad():
        assert loss().item() < l0.item()


def test_closeness_is_normwise():
    """Round-off bounded by the output's scale passes; a change of 1e-3 of it, or a NaN, does not."""
    from morphdsl.verify.identity import close

    b = torch.zeros(4, 8)
    b[0, 0] = 10.0                      # large logits next to ones near zero
    a = b.clone()
    a[3, 5] += 3.3e-5                   # what a reordered float32 sum does (elementwise: fails)
    assert not torch.allclose(a, b, atol=1e-5, rtol=1e-5) and close(a, b)
    a[3, 5] = 1e-2                      # 1e-3 of the scale: a wrong transfer
    assert not close(a, b)
    a[3, 5] = float("nan")
    assert not close(a, b)
    assert not close(torch.zeros(2), torch.zeros(3))


def test_widen_embed_of_a_model_with_large_logits_is_certified_and_wrong_weights_are_not():
    """A trained model's logits are large (here: embeddings x 40, tied head): the exact widen
    passes; the same widen with one weight of the grown model moved by 1e-2 of its scale fails."""
    from morphdsl.growth.transaction import GrowthTransaction

    m = tiny(d=32, hidden=128, heads=1)
    with torch.no_grad():
        m.get_submodule("tok").weight.mul_(40)
    r = GrowthTransaction(m, None).apply("widen_embed", {"factor": 2})
    assert r.report.ok and r.report.max_abs_err < 1e-5 * r.before.abs().max().item() + 1e-5
    bad = morphdsl.compile(r.module.morph_graph.copy())
    bad.load_state_dict(r.module.state_dict())
    with torch.no_grad():
        w = bad.get_submodule("blocks.0.mlp").fc.weight
        w[0, 0] += 1e-2 * w.abs().max()
    rep = identity(m, bad)
    assert not rep.ok and rep.max_abs_err > 1e-5 * r.before.abs().max().item() + 1e-5
    assert rep.node == "head"  # the widened blocks have no same-shape node before growth
