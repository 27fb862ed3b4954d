"""Ops own their axes: the generic rewrites grow whatever declares an axis, exactly.

- an op registered here, in this file alone, with a declared `hidden` axis, is widened and
  pruned by widen_mlp / prune_units without any rewrite knowing it;
- hidden units of a gated MLP (`mlp(act = swiglu)`), of a `linear -> gelu -> linear` chain and of
  a SwiGLU written as `parallel(join = mul) { linear; silu | linear }` grow exactly;
- the index maps of ops/axes.py, checked against a hand-built layout.
"""
from __future__ import annotations

import re

import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

import morphdsl
from morphdsl import grow_model
from morphdsl.errors import GrowthError
from morphdsl.ops import REGISTRY, Args, Op
from morphdsl.ops.axes import Axis, Slice, grow_maps, keep_maps
from morphdsl.ops.basic import need_features
from morphdsl.ops.types import PosInt


class ToyFFN(nn.Module):
    """y = B relu(A x)^2: a 'squared relu' feed-forward that no rewrite has heard of."""

    def __init__(self, dim, units):
        super().__init__()
        self.a = nn.Linear(dim, units, bias=False)
        self.b = nn.Linear(units, dim, bias=False)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)) ** 2)


class ToyOp(Op):
    name = "toyffn"
    doc = "a test-only op: B relu(A x)^2"
    channels = "full"

    class Args(Args):
        units: PosInt

    def infer(self, a, inputs, lanes):
        return {**a, "dim": need_features(self.name, inputs)}, inputs[0]

    def param_shapes(self, r):
        return {"a.weight": (r["units"], r["dim"]), "b.weight": (r["dim"], r["units"])}

    def build(self, r):
        return ToyFFN(r["dim"], r["units"])

    def axes(self, r):
        return {"hidden": Axis("hidden", r["units"], (Slice("a.weight", 0, "in"),
                                                      Slice("b.weight", 1, "out")))}

    def resize(self, axis, args, r, n):
        return {**args, "units": n}


@pytest.fixture
def toy_op():
    REGISTRY["toyffn"] = ToyOp()
    yield
    del REGISTRY["toyffn"]


def tokens():
    return torch.randint(0, 16, (2, 6), generator=torch.Generator().manual_seed(0))


def spec(body: str) -> str:
    return ("block B(d) {\n  residual {\n    ln: layernorm\n" + body +
            "\n  }\n}\nmodel {\n  tok: embed(vocab = 16, dim = 32)\n"
            "  blocks: repeat(2) {\n    B(d = 32)\n  }\n  head: unembed(vocab = 16)\n}\n")


def grown(text, op, **kw):
    torch.manual_seed(0)
    m = morphdsl.compile(text)
    for p in m.parameters():  # nonzero everywhere, so a wrong map shows in the output
        p.data.normal_(0, 0.3)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    m(tokens()).sum().backward()
    opt.step()
    g = grow_model(m, op, optimizer=opt, **kw)
    return m, g


def test_a_toy_op_declared_in_this_file_is_widened_and_pruned(toy_op):
    text = spec("    ffn: toyffn(units = 24)")
    m, g = grown(text, "widen_mlp", target="blocks.*.ffn", by=8)
    assert g.reports[0].ok and g.reports[0].max_abs_err < 1e-5
    sd = g.module.state_dict()
    assert sd["blocks.0.ffn.a.weight"].shape == (32, 32) and sd["blocks.1.ffn.b.weight"].shape == (32, 32)
    assert torch.equal(sd["blocks.0.ffn.b.weight"][:, 24:], torch.zeros(32, 8))
    assert torch.equal(sd["blocks.0.ffn.a.weight"][:24], m.state_dict()["blocks.0.ffn.a.weight"])
    assert "units = 32" in morphdsl.emit(g.module.morph_graph)
    p = grow_model(g.module, "prune_units", target="blocks.0.ffn", k=4)
    assert p.module.state_dict()["blocks.0.ffn.a.weight"].shape == (28, 32)


def test_gated_mlp_widens_exactly_and_prunes_both_halves():
    text = spec("    mlp: mlp(hidden = 24, act = swiglu)")
    m, g = grown(text, "widen_mlp", by=8)
    assert g.reports[0].max_abs_err < 1e-5
    old, new = m.state_dict()["blocks.0.mlp.fc.weight"], g.module.state_dict()["blocks.0.mlp.fc.weight"]
    assert new.shape == (64, 32)
    assert torch.equal(new[:24], old[:24]) and torch.equal(new[32:56], old[24:])  # gate, up kept
    state = g.optimizer.state[dict(g.module.named_parameters())["blocks.0.mlp.fc.weight"]]
    assert torch.equal(state["exp_avg"][24:32], torch.zeros(8, 32))  # new units: zero moments
    p = grow_model(g.module, "prune_units", target="blocks.1.mlp", k=2)
    assert p.module.state_dict()["blocks.1.mlp.fc.weight"].shape == (60, 32)


@pytest.mark.parametrize("body", [
    "    ffn {\n      fc: linear(out = 48)\n      act: gelu(approximate = \"tanh\")\n      proj: linear(out = 32)\n    }",
    "    ffn {\n      parallel(join = mul) {\n        gate { linear(out = 40)\n silu }\n        up: linear(out = 40)\n      }\n"
    "      down: linear(out = 32)\n    }",
])
def test_linear_chains_are_hidden_axes(body):
    text = spec(body)
    m, g = grown(text, "widen_mlp", target="blocks.*.ffn", by=8)
    assert g.reports[0].max_abs_err < 1e-5
    notes = g.results[0].notes
    assert sorted(n.split(":")[0] for n in notes) == ["blocks.0.ffn", "blocks.1.ffn"], notes
    p = grow_model(g.module, "prune_units", target="blocks.0.ffn", k=3)
    before, after = map(int, re.search(r"hidden (\d+) -> (\d+)", p.results[0].notes[0]).groups())
    assert before - after == 3
    shapes = {k: tuple(v.shape) for k, v in p.module.state_dict().items() if k.startswith("blocks.0.ffn")}
    assert sum(s[0] == after for k, s in shapes.items() if k.endswith("weight")) >= 1, shapes


def test_a_chain_whose_middle_escapes_is_not_a_hidden_axis():
    # the activation also feeds a residual-free branch out of the chain: new units would leak
    text = ("model(features = 8) {\n  a: linear(out = 8)\n  parallel(join = add) {\n"
            "    g { r: relu\n b: linear(out = 8) }\n    identity\n  }\n}\n")
    with pytest.raises(GrowthError, match="no mlp"):
        morphdsl.grow(morphdsl.build(text), "widen_mlp", target="g", by=4)


def test_errors_name_the_targets_there_are():
    g = morphdsl.build("specs/gpt_tiny.morph")
    with pytest.raises(GrowthError) as e:
        morphdsl.grow(g, "widen_mlp", target="blocks.0.ln1", by=4)
    assert "no hidden axis" in e.value.message and "blocks.0.mlp" in e.value.hint
    g2 = morphdsl.build("model(features = 8) {\n  r: relu\n}\n")
    with pytest.raises(GrowthError) as e:
        morphdsl.grow(g2, "widen_mlp", by=4)
    assert e.value.hint and "axis" in e.value.hint


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 3), st.integers(0, 3))
def test_grow_maps_keep_every_old_entry_in_its_section(sections, units, unit, extra):
    sl = Slice("w", 0, "in", sections, unit)
    o, n = grow_maps(sl, units, units + extra)
    old = torch.arange(sections * units * unit).view(sections, units, unit)
    new = torch.full((sections, units + extra, unit), -1)
    new.view(-1)[torch.tensor(n, dtype=torch.long)] = old.view(-1)[torch.tensor(o, dtype=torch.long)]
    assert torch.equal(new[:, :units], old) and (new[:, units:] == -1).all()
    kept = list(range(units))[::2]
    o, n = keep_maps(sl, units, kept)
    small = torch.full((sections, len(kept), unit), -1)
    small.view(-1)[torch.tensor(n, dtype=torch.long)] = old.view(-1)[torch.tensor(o, dtype=torch.long)]
    assert torch.equal(small, old[:, kept])


@pytest.mark.parametrize("act,fn", [("swiglu", torch.nn.functional.silu), ("geglu", torch.nn.functional.gelu)])
@pytest.mark.parametrize("lanes", [None, 2])
def test_gated_mlp_computes_act_of_gate_times_up(act, fn, lanes):
    """fc holds [gate; up] rows (per lane inside a partition); out = proj(act(gate) * up)."""
    body = f"m: mlp(hidden = 8, act = {act})"
    text = (f"model(features = 6) {{\n  p: partition(lanes = 2) {{\n    {body}\n  }}\n}}\n" if lanes
            else f"model(features = 6) {{\n  {body}\n}}\n")
    torch.manual_seed(0)
    m = morphdsl.compile(text)
    x = torch.randn(1, 3, 6)
    path = "p.m" if lanes else "m"
    sd = {k.removeprefix(path + "."): v for k, v in m.state_dict().items()}
    with torch.no_grad():
        if lanes:  # (L, 2H/L, C/L): each lane's rows are its [gate; up]
            xs = x.view(1, 3, 2, 3)
            h = torch.einsum("btli,loi->btlo", xs, sd["fc.weight"]) + sd["fc.bias"]
            gate, up = h[..., :4], h[..., 4:]
            y = torch.einsum("btli,loi->btlo", fn(gate) * up, sd["proj.weight"]) + sd["proj.bias"]
            want = y.reshape(1, 3, 6)
        else:
            h = x @ sd["fc.weight"].T + sd["fc.bias"]
            want = (fn(h[..., :8]) * h[..., 8:]) @ sd["proj.weight"].T + sd["proj.bias"]
        torch.testing.assert_close(m(x), want, rtol=0, atol=1e-6)


def test_gated_mlp_in_lanes_widens_exactly():
    m = morphdsl.compile("model(features = 6) {\n  p: partition(lanes = 2) {\n"
                         "    m: mlp(hidden = 8, act = swiglu)\n  }\n}\n")
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.3)
    g = grow_model(m, "widen_mlp", by=4)
    assert g.reports[0].ok and g.reports[0].max_abs_err < 1e-5
    assert g.module.state_dict()["p.m.fc.weight"].shape == (2, 12, 3)  # per lane [gate; up], 6 + 6
    with pytest.raises(GrowthError, match="multiple of 2"):
        grow_model(m, "widen_mlp", by=3)
