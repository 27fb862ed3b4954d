"""The inverse rewrites (issue 18, mutations for evolution): remove_block undoes insert_block,
prune_heads undoes add_head; on other weights both change the function and the growth
transaction reports the change instead of failing. Weights and optimizer state of what is
kept move with it (renumbered blocks, kept heads); errors are GrowthErrors; grown graphs emit
to specs that rebuild with the same parameter shapes."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import morphdsl
from morphdsl.errors import GrowthError, MorphError
from morphdsl.ir.emit import emit
from morphdsl.rewrites import REWRITES, RULES, grow, grow_model
from morphdsl.train import train_spec
from morphdsl.train.loop import read_jsonl
from tests.test_train import _env, cache  # noqa: F401  (offline data cache for the engine test)
from tests.test_train import spec as train_spec_file


def spec(n_blocks=3, attn="attention(heads = 2)"):
    return f"""spec inv
d = 32
block B(d) {{
  residual {{
    ln1: layernorm
    attn: {attn}
  }}
  residual {{
    ln2: layernorm
    mlp: mlp(hidden = 64)
  }}
}}
model {{
  tok: embed(vocab = 32, dim = d)
  pos: pos_embed(ctx = 16)
  blocks: repeat({n_blocks}) {{
    B(d = d)
  }}
  ln_f: layernorm
  head: unembed(vocab = 32)
}}
"""


def model(n_blocks=3, seed=0, **kw):
    torch.manual_seed(seed)
    m = morphdsl.compile(spec(n_blocks, **kw))
    return m.eval()


X = torch.randint(0, 32, (2, 12), generator=torch.Generator().manual_seed(1))


@torch.no_grad()
def logits(m):
    return m.eval()(X)


def trained_opt(m, steps=2):
    """An AdamW with state (exp_avg, exp_avg_sq) on every tensor."""
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    m.train()
    for _ in range(steps):
        opt.zero_grad()
        out = m(X[:, :-1])
        torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), X[:, 1:].reshape(-1)).backward()
        opt.step()
    return opt


def state_of(opt, p):
    return opt.state[p]["exp_avg"]


def test_registered_as_rules():
    assert {"remove_block", "prune_heads"} <= {f.__name__ for f in RULES}
    assert not REWRITES["remove_block"].exact and not REWRITES["prune_heads"].exact
    assert REWRITES["prune_heads"].needs_weights and not REWRITES["remove_block"].needs_weights


# ------------------------------------------------------------------ remove_block
def test_insert_then_remove_block_is_the_identity():
    m = model()
    a = grow_model(m, "insert_block", target="blocks", at=1)
    b = grow_model(a.module, "remove_block", target="blocks", at=1)
    assert b.results[0].notes == ["blocks: 4 -> 3 blocks, removed block 1"]
    assert b.reports[0].ok and b.reports[0].max_abs_err == 0
    assert torch.equal(logits(b.module), logits(m))
    old, new = m.state_dict(), b.module.state_dict()
    assert list(new) == list(old)
    assert all(torch.equal(new[k], old[k]) for k in old)
    assert "repeat(3)" in emit(b.module.morph_graph)


def test_remove_block_renumbers_and_reports_the_change():
    m = model()
    opt = trained_opt(m)
    out = grow_model(m, "remove_block", optimizer=opt, target="blocks", at=1)
    new, nopt = out.module, out.optimizer
    assert not out.results[0].exact and not out.reports[0].ok and out.reports[0].max_abs_err > 0
    assert (logits(new) - logits(m)).abs().max() > 0
    names = set(new.morph_graph.param_shapes())
    assert "blocks.2.attn.qkv.weight" not in names and "blocks.1.attn.qkv.weight" in names
    assert out.results[0].plan.entries["blocks.1.mlp.fc.weight"].src == "blocks.2.mlp.fc.weight"
    old, newp = dict(m.named_parameters()), dict(new.named_parameters())
    assert torch.equal(newp["blocks.0.attn.qkv.weight"], old["blocks.0.attn.qkv.weight"])
    assert torch.equal(newp["blocks.1.attn.qkv.weight"], old["blocks.2.attn.qkv.weight"])
    assert torch.equal(newp["blocks.1.mlp.proj.weight"], old["blocks.2.mlp.proj.weight"])
    # the renamed tensor's optimizer state is the old block 2's
    assert torch.equal(state_of(nopt, newp["blocks.1.mlp.fc.weight"]),
                       state_of(opt, old["blocks.2.mlp.fc.weight"]))
    assert new.morph_graph.history[-1] == {"op": "remove_block", "args": {"target": "blocks", "at": 1}}


def test_remove_block_defaults_to_the_last():
    m = model()
    res = grow(m.morph_graph, "remove_block")
    assert res.notes == ["blocks: 3 -> 2 blocks, removed block 2"]
    s = res.graph.param_shapes()
    assert "blocks.1.ln1.weight" in s and "blocks.2.ln1.weight" not in s
    assert res.plan.entries["blocks.1.ln1.weight"].src == "blocks.1.ln1.weight"


@settings(max_examples=10, deadline=None)
@given(st.data())
def test_insert_then_remove_is_identity_property(data):
    n = data.draw(st.integers(1, 4), label="n_blocks")
    at = data.draw(st.integers(0, n), label="at")
    m = model(n, seed=n * 10 + at)
    a = grow_model(m, "insert_block", target="blocks", at=at)
    b = grow_model(a.module, "remove_block", target="blocks", at=at)
    assert torch.equal(logits(b.module), logits(m))
    old, new = m.state_dict(), b.module.state_dict()
    assert list(new) == list(old) and all(torch.equal(new[k], old[k]) for k in old)


# ------------------------------------------------------------------ prune_heads
def test_add_head_then_prune_heads_is_the_identity():
    m = model()
    a = grow_model(m, "add_head", n=1)
    assert a.module.morph_graph.param_shapes()["blocks.0.attn.qkv.weight"] == (3 * 3 * 16, 32)
    b = grow_model(a.module, "prune_heads", k=1)
    assert all("heads 3 -> 2 (dropped heads [2])" in s for s in b.results[0].notes)
    assert b.reports[0].ok and torch.equal(logits(b.module), logits(m))
    old, new = m.state_dict(), b.module.state_dict()
    assert {k: v.shape for k, v in new.items()} == {k: v.shape for k, v in old.items()}
    assert all(torch.equal(new[k], old[k]) for k in old)


def test_add_head_then_prune_heads_grouped_query_is_the_identity():
    m = model(2, attn="attention(heads = 4, kv_heads = 2)")
    a = grow_model(m, "add_head", target="blocks.0.attn", n=1)  # one more query head per group
    b = grow_model(a.module, "prune_heads", target="blocks.0.attn", k=1)
    assert b.results[0].notes == ["blocks.0.attn: heads 6 -> 4 (dropped heads [2] of each group)"]
    assert torch.equal(logits(b.module), logits(m))
    old, new = m.state_dict(), b.module.state_dict()
    assert all(torch.equal(new[k], old[k]) for k in old)


def test_prune_heads_on_random_weights_keeps_the_kept_heads_and_their_state():
    m = model()
    opt = trained_opt(m)
    hd, C = 16, 32
    out = grow_model(m, "prune_heads", optimizer=opt, target="blocks.1.attn", k=1)
    new, nopt = out.module, out.optimizer
    assert new.morph_graph.unit("blocks.1.attn").resolved["heads"] == 1
    assert new.morph_graph.unit("blocks.1.attn").resolved["head_dim"] == hd
    assert new.morph_graph.unit("blocks.0.attn").resolved["heads"] == 2  # not targeted
    s = new.morph_graph.param_shapes()
    assert s["blocks.1.attn.qkv.weight"] == (3 * hd, C) and s["blocks.1.attn.proj.weight"] == (C, hd)
    assert s["blocks.1.attn.qkv.bias"] == (3 * hd,)
    assert not out.results[0].exact and out.reports[0].max_abs_err > 0
    assert (logits(new) - logits(m)).abs().max() > 0
    (note,) = out.results[0].notes
    dropped = int(note.split("dropped heads [")[1][0])
    kept = 1 - dropped
    old, newp = dict(m.named_parameters()), dict(new.named_parameters())
    rows = torch.cat([torch.arange(s * 2 * hd + kept * hd, s * 2 * hd + (kept + 1) * hd) for s in range(3)])
    cols = torch.arange(kept * hd, (kept + 1) * hd)
    q_old, p_old = old["blocks.1.attn.qkv.weight"], old["blocks.1.attn.proj.weight"]
    assert torch.equal(newp["blocks.1.attn.qkv.weight"], q_old[rows])
    assert torch.equal(newp["blocks.1.attn.proj.weight"], p_old[:, cols])
    assert torch.equal(state_of(nopt, newp["blocks.1.attn.qkv.weight"]), state_of(opt, q_old)[rows])
    assert torch.equal(state_of(nopt, newp["blocks.1.attn.proj.weight"]), state_of(opt, p_old)[:, cols])
    # the dropped head is the one of least ||qkv rows|| * ||proj cols||
    def score(h):
        r = torch.cat([torch.arange(s * 2 * hd + h * hd, s * 2 * hd + (h + 1) * hd) for s in range(3)])
        return q_old[r].norm() * p_old[:, h * hd:(h + 1) * hd].norm()
    assert score(dropped) <= score(kept)


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("n,op,args,msg", [
    (1, "remove_block", {"target": "blocks"}, "one block left"),
    (3, "remove_block", {"target": "blocks", "at": 3}, "must be in 0..2, got 3"),
    (3, "remove_block", {"target": "blocks", "at": -1}, "must be in 0..2, got -1"),
    (3, "remove_block", {"target": "blocks", "at": "x"}, "must be in 0..2"),
    (3, "remove_block", {"target": "blocks.0"}, "not a repeat group"),
    (3, "remove_block", {"target": "nope"}, "no region at `nope`"),
    (3, "prune_heads", {"k": 2}, "has 2 heads: prune k must be in 1..1, got 2"),
    (3, "prune_heads", {"k": 0}, "positive head count"),
    (3, "prune_heads", {"k": "one"}, "positive head count"),
    (3, "prune_heads", {"by": "random"}, "by = magnitude"),
    (3, "prune_heads", {"target": "blocks.0.mlp"}, "no heads axis"),
    (3, "prune_heads", {"n": 1}, "bad arguments for `prune_heads`"),
])
def test_errors_are_growth_errors(n, op, args, msg):
    m = model(n)
    with pytest.raises(GrowthError, match=msg) as ei:
        grow_model(m, op, **args)
    assert isinstance(ei.value, MorphError) and "Traceback" not in str(ei.value)
    if op == "remove_block" and "nope" not in msg:
        assert ei.value.hint  # what to do instead


def test_prune_heads_refusals_grouped_and_lanes():
    m = model(2, attn="attention(heads = 4, kv_heads = 2)")
    with pytest.raises(GrowthError, match="2 heads per key/value group"):
        grow_model(m, "prune_heads", k=2)
    with pytest.raises(GrowthError, match="needs the weights"):
        grow(m.morph_graph, "prune_heads")  # the pure path has no weights
    torch.manual_seed(0)
    lanes = morphdsl.compile("specs/convex_lanes.morph")
    with pytest.raises(GrowthError, match="runs per lane"):
        grow_model(lanes, "prune_heads", target="lanes.blocks.0.attn")


# ------------------------------------------------------------------ emit round trip
@pytest.mark.parametrize("op,args", [("remove_block", {"target": "blocks", "at": 0}),
                                     ("prune_heads", {"k": 1}),
                                     ("prune_heads", {"target": "blocks.2.attn", "k": 1})])
def test_emitted_spec_rebuilds_with_the_same_shapes(op, args):
    out = grow_model(model(), op, **args)
    g = out.module.morph_graph
    text = emit(g)
    rebuilt = morphdsl.build(text)
    assert rebuilt.param_shapes() == g.param_shapes()
    if op == "remove_block":
        assert "repeat(2)" in text


# ------------------------------------------------------------------ in training
def test_engine_applies_and_logs_the_inverse_rewrites(tmp_path):
    grow_rules = ("  step(2) -> insert_block(blocks, at = 0)\n  step(4) -> remove_block(blocks, at = 1)\n"
                  "  step(5) -> prune_heads(blocks.*.attn, k = 1)")
    run = tmp_path / "run"
    train_spec(train_spec_file(tmp_path, grow_rules), run, {"steps": 6, "sample_tokens": 0})
    ev = [e for e in read_jsonl(run / "events.jsonl") if e["type"].startswith("growth")]
    assert [(e["type"], e["op"]) for e in ev] == [("growth", "insert_block"), ("growth", "remove_block"),
                                                   ("growth", "prune_heads")]
    assert ev[1]["params_after"] < ev[1]["params_before"] and ev[2]["max_verify_error"] > 0
    assert "attention(heads = 1" in (run / "checkpoints" / "latest" / "spec.morph").read_text()
