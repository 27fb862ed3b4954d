"""Growth transactions: one optimizer build, param groups and LR scales kept, generic optimizer
state, and a failure at any stage leaves the model and optimizer bit-for-bit as they were."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import morphdsl
from morphdsl.errors import GrowthError, VerifyError
from morphdsl.growth import GrowthTransaction, IdentityError, set_lr
from morphdsl.rewrites import REWRITES
from morphdsl.rewrites.registry import rewrite

SPEC = """
spec t
block B(d, heads) {
  residual {
    ln1: layernorm
    attn: attention(heads = heads)
  }
  residual {
    ln2: layernorm
    mlp: mlp(hidden = 4 * d)
  }
}
model {
  tok: embed(vocab = 32, dim = 16)
  pos: pos_embed(ctx = 16)
  blocks: repeat(2) {
    B(d = 16, heads = 2)
  }
  ln_f: layernorm
  head: unembed(vocab = 32, tie = tok)
}
"""
IDX = torch.randint(0, 32, (4, 12), generator=torch.Generator().manual_seed(1))


def trained(opt_cls=torch.optim.AdamW, groups=False, **kw):
    torch.manual_seed(0)
    m = morphdsl.compile(SPEC)
    if groups:  # decay / no-decay, as the trainer makes them
        ps = list(m.parameters())
        params = [{"params": [p for p in ps if p.dim() >= 2], "weight_decay": 0.1},
                  {"params": [p for p in ps if p.dim() < 2], "weight_decay": 0.0}]
    else:
        params = m.parameters()
    opt = opt_cls(params, lr=1e-2, **kw)
    for _ in range(3):
        opt.zero_grad()
        loss(m).backward()
        opt.step()
    return m, opt


def loss(m):
    logits = m(IDX[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), IDX[:, 1:].reshape(-1))


def snapshot(m, opt):
    params = {n: p.detach().clone() for n, p in m.named_parameters()}
    names = {id(p): n for n, p in m.named_parameters()}
    state = {names[id(p)]: {k: (v.clone() if torch.is_tensor(v) else v) for k, v in st.items()}
             for p, st in opt.state.items()}
    groups = [{k: v for k, v in g.items() if k != "params"} | {"params": [names[id(p)] for p in g["params"]]}
              for g in opt.param_groups]
    return params, state, groups, m.morph_graph.param_shapes(), list(m.morph_graph.history)


def assert_same(a, b):
    pa, sa, ga, shapes_a, ha = a
    pb, sb, gb, shapes_b, hb = b
    assert pa.keys() == pb.keys() and all(torch.equal(pa[k], pb[k]) for k in pa)
    assert sa.keys() == sb.keys()
    for n in sa:
        assert sa[n].keys() == sb[n].keys()
        for k in sa[n]:
            x, y = sa[n][k], sb[n][k]
            assert torch.equal(x, y) if torch.is_tensor(x) else x == y
    assert ga == gb and shapes_a == shapes_b and ha == hb


# ------------------------------------------------------------------ rollback
@pytest.mark.parametrize("share", [False, True])
def test_broken_transfer_is_caught_rolled_back_and_names_rewrite_and_node(share):
    @rewrite("bad_widen", applies_to=["hidden"])
    def bad(graph, target=None, by=4):
        res = REWRITES["widen_mlp"].fn(graph, target, by)
        e = res.plan.entries[f"{target}.proj.weight"]
        e.init = "random"          # new output columns not zero ...
        res.plan.post.clear()      # ... and not zeroed after the copy either
        return res

    try:
        m, opt = trained()
        before = snapshot(m, opt)
        txn = GrowthTransaction(m, opt, step=7, share=share)  # share: fails after handing over
        with pytest.raises(IdentityError) as ei:
            txn.apply("bad_widen", {"target": "blocks.1.mlp", "by": 4})
        assert isinstance(ei.value, VerifyError) and isinstance(ei.value, GrowthError)
        assert ei.value.node == "blocks.1.mlp"
        assert "bad_widen(blocks.1.mlp, by=4)" in ei.value.message and ei.value.hint
        assert txn.module is m and txn.optimizer is opt
        assert_same(before, snapshot(m, opt))
        # the same transaction then grows correctly
        r = txn.apply("widen_mlp", {"target": "blocks.1.mlp", "by": 4})
        assert r.report.ok and txn.module is r.module is not m
    finally:
        del REWRITES["bad_widen"]


def test_transfer_that_does_not_fit_is_a_growth_error_naming_tensor_and_stage():
    @rewrite("bad_map", applies_to=["attention"])
    def bad(graph, target=None, n=1):
        res = REWRITES["add_head"].fn(graph, target, n)
        e = res.plan.entries[f"{target}.qkv.bias"]
        e.maps = (([0, 1], [0]),)   # a map with more old indices than new ones
        return res

    try:
        m, opt = trained()
        before = snapshot(m, opt)
        with pytest.raises(GrowthError) as ei:
            GrowthTransaction(m, opt).apply("bad_map", {"target": "blocks.0.attn"})
        msg = ei.value.message
        assert "bad_map(blocks.0.attn)" in msg and "could not move the weights" in msg
        assert "blocks.0.attn.qkv.bias" in msg and ei.value.node == "blocks.0.attn.qkv"
        assert_same(before, snapshot(m, opt))
    finally:
        del REWRITES["bad_map"]


@pytest.mark.parametrize("op,args,match", [
    ("add_hed", {"target": "blocks.0.attn"}, "unknown growth op"),
    ("add_head", {"target": "blocks.7.attn"}, "blocks.7.attn"),
    ("widen_mlp", {"target": "blocks.0.mlp", "by": 4, "wide": 2}, "bad arguments"),
])
def test_bad_requests_are_growth_errors_with_hints_and_change_nothing(op, args, match):
    m, opt = trained()
    before = snapshot(m, opt)
    with pytest.raises(GrowthError, match=match) as ei:
        GrowthTransaction(m, opt).apply(op, args)
    assert ei.value.hint
    assert_same(before, snapshot(m, opt))


def test_memory_hook_error_passes_through_unchanged_and_changes_nothing():
    class Stop(GrowthError):
        pass

    def refuse(graph):
        raise Stop("too big")

    m, opt = trained()
    before = snapshot(m, opt)
    with pytest.raises(Stop) as ei:
        GrowthTransaction(m, opt, before_compile=refuse).apply("insert_block", {"target": "blocks"})
    assert ei.value.message == "too big"
    assert_same(before, snapshot(m, opt))


# ------------------------------------------------------------------ the optimizer
def test_one_optimizer_build_per_growth_and_groups_kept():
    builds = []

    class Counted(torch.optim.AdamW):
        def __init__(self, *a, **k):
            builds.append(1)
            super().__init__(*a, **k)

    m, opt = trained(Counted, groups=True)
    builds.clear()
    txn = GrowthTransaction(m, opt)
    for op, args in [("add_head", {"target": "blocks.0.attn"}), ("widen_mlp", {"by": 8}),
                     ("insert_block", {"target": "blocks", "at": 1})]:
        txn.apply(op, args)
    assert len(builds) == 3
    g = txn.optimizer.param_groups
    assert [x["weight_decay"] for x in g] == [0.1, 0.0]
    names = {id(p): n for n, p in txn.module.named_parameters()}
    for n in [names[id(p)] for p in g[0]["params"]]:
        assert txn.module.get_parameter(n).dim() >= 2
    for n in [names[id(p)] for p in g[1]["params"]]:  # the new block's norms: no decay
        assert txn.module.get_parameter(n).dim() < 2
    assert "blocks.1.ln1.weight" in [names[id(p)] for p in g[1]["params"]]
    assert all(txn.meta.slices(n)[0].group == (0 if p.dim() >= 2 else 1)
               for n, p in txn.module.named_parameters())


def test_new_lr_scale_group_and_slice_scales_survive_further_growth():
    m, opt = trained(groups=True)
    txn = GrowthTransaction(m, opt, new_lr_scale=0.1, step=5)
    txn.apply("insert_block", {"target": "blocks", "at": 1})
    txn.new_lr_scale = None
    txn.apply("widen_mlp", {"target": "blocks.0.mlp", "by": 8})  # a later growth keeps the groups
    g = txn.optimizer.param_groups
    assert len(g) == 4 and [x.get("new", False) for x in g] == [False, False, True, True]
    assert [x.get("lr_scale", 1.0) for x in g] == [1.0, 1.0, 0.1, 0.1]
    set_lr(txn.optimizer, 2e-3)
    assert [x["lr"] for x in g] == pytest.approx([2e-3, 2e-3, 2e-4, 2e-4])
    sl = txn.meta.slices("blocks.1.attn.qkv.weight")
    assert len(sl) == 1 and sl[0].op == "insert_block" and sl[0].lr_scale == 0.1 and sl[0].step == 5
    assert g[sl[0].group]["weight_decay"] == 0.1 and g[sl[0].group]["new"]
    assert g[txn.meta.slices("blocks.1.ln1.weight")[0].group]["weight_decay"] == 0.0


@pytest.mark.parametrize("opt_cls,kw,key", [(torch.optim.SGD, {"momentum": 0.9}, "momentum_buffer"),
                                            (torch.optim.Adam, {}, "exp_avg_sq"),
                                            (torch.optim.AdamW, {"amsgrad": True}, "max_exp_avg_sq")])
def test_state_follows_slices_for_any_optimizer(opt_cls, kw, key):
    m, opt = trained(opt_cls, **kw)
    r = GrowthTransaction(m, opt).apply("widen_mlp", {"target": "blocks.0.mlp", "by": 8})
    old_p, new_p = m.get_parameter("blocks.0.mlp.fc.weight"), r.module.get_parameter("blocks.0.mlp.fc.weight")
    old_s, new_s = opt.state[old_p][key], r.optimizer.state[new_p][key]
    assert new_s.shape == new_p.shape == (72, 16)
    assert torch.equal(new_s[:64], old_s) and not new_s[64:].any()
    if "step" in opt.state[old_p]:
        assert r.optimizer.state[new_p]["step"] == opt.state[old_p]["step"]
    # an untouched tensor's state is a copy (the old optimizer stays usable)
    a, b = m.get_parameter("tok.weight"), r.module.get_parameter("tok.weight")
    assert torch.equal(opt.state[a][key], r.optimizer.state[b][key])
    assert opt.state[a][key].data_ptr() != r.optimizer.state[b][key].data_ptr()
    assert r.module.get_parameter("tok.weight").data_ptr() != a.data_ptr()


def test_share_hands_unchanged_state_over_and_matches_copying():
    m, opt = trained()
    torch.manual_seed(3)
    a = GrowthTransaction(m, opt).apply("add_head", {"target": "blocks.0.attn"})
    torch.manual_seed(3)
    b = GrowthTransaction(m, opt, share=True).apply("add_head", {"target": "blocks.0.attn"})
    pa, pb = dict(a.module.named_parameters()), dict(b.module.named_parameters())
    for n in pa:
        assert torch.equal(pa[n], pb[n])
        for k, v in a.optimizer.state[pa[n]].items():
            assert torch.equal(v, b.optimizer.state[pb[n]][k])
    old = m.get_parameter("tok.weight")
    assert b.optimizer.state[pb["tok.weight"]]["exp_avg"] is opt.state[old]["exp_avg"]
    # unchanged tensors are the old Parameter objects themselves; grown ones are new tensors
    assert pb["tok.weight"] is old and pb["blocks.1.mlp.fc.weight"] is m.get_parameter("blocks.1.mlp.fc.weight")
    assert pb["blocks.0.attn.qkv.weight"] is not m.get_parameter("blocks.0.attn.qkv.weight")
    assert pa["tok.weight"] is not old  # without share: a copy
    # and the shared model trains like the copied one
    for r in (a, b):
        r.optimizer.zero_grad()
        loss(r.module).backward()
        r.optimizer.step()
    assert all(torch.equal(p, dict(b.module.named_parameters())[n])
               for n, p in a.module.named_parameters())


def test_probe_outputs_are_returned_for_the_caller():
    m, opt = trained()
    r = GrowthTransaction(m, opt, probe=IDX).apply("insert_block", {"target": "blocks"})
    assert r.before.shape == r.after.shape == (4, 12, 32)
    assert torch.allclose(r.before, r.after, atol=1e-5) and r.report.max_abs_err < 1e-5
    assert set(r.times) >= {"rewrite", "checks", "compile", "weights", "optimizer", "identity"}
