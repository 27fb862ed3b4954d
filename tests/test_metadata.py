"""Per-parameter slice metadata: origin and step per slice after growth, exact tiling after random
rewrite sequences, checkpoint -> resume -> emit -> recompile, and frozen slices under AdamW."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import morphdsl
from morphdsl.errors import GrowthError
from morphdsl.growth import GrowthTransaction, ParamMeta, attach
from morphdsl.growth.metadata import full
from morphdsl.rewrites.transfer import Mover
from morphdsl.train import checkpoint as ckpt
from morphdsl.train.ckpt_files import CheckpointError
from morphdsl.train.config import TrainConfig

from test_transaction import IDX, SPEC, loss, trained

GROWTH = [(10, "add_head", {"target": "blocks.0.attn", "n": 1}),
          (20, "widen_mlp", {"target": "blocks.*.mlp", "by": 8}),
          (30, "insert_block", {"target": "blocks", "at": 1})]


def grown():
    m, opt = trained()
    txn = GrowthTransaction(m, opt)
    for step, op, args in GROWTH:
        txn.step = step
        txn.apply(op, args)
    return txn


def grown_module_params(meta):
    """(name, shape-like) from the slices themselves: the box they span."""
    for n, sl in meta.params.items():
        yield n, tuple(max(s.index[d][1] for s in sl) for d in range(len(sl[0].index)))


def origins(meta, name):
    return [(s.index, s.op, s.step) for s in meta.slices(name)]


def test_each_slice_reports_its_origin_and_step():
    meta = grown().meta
    # 2 heads of 8 -> 3: each of the q, k, v sections keeps 16 old rows and gains 8 new ones
    assert origins(meta, "blocks.0.attn.qkv.weight") == [
        (((0, 16), (0, 16)), "init", 0), (((16, 24), (0, 16)), "add_head", 10),
        (((24, 40), (0, 16)), "init", 0), (((40, 48), (0, 16)), "add_head", 10),
        (((48, 64), (0, 16)), "init", 0), (((64, 72), (0, 16)), "add_head", 10)]
    assert origins(meta, "blocks.0.attn.proj.weight") == [
        (((0, 16), (0, 16)), "init", 0), (((0, 16), (16, 24)), "add_head", 10)]
    # old blocks.1 is blocks.2 now: its widened MLP keeps both origins
    for b in (0, 2):
        assert origins(meta, f"blocks.{b}.mlp.fc.weight") == [
            (((0, 64), (0, 16)), "init", 0), (((64, 72), (0, 16)), "widen_mlp", 20)]
        assert origins(meta, f"blocks.{b}.mlp.proj.weight") == [
            (((0, 16), (0, 64)), "init", 0), (((0, 16), (64, 72)), "widen_mlp", 20)]
    shapes = dict(grown_module_params(meta))
    new = [n for n in shapes if n.startswith("blocks.1.")]
    assert new and all(origins(meta, n) == [(full(shapes[n]), "insert_block", 30)] for n in new)
    s = meta.slices("blocks.1.mlp.fc.weight")[0]
    assert s.origin == "insert_block(blocks)" and s.args == {"at": 1} and not s.frozen
    assert origins(meta, "tok.weight") == [(((0, 32), (0, 16)), "init", 0)]


def test_metadata_survives_checkpoint_resume_emit_recompile(tmp_path):
    from morphdsl.data import make_tokenizer

    txn = grown()
    txn.meta.freeze("blocks.0.attn.qkv.weight", ((16, 24), None))
    cfg = TrainConfig()
    state = {"step": 30, "tokens": 0, "lr_scale": 1.0, "last_growth_step": 30, "val_history": [],
             "controllers": [], "config": cfg.to_dict()}
    rng = ckpt.rng_state(torch.Generator())
    from morphdsl.train.optim import state_by_name

    d = ckpt.save_checkpoint(tmp_path, module=txn.module, meta=txn.meta,
                             opt_state=state_by_name(txn.module, txn.optimizer), lr=1e-3, rng=rng,
                             state=state, tokenizer=make_tokenizer("bytes"))
    assert json.loads((d / "meta.json").read_text())["version"] == 1
    r = ckpt.load_checkpoint(tmp_path, training=True)
    assert r["meta"] == txn.meta and r["module"].morph_meta == txn.meta
    # emit -> recompile: the names are the spec's paths, so the metadata applies unchanged
    back = morphdsl.compile(morphdsl.emit(r["module"].morph_graph))
    assert ParamMeta.from_json(json.loads(json.dumps(r["meta"].to_json()))).conform(back) == txn.meta
    assert origins(r["meta"], "blocks.2.mlp.fc.weight")[1] == (((64, 72), (0, 16)), "widen_mlp", 20)
    assert r["meta"].slices("blocks.0.attn.qkv.weight")[1].frozen
    # the module saved without explicit meta carries it as morph_meta
    state["step"] = 31
    ckpt.save_checkpoint(tmp_path, module=r["module"], opt_state={}, lr=1e-3, rng=rng,
                         state=state, tokenizer=make_tokenizer("bytes"))
    assert ckpt.load_checkpoint(tmp_path)["meta"] == txn.meta


def test_old_checkpoints_load_with_init_metadata_and_bad_ones_are_named(tmp_path):
    from morphdsl.data import make_tokenizer

    m, opt = trained()
    state = {"step": 3, "tokens": 0, "lr_scale": 1.0, "last_growth_step": 0, "val_history": [],
             "controllers": [], "config": TrainConfig().to_dict()}
    d = ckpt.save_checkpoint(tmp_path, module=m, opt_state={}, lr=1e-3,
                             rng=ckpt.rng_state(torch.Generator()), state=state,
                             tokenizer=make_tokenizer("bytes"))
    (d / "meta.json").unlink()  # as written by morphdsl before the metadata existed
    meta = ckpt.load_checkpoint(tmp_path)["meta"]
    assert all(origins(meta, n) == [(full(p.shape), "init", 0)] for n, p in m.named_parameters())
    (d / "meta.json").write_text(json.dumps({"version": 1, "params": {
        "tok.weight": [{"index": [[0, 31], [0, 16]]}]}}))
    with pytest.raises(CheckpointError, match="meta.json: does not fit spec.morph: metadata slices "
                                              "of `tok.weight` cover 496 of its 512"):
        ckpt.load_checkpoint(tmp_path)
    (d / "meta.json").write_text("[1]")
    with pytest.raises(CheckpointError, match="meta.json: not a JSON object"):
        ckpt.load_checkpoint(tmp_path)


def test_frozen_slice_is_bit_unchanged_by_50_adamw_steps():
    txn = grown()
    m = txn.module
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=0.1)  # an engine's own optimizer
    meta = txn.meta.freeze("blocks.0.attn.qkv.weight", ((16, 24), None))  # the new head's q rows
    meta.freeze("blocks.1.mlp.fc.weight")                                 # a whole tensor
    assert attach(m, opt, meta) is not None
    w, fc = m.get_parameter("blocks.0.attn.qkv.weight"), m.get_parameter("blocks.1.mlp.fc.weight")
    w0, fc0 = w.detach().clone(), fc.detach().clone()
    for _ in range(50):
        opt.zero_grad()
        loss(m).backward()
        opt.step()
    assert torch.equal(w[16:24], w0[16:24]) and torch.equal(fc, fc0)
    assert not torch.equal(w[:16], w0[:16]) and not torch.equal(w[24:], w0[24:])
    assert not opt.state[w]["exp_avg"][16:24].any()  # no gradient ever reached the frozen rows
    assert opt.state[w]["exp_avg"][:16].abs().sum() > 0


def test_lr_scaled_slice_moves_by_that_fraction_of_the_step():
    m, opt = trained()
    meta = ParamMeta.initial(m, opt).update("blocks.0.mlp.fc.weight", ((0, 8), None), lr_scale=0.25)
    w = m.get_parameter("blocks.0.mlp.fc.weight")
    w0 = w.detach().clone()
    attach(m, opt, meta)
    opt.zero_grad()
    loss(m).backward()
    opt.step()
    d = w.detach() - w0  # the unscaled rows move by the full step, the scaled ones by 1/4 of it
    assert d[8:].abs().sum() > 0
    m2, opt2 = trained()
    opt2.zero_grad()
    loss(m2).backward()
    opt2.step()
    full_step = m2.get_parameter("blocks.0.mlp.fc.weight").detach() - w0
    torch.testing.assert_close(d[:8], 0.25 * full_step[:8], rtol=1e-5, atol=1e-8)
    assert torch.equal(d[8:], full_step[8:])


def test_bad_metadata_edits_are_growth_errors_with_hints():
    meta = ParamMeta.initial(trained()[0])
    with pytest.raises(GrowthError, match="no parameter `tok.wieght`") as e:
        meta.freeze("tok.wieght")
    assert "tok.weight" in e.value.hint
    with pytest.raises(GrowthError, match="outside dimension 0 of size 32") as e:
        meta.freeze("tok.weight", ((30, 40),))
    assert e.value.hint
    with pytest.raises(GrowthError, match="unknown slice attribute"):
        meta.update("tok.weight", frozn=True)


# ------------------------------------------------------------------ random rewrite sequences
OPS = [("add_head", {"target": "blocks.0.attn", "n": 1}), ("add_head", {"target": "blocks.*.attn"}),
       ("widen_mlp", {"by": 8}), ("widen_mlp", {"target": "blocks.1.mlp", "by": 4}),
       ("insert_block", {"target": "blocks", "at": 1}), ("insert_block", {"target": "blocks"}),
       ("prune_units", {"target": "blocks.0.mlp", "k": 4}), ("widen_embed", {"factor": 2})]


def painted(meta, shapes):
    """Each tensor with every entry set to the step of the slice it is in."""
    out = {}
    for n, shape in shapes.items():
        t = torch.full(shape, -1.0)
        for s in meta.slices(n):
            t[tuple(slice(a, b) for a, b in s.index)] = float(s.step)
        out[n] = t
    return out


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(range(len(OPS))), min_size=1, max_size=4))
def test_slices_tile_every_parameter_and_follow_the_entries(seq):
    m, opt = trained()
    txn = GrowthTransaction(m, opt)
    for i, k in enumerate(seq, start=1):
        op, args = OPS[k]
        old, old_meta = txn.module, txn.meta
        txn.step = i
        try:
            r = txn.apply(op, args)
        except GrowthError:  # e.g. nothing left to prune: the transaction keeps the old state
            assert txn.module is old and txn.meta is old_meta
            continue
        shapes = {n: tuple(p.shape) for n, p in r.module.named_parameters()}
        r.meta.check(shapes)  # exact tiling
        before = painted(old_meta, {n: tuple(p.shape) for n, p in old.named_parameters()})
        after = painted(r.meta, shapes)
        for n, shape in shapes.items():
            e = r.rewrite.plan.entries.get(n)
            if e is None or e.src is None or e.fn is not None:
                assert (after[n] == i).all() or e.fn is not None
                continue
            want = torch.full(shape, float(i))  # where no old entry lands: this rewrite's step
            Mover(e, before[e.src].shape, shape)(before[e.src], want)
            assert torch.equal(after[n], want), (op, n)
