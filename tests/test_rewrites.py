"""Growth rewrites: parameter shapes, exact weight and optimizer-state transfer, errors,
emit round trip, and the CLI."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import morphdsl
from morphdsl.cli import main
from morphdsl.errors import GrowthError, VerifyError
from morphdsl.rewrites import REWRITES, blend, grow, grow_model
from morphdsl.rewrites.registry import rewrite
from morphdsl.rewrites.transfer import _grid

SPEC = """spec t
vocab = 32
d = 16
block B(d, heads) {
  residual {
    ln1: layernorm
    attn: attention(heads = heads)
  }
  residual {
    ln2: layernorm
    mlp: mlp(hidden = 32)
  }
}
model {
  tok: embed(vocab = vocab, dim = d)
  pos: pos_embed(ctx = 16)
  blocks: repeat(2) {
    B(d = d, heads = 2)
  }
  ln_f: layernorm
  head: unembed(vocab = vocab, tie = tok)
}
"""


def model(seed=0):
    torch.manual_seed(seed)
    return morphdsl.compile(SPEC)


def lanes_model():
    torch.manual_seed(0)
    return morphdsl.compile("specs/convex_lanes.morph")


# ------------------------------------------------------------------ shapes
def test_add_head_shapes():
    g = grow(model().morph_graph, "add_head", target="blocks.1.attn", n=2).graph
    s = g.param_shapes()
    assert s["blocks.1.attn.qkv.weight"] == (3 * 4 * 8, 16) and s["blocks.1.attn.proj.weight"] == (16, 32)
    assert s["blocks.0.attn.qkv.weight"] == (48, 16)  # untouched
    assert g.history[-1] == {"op": "add_head", "args": {"target": "blocks.1.attn", "n": 2}}


def test_add_head_in_lanes_adds_a_head_per_lane():
    res = grow(lanes_model().morph_graph, "add_head", target="lanes.blocks.0.attn")
    s = res.graph.param_shapes()
    assert res.graph.unit("lanes.blocks.0.attn").resolved["heads"] == 8
    assert s["lanes.blocks.0.attn.qkv.weight"] == (4, 3 * 2 * 16, 16)


def test_widen_mlp_glob_and_shapes():
    g = grow(model().morph_graph, "widen_mlp", target="blocks.*.mlp", by=8).graph
    s = g.param_shapes()
    for i in (0, 1):
        assert s[f"blocks.{i}.mlp.fc.weight"] == (40, 16) and s[f"blocks.{i}.mlp.proj.weight"] == (16, 40)


def test_insert_block_renumbers_and_plans_renames():
    res = grow(model().morph_graph, "insert_block", target="blocks", at=1)
    s = res.graph.param_shapes()
    assert "blocks.2.mlp.fc.weight" in s and "blocks.3.attn.qkv.weight" not in s
    assert res.plan.entries["blocks.2.mlp.fc.weight"].src == "blocks.1.mlp.fc.weight"
    assert res.plan.entries["blocks.1.mlp.fc.weight"].src is None
    assert res.plan.zero_output == ["blocks.1.attn", "blocks.1.mlp"]


def test_add_petals_and_blend():
    m = lanes_model()
    out = grow_model(m, "add_petals", target="lanes.blocks.0.mlp", n=2)
    new = out.module
    hull = new.get_submodule("lanes.blocks.0.mlp")
    assert hull.w0.shape[:2] == (4, 6) and hull.alpha[:, 4:].abs().sum() == 0
    assert out.reports[0].ok
    assert blend(new, "lanes.blocks.0.mlp", 1.0) == [4, 5]
    x = torch.randint(0, 256, (2, 8))
    with torch.no_grad():
        assert (new(x) - m(x)).abs().max() > 1e-6  # the grown petals now contribute


def test_prune_units_is_approximate_and_reported():
    m = model()
    out = grow_model(m, "prune_units", target="blocks.0.mlp", k=4)
    assert out.module.morph_graph.param_shapes()["blocks.0.mlp.fc.weight"] == (28, 16)
    assert not out.results[0].exact and out.reports[0].max_abs_err > 0
    with pytest.raises(GrowthError):
        grow(m.morph_graph, "prune_units", k=4)  # needs the weights


# ------------------------------------------------------------------ optimizer transfer
def _loss(m, idx):
    logits = m(idx[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), idx[:, 1:].reshape(-1))


@pytest.mark.parametrize("op,args", [("add_head", {"n": 1}), ("widen_mlp", {"by": 8}),
                                     ("insert_block", {"target": "blocks", "at": 1})])
def test_adamw_step_on_old_slices_is_unchanged_by_growth(op, args):
    idx = torch.randint(0, 32, (4, 12), generator=torch.Generator().manual_seed(1))
    m = model()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=0.1)
    for _ in range(3):  # build up optimizer state
        opt.zero_grad()
        _loss(m, idx).backward()
        opt.step()
    out = grow_model(m, op, optimizer=opt, **args)
    new, nopt = out.module, out.optimizer
    for o in (opt, nopt):
        o.zero_grad()
    _loss(m, idx).backward()
    _loss(new, idx).backward()
    opt.step()
    nopt.step()
    old = dict(m.named_parameters())
    plan = out.results[0].plan
    for name, p in new.named_parameters():
        e = plan.entries[name]
        if e.src is None:
            continue
        maps = list(e.maps) + [None] * (p.dim() - len(e.maps))
        src = [torch.arange(old[e.src].shape[d]) if mp is None else torch.tensor(mp[0]) for d, mp in enumerate(maps)]
        dst = [torch.arange(p.shape[d]) if mp is None else torch.tensor(mp[1]) for d, mp in enumerate(maps)]
        torch.testing.assert_close(p[_grid(dst)], old[e.src][_grid(src)], atol=1e-6, rtol=1e-5)
        st = nopt.state[p]
        assert st["step"].item() == 4


def test_new_tensors_get_their_own_rewarm_group():
    m = model()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    out = grow_model(m, "insert_block", optimizer=opt, target="blocks", new_lr_scale=0.1)
    groups = out.optimizer.param_groups
    assert len(groups) == 2 and groups[1]["lr"] == pytest.approx(1e-3) and groups[1]["new"]
    plan = out.results[0].plan
    n_new = sum(1 for n, _ in out.module.named_parameters() if plan.entries[n].src is None)
    assert len(groups[1]["params"]) == n_new


# ------------------------------------------------------------------ a wrong rewrite is caught
def test_broken_rewrite_is_caught_and_names_the_node():
    @rewrite("bad_add_head", applies_to=["attention"])
    def bad(graph, target=None, n=1):
        res = REWRITES["add_head"].fn(graph, target, n)
        res.plan.entries[f"{target}.proj.weight"].init = "random"  # new proj columns not zero
        res.plan.post.clear()  # ... and not zeroed after the copy either
        return res

    try:
        with pytest.raises(VerifyError) as ei:
            grow_model(model(), "bad_add_head", target="blocks.1.attn")
        assert ei.value.node == "blocks.1.attn.proj"  # the part whose output first differs
    finally:
        del REWRITES["bad_add_head"]


# ------------------------------------------------------------------ emit round trip, errors
def test_emit_round_trip_reproduces_outputs():
    out = grow_model(model(), [("add_head", {"target": "blocks.0.attn"}), ("insert_block", {"target": "blocks", "at": 1}),
                               ("widen_mlp", {"target": "blocks.2.mlp", "by": 4})])
    g = out.module
    back = morphdsl.compile(morphdsl.parse(morphdsl.emit(g.morph_graph)))
    back.load_state_dict(g.state_dict())
    x = torch.randint(0, 32, (2, 10))
    with torch.no_grad():
        assert torch.equal(back(x), g(x))


def test_bad_requests_are_growth_errors_with_hints():
    g = model().morph_graph
    with pytest.raises(GrowthError) as e1:
        grow(g, "add_hed")
    assert "add_head" in e1.value.hint
    with pytest.raises(GrowthError) as e2:
        grow(g, "add_head", target="blocks.7.attn")
    assert e2.value.hint
    with pytest.raises(GrowthError):
        grow(g, "add_head", target="blocks.0.mlp")  # not an attention
    with pytest.raises(GrowthError):
        grow(g, "insert_block", target="blocks", at=9)


def test_cli_grow(tmp_path, capsys):
    spec = tmp_path / "t.morph"
    spec.write_text(SPEC)
    out, w = tmp_path / "g.morph", tmp_path / "g.safetensors"
    assert main(["grow", str(spec), "--op", "add_head(blocks.1.attn, n = 2)", "--op", "insert_block(blocks, at = 0)",
                 "-o", str(out), "--save", str(w), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert [s["op"] for s in rep["steps"]] == ["add_head", "insert_block"]
    assert all(s["ok"] and s["max_abs_err"] < 1e-5 for s in rep["steps"])
    assert rep["steps"][0]["params_after"] > rep["steps"][0]["params_before"]
    assert main(["grow", str(out), "--weights", str(w), "--op", "widen_mlp(by = 4)"]) == 0
    assert main(["grow", str(spec), "--op", "add_head(blocks.9.attn)"]) == 1
    err = capsys.readouterr().err
    assert "no attention layer at `blocks.9.attn`" in err and "hint" in err


def test_widen_embed_duplicates_channels_exactly():
    m = model()
    out = grow_model(m, "widen_embed", factor=2, noise=0.01)
    new = out.module
    s = new.morph_graph.param_shapes()
    assert s["tok.weight"] == (32, 32) and s["blocks.0.attn.qkv.weight"] == (3 * 4 * 8, 32)
    assert s["blocks.0.mlp.fc.weight"] == (32, 32) and s["blocks.0.mlp.proj.weight"] == (32, 32)
    assert out.reports[0].ok and out.reports[0].max_abs_err < 1e-5
    fc = new.get_submodule("blocks.0.mlp").fc.weight
    assert not torch.equal(fc[:, :16], fc[:, 16:])  # the noise broke the symmetry ...
    torch.testing.assert_close(fc[:, :16] + fc[:, 16:], m.get_submodule("blocks.0.mlp").fc.weight)  # ... exactly
    back = morphdsl.compile(morphdsl.emit(new.morph_graph))
    back.load_state_dict(new.state_dict())
    x = torch.randint(0, 32, (2, 10))
    with torch.no_grad():
        assert torch.equal(back(x), new(x))


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_widen_embed_noise_makes_every_copy_distinct_and_exact(factor):
    m = model()
    new = grow_model(m, "widen_embed", factor=factor).module  # default noise
    fc, old = new.get_submodule("blocks.0.mlp").fc.weight, m.get_submodule("blocks.0.mlp").fc.weight
    copies = fc.detach().split(16, dim=1)
    assert len(copies) == factor
    assert all(not torch.allclose(a, b) for i, a in enumerate(copies) for b in copies[i + 1:])
    torch.testing.assert_close(sum(copies), old.detach())


def test_widen_embed_without_noise_the_copies_never_separate():
    """The symmetry the noise is there to break: with noise = 0 both copies of every channel get
    the same gradient, so after training they are still copies (the model kept its old width)."""
    torch.manual_seed(0)
    x = torch.randint(0, 32, (4, 12))
    for noise, separate in ((0.0, False), (0.1, True)):
        new = grow_model(model(), "widen_embed", factor=2, noise=noise).module
        opt = torch.optim.AdamW(new.parameters(), lr=1e-2)
        for _ in range(3):
            loss = torch.nn.functional.cross_entropy(new(x).flatten(0, 1), x.flatten())
            opt.zero_grad()
            loss.backward()
            opt.step()
        tok = new.get_submodule("tok").weight.detach()
        assert torch.equal(tok[:, :16], tok[:, 16:]) is not separate


def test_widen_embed_refuses_lanes():
    with pytest.raises(GrowthError) as e:
        grow(lanes_model().morph_graph, "widen_embed")
    assert "add_lane" in str(e.value)


def test_add_lane_appends_lanes_and_keeps_old_ones():
    m = lanes_model()
    out = grow_model(m, "add_lane", n=2)
    new = out.module
    s = new.morph_graph.param_shapes()
    assert s["tok.weight"] == (256, 96) and s["lanes.blocks.0.attn.qkv.weight"] == (6, 3 * 16, 16)
    assert s["lanes.blocks.1.mlp.w0"][0] == 6 and s["lanes.mixer.logits"] == (6, 6)
    assert out.reports[0].ok
    assert new.tok.weight[:, 64:].abs().sum() == 0  # tied unembed: new channels start silent
    torch.testing.assert_close(new.get_submodule("lanes.blocks.0.attn").qkv.weight[:4],
                               m.get_submodule("lanes.blocks.0.attn").qkv.weight)
    with pytest.raises(GrowthError):
        grow(model().morph_graph, "add_lane")  # no partition


def test_grow_pyramid_adds_a_level():
    torch.manual_seed(0)
    m = morphdsl.compile("specs/pyramid.morph")
    out = grow_model(m, "grow_pyramid", target="p0")
    new = out.module
    s = new.morph_graph.param_shapes()
    assert s["p0.expand.weight"] == (4 * 32, 32) and s["p1.expand.weight"] == (2 * 32, 32)
    assert "p0.tree.l.l.mlp.fc.weight" in s and "p0.tree.r.merge.attn.qkv.weight" in s
    assert s["p0.tree.proj.weight"] == (32, 64)
    torch.testing.assert_close(new.get_submodule("p0.tree.l.merge.mlp").fc.weight,
                               m.get_submodule("p0.tree.merge.mlp").fc.weight)
    assert new.get_submodule("p0.tree.merge.attn").proj.weight.abs().sum() == 0
    assert torch.equal(new.get_submodule("p0.tree.proj").weight[:, :32], torch.eye(32))
    assert out.reports[0].ok
    with pytest.raises(GrowthError) as e:
        grow(m.morph_graph, "grow_pyramid")
    assert "p0" in e.value.hint


def test_insert_named_block_makes_a_heterogeneous_stack_that_round_trips():
    m = model()
    out = grow_model(m, "insert_block", target="blocks", at=2, block="B", args={"d": 16, "heads": 4})
    new = out.module
    assert new.morph_graph.unit("blocks.2.attn").resolved["heads"] == 4 and out.reports[0].ok
    text = morphdsl.emit(new.morph_graph)
    assert "repeat" not in text  # the blocks differ: written out one by one
    back = morphdsl.compile(text)
    back.load_state_dict(new.state_dict())
    x = torch.randint(0, 32, (2, 10))
    with torch.no_grad():
        assert torch.equal(back(x), new(x))
    with pytest.raises(GrowthError) as e:
        grow(m.morph_graph, "insert_block", target="blocks", block="B", args={"d": 16, "hedz": 4})
    assert "heads" in e.value.hint


def test_spec_grow_rules_bind_to_rewrites():
    from morphdsl.rewrites.parse_op import bind_args

    g = morphdsl.build(SPEC + "grow {\n  step(10) -> widen_mlp(blocks.*.mlp, by = 8), add_head(n = 1)\n}\n")
    acts = g.sections["grow"][0]["actions"]
    res = grow(g, [(a["name"], bind_args(a["name"], a["args"], a["kwargs"])) for a in acts])
    assert [s.op for s in res.steps] == ["widen_mlp", "add_head"]
    assert res.graph.param_shapes()["blocks.1.mlp.fc.weight"] == (40, 16)
    with pytest.raises(GrowthError):
        bind_args("widen_mlp", ["blocks.0.mlp"], {"bye": 3})
