"""Crossover (morphdsl/evolve/crossover.py): children compile from their emitted spec, their
inherited blocks compute what they computed in the parent on the inputs they see, optimizer
state and metadata come from the owning parent, and parents without aligned blocks are refused."""
from __future__ import annotations

import copy
import random

import pytest
import torch
import torch.fx as fx
from hypothesis import given, settings
from hypothesis import strategies as st

import morphdsl
from morphdsl.errors import MorphError
from morphdsl.evolve.crossover import CrossoverError, aligned_positions, crossover
from morphdsl.rewrites import grow_model
from morphdsl.train.optim import load_state_by_name, state_by_name
from morphdsl.verify import find_region, region_function

SPEC = """spec xo
vocab = 64
d = {d}
heads = 2
ctx = 16
block Block(d, heads) {{
  residual {{
    ln1: layernorm
    attn: attention(heads = heads)
  }}
  residual {{
    ln2: layernorm
    mlp: mlp(hidden = 4 * d)
  }}
}}
model {{
  tok: embed(vocab = vocab, dim = d)
  pos: pos_embed(ctx = ctx)
  blocks: repeat({n}) {{
    Block(d = d, heads = heads)
  }}
  ln_f: layernorm
  head: unembed(vocab = vocab, tie = tok)
}}
"""
X = torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(0))


def parent(seed, d=32, n=3):
    torch.manual_seed(seed)
    return morphdsl.compile(SPEC.format(d=d, n=n)).eval()


def grown_b(seed=1, n=3):
    """B: other weights, a wider MLP in block 1 and one more head in block 2."""
    b = parent(seed, n=n)
    b = grow_model(b, "widen_mlp", target="blocks.1.mlp", by=32, verify=False).module
    return grow_model(b, "add_head", target="blocks.2.attn", n=1, verify=False).module.eval()


A, B = parent(0), grown_b()


def clone(m):
    """A deep copy of a compiled model (GraphModule's deepcopy drops `morph_graph`)."""
    out = copy.deepcopy(m)
    out.morph_graph = m.morph_graph.copy()
    return out


class Recorder(fx.Interpreter):
    """Every IR node's value in a run, by its path."""

    def __init__(self, gm):
        super().__init__(gm)
        self.out = {}

    def run_node(self, n):
        v = super().run_node(n)
        if "morph_path" in n.meta:
            self.out[n.meta["morph_path"]] = v
        return v


@torch.no_grad()
def block_io(module, i, x=X):
    """(the hidden state entering blocks.i, the one leaving it) in a run of `module` on x."""
    r = find_region(module.morph_graph, f"blocks.{i}")
    rec = Recorder(module.eval())
    rec.run(x)
    return rec.out[r.input], rec.out[r.output]


@torch.no_grad()
def check_inherited(child, parents, x=X):
    """Each block of the child, fed what enters it in the child, gives what the parent it came
    from gives on that input; returns the max error of the *other* parent (where it differs)."""
    other = 0.0
    for i, who in child.taken.items():
        h_in, h_out = block_io(child.module, i, x)
        mine = region_function(parents[who], f"blocks.{i}", dtype=None)(h_in)
        assert torch.allclose(mine, h_out, atol=1e-6, rtol=0), (i, who)
        theirs = region_function(parents["b" if who == "a" else "a"], f"blocks.{i}", dtype=None)(h_in)
        other = max(other, (theirs - h_out).abs().max().item())
    return other


def test_child_compiles_and_rebuilds():
    c = crossover(A, B, random.Random(0))
    assert set(c.taken.values()) == {"a", "b"} and sorted(c.taken) == [0, 1, 2]
    again = morphdsl.compile(c.spec_text)  # the emitted text is the child
    shapes = {n: tuple(p.shape) for n, p in c.module.named_parameters()}
    assert {n: tuple(p.shape) for n, p in again.named_parameters()} == shapes
    for n, shp in shapes.items():
        who = c.taken.get(int(n.split(".")[1]), "a") if n.startswith("blocks.") else "a"
        assert shp == tuple(dict((A, B)[who == "b"].named_parameters())[n].shape), n
    again.load_state_dict(c.module.state_dict())
    assert torch.equal(again(X), c.module(X))
    assert "crossover(blocks" in c.spec_text.splitlines()[0]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_inherited_blocks_compute_as_in_their_parent(seed):
    c = crossover(A, B, random.Random(seed))
    assert check_inherited(c, {"a": A, "b": B}) > 1e-3  # the parents' blocks really differ


def test_wider_block_from_b_has_b_structure():
    rng = next(random.Random(s) for s in range(100) if crossover(A, B, random.Random(s)).taken[1] == "b")
    c = crossover(A, B, rng)
    assert c.module.get_parameter("blocks.1.mlp.fc.weight").shape == (160, 32)
    assert torch.equal(c.module.get_parameter("blocks.1.mlp.fc.weight"), B.get_parameter("blocks.1.mlp.fc.weight"))
    assert "mlp(hidden = 160)" in c.spec_text
    check_inherited(c, {"a": A, "b": B})


def test_child_of_a_and_its_copy_is_a():
    """Blocks taken from a copy of A are A's: the child computes A's logits exactly."""
    for s in range(3):
        c = crossover(A, clone(A), random.Random(s))
        assert torch.equal(c.module(X), A(X))
    # and B grown from A by exact rewrites computes A's function: so does every child
    b = grow_model(clone(A), "widen_mlp", target="blocks.1.mlp", by=32, verify=False).module
    b = grow_model(b, "add_head", target="blocks.2.attn", n=1, verify=False).module
    for s in range(3):
        c = crossover(A, b, random.Random(s))
        torch.testing.assert_close(c.module(X), A(X), atol=1e-5, rtol=0)


def test_different_block_counts():
    b4 = grow_model(grown_b(), "insert_block", target="blocks", at=1, verify=False).module.eval()
    assert aligned_positions(A.morph_graph, b4.morph_graph) == [0, 1, 2]
    c = crossover(A, b4, random.Random(0))
    assert len(c.module.morph_graph.find_region("blocks").children) == 3
    check_inherited(c, {"a": A, "b": b4})
    c = crossover(b4, A, random.Random(1))  # A with 4 blocks as the base: its block 3 stays
    assert sorted(c.taken) == [0, 1, 2]
    assert torch.equal(c.module.get_parameter("blocks.3.mlp.fc.weight"), b4.get_parameter("blocks.3.mlp.fc.weight"))
    check_inherited(c, {"a": b4, "b": A})


def test_one_aligned_position_takes_b():
    one = parent(5, n=1)
    c = crossover(one, A, random.Random(0), p=0.0)
    assert c.taken == {0: "b"}
    assert torch.equal(c.module.get_parameter("blocks.0.attn.qkv.weight"), A.get_parameter("blocks.0.attn.qkv.weight"))
    assert torch.equal(c.module.tok.weight, one.tok.weight)


def test_optimizer_state_comes_from_the_owner():
    def trained(m):
        opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
        m.train()
        m(X).logsumexp(-1).mean().backward()
        opt.step()
        return m.eval(), opt

    (a, oa), (b, ob) = trained(clone(A)), trained(clone(B))
    c = crossover(a, b, random.Random(0), opt_a=oa, opt_b=ob)
    sa, sb = state_by_name(a, oa), state_by_name(b, ob)
    assert set(c.opt_state) == {n for n, _ in c.module.named_parameters()}
    for i, who in c.taken.items():
        name = f"blocks.{i}.mlp.fc.weight"
        want = (sa if who == "a" else sb)[name]["exp_avg"]
        assert torch.equal(c.opt_state[name]["exp_avg"], want)
    assert torch.equal(c.opt_state["tok.weight"]["exp_avg"], sa["tok.weight"]["exp_avg"])
    opt = torch.optim.AdamW(c.module.parameters(), lr=1e-3)
    load_state_by_name(c.module, opt, c.opt_state)  # the state fits the child's parameters
    assert crossover(a, b, random.Random(0)).opt_state is None


def test_metadata_follows_the_owner():
    c = crossover(A, B, random.Random(0))  # B carries metadata (grown), A does not
    meta = c.module.morph_meta
    meta.check({n: tuple(p.shape) for n, p in c.module.named_parameters()})
    for i, who in c.taken.items():
        ops = {s.op for s in meta.slices(f"blocks.{i}.attn.qkv.weight")}
        assert ops == ({"add_head", "init"} if who == "b" and i == 2 else {"init"})
    assert not hasattr(crossover(A, parent(3), random.Random(0)).module, "morph_meta")


def test_no_alignment_is_an_error():
    wide = parent(0, d=48)
    with pytest.raises(CrossoverError, match="residual widths differ.*32.*48") as e:
        crossover(A, wide, random.Random(0))
    assert isinstance(e.value, MorphError)
    assert aligned_positions(A.morph_graph, wide.morph_graph) == []
    with pytest.raises(CrossoverError, match="no repeat group `layers`"):
        crossover(A, B, random.Random(0), group="layers")


def test_reproducible_and_rng_untouched():
    state = torch.get_rng_state()
    t1 = [crossover(A, B, random.Random(7)).taken for _ in range(2)]
    assert t1[0] == t1[1]
    assert torch.equal(torch.get_rng_state(), state)  # compiling the child drew no torch numbers
    assert len({tuple(crossover(A, B, random.Random(s)).taken.values()) for s in range(20)}) > 1


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), p=st.floats(0.0, 1.0))
def test_property_children_compile_and_inherit(seed, p):
    c = crossover(A, B, random.Random(seed), p=p)
    assert {"a", "b"} == set(c.taken.values())
    assert morphdsl.build(c.spec_text).param_shapes() == c.module.morph_graph.param_shapes()
    check_inherited(c, {"a": A, "b": B})
    c = crossover(A, clone(A), random.Random(seed), p=p)
    assert torch.equal(c.module(X), A(X))
