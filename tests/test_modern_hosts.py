"""Modern hosts written in .morph compute what independent hand-written models compute, and grow.

- specs/llama_tiny.morph (RMSNorm, SwiGLU, RoPE, GQA, untied head) = tests/reference_llama.py;
- specs/gpt2_tanh.morph (GPT-2 with its tanh-GELU written from primitives) = the nanoGPT
  reference with `gelu = tanh`, and = the same host with `mlp(act = gelu_tanh)`;
- every head/hidden growth applies to both and stays exact.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import morphdsl
from morphdsl import grow_model
from tests import reference_gpt, reference_llama

ROOT = Path(__file__).resolve().parents[1]
LLAMA, GPT2 = ROOT / "specs" / "llama_tiny.morph", ROOT / "specs" / "gpt2_tanh.morph"


def jiggled(path_or_text):
    torch.manual_seed(0)
    m = morphdsl.compile(str(path_or_text))
    with torch.no_grad():  # move every gain off 1 so a wrong mapping shows
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m.eval()


def test_llama_tiny_equals_a_hand_written_llama():
    m = jiggled(LLAMA)
    ref = reference_llama.from_morph(m, reference_llama.LlamaConfig()).eval()
    assert sum(p.numel() for p in m.parameters()) == sum(p.numel() for p in ref.parameters())
    torch.manual_seed(1)
    for T in (1, 7, 128):
        idx = torch.randint(0, 256, (2, T))
        with torch.no_grad():
            torch.testing.assert_close(m(idx), ref(idx), rtol=0, atol=1e-5)


def test_rope_and_its_fraction_change_the_function():
    """The reference equality above pins the rotation; here: switching it off, or rotating half
    of each head, gives another function with the same weights."""
    m = jiggled(LLAMA)
    idx = torch.randint(0, 256, (1, 12), generator=torch.Generator().manual_seed(2))
    outs = []
    for text in (LLAMA.read_text(), LLAMA.read_text().replace("rope = true", "rope = false"),
                 LLAMA.read_text().replace("rope = true", "rope = true, rope_fraction = 0.5")):
        other = morphdsl.compile(text)
        other.load_state_dict(m.state_dict())
        with torch.no_grad():
            outs.append(other.eval()(idx))
    assert (outs[0] - outs[1]).abs().max() > 1e-3 and (outs[0] - outs[2]).abs().max() > 1e-3
    assert (outs[1] - outs[2]).abs().max() > 1e-3


def gpt2_names(n_layer: int) -> dict:
    m = reference_gpt.name_map(n_layer)
    return {k.replace("mlp.fc", "ffn.fc").replace("mlp.proj", "ffn.proj"): v for k, v in m.items()}


def test_gpt2_with_tanh_gelu_from_primitives_equals_hand_written_gpt2():
    m = jiggled(GPT2)
    cfg = reference_gpt.GPTConfig(vocab_size=256, block_size=128, n_layer=2, n_head=2, n_embd=64,
                                  gelu="tanh")
    ref = reference_gpt.GPT(cfg)
    ours, names = m.state_dict(), gpt2_names(2)
    assert set(ours) == set(names)
    ref.load_state_dict({names[k]: v for k, v in ours.items()} | {"lm_head.weight": ours["tok.weight"]})
    ref.eval()
    idx = torch.randint(0, 256, (2, 50), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(m(idx), ref(idx), rtol=0, atol=1e-5)
    short = GPT2.read_text().replace("      GeluTanh()\n", "").replace(
        "fc: linear(out = 4 * d)", "fc: linear(out = 4 * d)\n      act: gelu(approximate = \"tanh\")")
    m2 = morphdsl.compile(short)
    m2.load_state_dict(ours)
    with torch.no_grad():
        torch.testing.assert_close(m2.eval()(idx), ref(idx), rtol=0, atol=1e-5)


@pytest.mark.parametrize("path,op,kw", [
    (LLAMA, "add_head", {"target": "blocks.*.attn", "n": 1}),
    (LLAMA, "add_head", {"target": "blocks.0.attn", "n": 1, "kv": True}),
    (LLAMA, "widen_mlp", {"target": "blocks.*.mlp", "by": 44}),
    (LLAMA, "insert_block", {"target": "blocks", "at": 1}),
    (LLAMA, "widen_embed", {}),
    (GPT2, "widen_mlp", {"target": "blocks.*.ffn", "by": 64}),
    (GPT2, "add_head", {"target": "blocks.1.attn", "n": 2}),
    (GPT2, "widen_embed", {}),
])
def test_growth_on_modern_hosts_is_exact(path, op, kw):
    m = jiggled(path).train()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    idx = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(5))
    m(idx).logsumexp(-1).mean().backward()
    opt.step()
    g = grow_model(m, op, optimizer=opt, **kw)
    assert g.reports[0].ok and g.reports[0].max_abs_err < 1e-5, g.reports[0]
    assert sum(p.numel() for p in g.module.parameters()) > sum(p.numel() for p in m.parameters())
    back = morphdsl.compile(morphdsl.emit(g.module.morph_graph))  # the grown spec recompiles
    assert {k: v.shape for k, v in back.state_dict().items()} == \
        {k: v.shape for k, v in g.module.state_dict().items()}


def test_gqa_head_growth_keeps_the_grouping():
    m = jiggled(LLAMA)
    g = grow_model(m, "add_head", target="blocks.0.attn", n=1)
    r = g.module.morph_graph.unit("blocks.0.attn").resolved
    assert (r["heads"], r["kv_heads"]) == (6, 2)  # one more query head in each of the 2 groups
    k = grow_model(m, "add_head", target="blocks.0.attn", n=1, kv=True)
    r = k.module.morph_graph.unit("blocks.0.attn").resolved
    assert (r["heads"], r["kv_heads"]) == (6, 3)  # a new group of 2 query heads
    old, new = m.state_dict(), g.module.state_dict()
    # query rows [group][head][hd]: group 1's old heads moved past group 0's new head
    hd = 16
    assert torch.equal(new["blocks.0.attn.q.weight"][:2 * hd], old["blocks.0.attn.q.weight"][:2 * hd])
    assert torch.equal(new["blocks.0.attn.q.weight"][3 * hd:5 * hd], old["blocks.0.attn.q.weight"][2 * hd:])
    assert torch.equal(new["blocks.0.attn.kv.weight"], old["blocks.0.attn.kv.weight"])


def test_bad_modern_arguments_are_located_errors():
    for bad, words in [("kv_heads = 3", "key/value groups"), ("rope_fraction = 0.01", "channel pair"),
                       ("rope_theta = 0.5", "rope_theta")]:
        text = LLAMA.read_text().replace("kv_heads = kv", bad)
        with pytest.raises(morphdsl.MorphError, match=words) as e:
            morphdsl.build(text)
        assert e.value.line and e.value.column


def test_bad_head_growth_is_a_located_growth_error(tmp_path, capsys):
    from morphdsl.cli import main

    for op, words in [("add_head(blocks.0.attn, n = 1, kv = 3)", "true or false"),
                      ("add_head(blocks.0.attn, n = 1, kv = true)", "no kv_heads axis")]:
        spec = LLAMA if "kv = 3" in op else ROOT / "specs" / "gpt_tiny.morph"
        assert main(["grow", str(spec), "--op", op, "-o", str(tmp_path / "g.morph")]) == 1
        err = capsys.readouterr().err
        assert err.startswith("--op 1:1:1: error:") and words in err and "hint:" in err, err
