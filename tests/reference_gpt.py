"""An independent, hand-written nanoGPT-style GPT (Karpathy's nanoGPT, simplified): the
reference the compiled specs are checked and timed against.

Pre-norm blocks, LayerNorm with bias, causal attention through SDPA with a fused c_attn and
an output c_proj, a 4x GELU MLP, learned positions, and an lm head tied to the embedding.
Shapes: B batch, T time, C channels (n_embd), nh heads, hs head size.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class GPTConfig:
    vocab_size: int = 256
    block_size: int = 256
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 256
    gelu: str = "none"  # "tanh": GPT-2's approximate GELU


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        assert cfg.n_embd % cfg.n_head == 0
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)  # q, k, v for all heads at once
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.n_head, self.n_embd = cfg.n_head, cfg.n_embd

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd)
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd)
        self.gelu = cfg.gelu

    def forward(self, x):  # (B, T, C) -> (B, T, 4C) -> (B, T, C)
        return self.c_proj(F.gelu(self.c_fc(x), approximate=self.gelu))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = MLP(cfg)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.h = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying

    def forward(self, idx):  # (B, T) token ids -> (B, T, vocab) logits
        B, T = idx.shape
        pos = torch.arange(T, device=idx.device)
        x = self.wte(idx) + self.wpe(pos)  # (B, T, C)
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def name_map(n_layer: int) -> dict[str, str]:
    """Compiled-spec parameter name -> reference parameter name (the gpt_host layout)."""
    m = {"tok.weight": "wte.weight", "pos.weight": "wpe.weight",
         "ln_f.weight": "ln_f.weight", "ln_f.bias": "ln_f.bias"}
    for i in range(n_layer):
        for ours, theirs in [("ln1", "ln_1"), ("ln2", "ln_2"), ("attn.qkv", "attn.c_attn"),
                             ("attn.proj", "attn.c_proj"), ("mlp.fc", "mlp.c_fc"),
                             ("mlp.proj", "mlp.c_proj")]:
            for p in ("weight", "bias"):
                m[f"blocks.{i}.{ours}.{p}"] = f"h.{i}.{theirs}.{p}"
    return m


def from_morph(module: nn.Module, cfg: GPTConfig) -> GPT:
    """A reference GPT holding a copy of a compiled gpt_host module's weights."""
    ref = GPT(cfg)
    ours = module.state_dict()
    mapping = name_map(cfg.n_layer)
    assert set(ours) == set(mapping), sorted(set(ours) ^ set(mapping))
    ref.load_state_dict({mapping[k]: v for k, v in ours.items()} | {"lm_head.weight": ours["tok.weight"]})
    return ref
