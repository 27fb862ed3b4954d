"""specs/gpt_host.morph computes exactly what a hand-written nanoGPT computes.

The compiled module's weights are copied into tests/reference_gpt.py's GPT by name
(blocks.{i}.attn.qkv.weight -> h.{i}.attn.c_attn.weight, ...) and the logits compared.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import morphdsl  # noqa: E402
from tests.reference_gpt import GPT, GPTConfig, from_morph, name_map  # noqa: E402

HOST = ROOT / "specs" / "gpt_host.morph"
CFG = GPTConfig(vocab_size=256, block_size=256, n_layer=4, n_head=4, n_embd=256)


def compiled_host():
    torch.manual_seed(0)
    m = morphdsl.compile(str(HOST))
    with torch.no_grad():  # move every bias and norm off its init so a wrong mapping shows
        for p in m.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return m.eval()


def test_host_matches_nanogpt_layout():
    m = compiled_host()
    ref = GPT(CFG)
    ours = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    mapping = name_map(CFG.n_layer)
    assert {mapping[k]: s for k, s in ours.items()} == {k: s for k, s in theirs.items() if k != "lm_head.weight"}
    assert sum(p.numel() for p in m.parameters()) == sum(p.numel() for p in ref.parameters())


def test_host_logits_equal_reference():
    m = compiled_host()
    ref = from_morph(m, CFG).eval()
    torch.manual_seed(1)
    for T in (1, 37, 256):
        idx = torch.randint(0, CFG.vocab_size, (3, T))
        with torch.no_grad():
            a, b = m(idx), ref(idx)
        assert a.shape == (3, T, CFG.vocab_size)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_host_gradients_equal_reference():
    m = compiled_host()
    ref = from_morph(m, CFG).eval()
    idx = torch.randint(0, CFG.vocab_size, (2, 64))
    tgt = torch.randint(0, CFG.vocab_size, (2, 64))
    for model in (m, ref):
        torch.nn.functional.cross_entropy(model(idx).flatten(0, 1), tgt.flatten()).backward()
    theirs = dict(ref.named_parameters())
    for k, p in m.named_parameters():
        torch.testing.assert_close(p.grad, theirs[name_map(CFG.n_layer)[k]].grad, rtol=1e-4, atol=1e-6)
