"""An independent, hand-written Llama-style decoder (the shapes of Hugging Face's LlamaModel),
the reference specs/llama_tiny.morph is checked against.

RMSNorm (x * rsqrt(mean(x^2) + eps) * weight), grouped-query attention with separate
q/k/v/o projections and no biases, rotary embeddings in the rotate-half layout applied to q and
k, k/v heads repeated to the query heads, a SwiGLU MLP down(silu(gate(x)) * up(x)), an untied
lm head. Written from the Llama paper and HF's modeling_llama, not from morphdsl's code.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class LlamaConfig:
    vocab_size: int = 256
    hidden_size: int = 64
    intermediate_size: int = 172
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5


class RMSNorm(nn.Module):
    def __init__(self, n: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def rope_cos_sin(T: int, dim: int, theta: float):
    inv_freq = 1.0 / (theta ** (torch.arange(0, dim, 2).float() / dim))
    freqs = torch.outer(torch.arange(T).float(), inv_freq)  # (T, dim/2)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


class Attention(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.nh, self.nkv = cfg.num_attention_heads, cfg.num_key_value_heads
        self.hd = cfg.hidden_size // self.nh
        self.q_proj = nn.Linear(cfg.hidden_size, self.nh * self.hd, bias=False)
        self.k_proj = nn.Linear(cfg.hidden_size, self.nkv * self.hd, bias=False)
        self.v_proj = nn.Linear(cfg.hidden_size, self.nkv * self.hd, bias=False)
        self.o_proj = nn.Linear(self.nh * self.hd, cfg.hidden_size, bias=False)
        self.theta = cfg.rope_theta

    def forward(self, x):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.nh, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.nkv, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.nkv, self.hd).transpose(1, 2)
        cos, sin = rope_cos_sin(T, self.hd, self.theta)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        rep = self.nh // self.nkv
        k = k[:, :, None].expand(B, self.nkv, rep, T, self.hd).reshape(B, self.nh, T, self.hd)
        v = v[:, :, None].expand(B, self.nkv, rep, T, self.hd).reshape(B, self.nh, T, self.hd)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(self.hd)  # explicit softmax attention
        mask = torch.ones(T, T, dtype=torch.bool).tril()
        att = att.masked_fill(~mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, self.nh * self.hd)
        return self.o_proj(y)


class MLP(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x):
        x = x + self.self_attn(self.input_layernorm(x))
        return x + self.mlp(self.post_attention_layernorm(x))


class Llama(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(Layer(cfg) for _ in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)

    def forward(self, idx):
        x = self.embed_tokens(idx)
        for layer in self.layers:
            x = layer(x)
        return self.lm_head(self.norm(x))


def from_morph(module: nn.Module, cfg: LlamaConfig) -> Llama:
    """A reference Llama holding a copy of a compiled llama_tiny module's weights."""
    ref = Llama(cfg)
    ours = module.state_dict()
    kv = cfg.num_key_value_heads * (cfg.hidden_size // cfg.num_attention_heads)
    I = cfg.intermediate_size
    sd = {"embed_tokens.weight": ours["tok.weight"], "norm.weight": ours["ln_f.weight"],
          "lm_head.weight": ours["head.weight"]}
    for i in range(cfg.num_hidden_layers):
        p, r = f"blocks.{i}.", f"layers.{i}."
        sd[r + "input_layernorm.weight"] = ours[p + "ln1.weight"]
        sd[r + "post_attention_layernorm.weight"] = ours[p + "ln2.weight"]
        sd[r + "self_attn.q_proj.weight"] = ours[p + "attn.q.weight"]
        sd[r + "self_attn.k_proj.weight"] = ours[p + "attn.kv.weight"][:kv]
        sd[r + "self_attn.v_proj.weight"] = ours[p + "attn.kv.weight"][kv:]
        sd[r + "self_attn.o_proj.weight"] = ours[p + "attn.proj.weight"]
        sd[r + "mlp.gate_proj.weight"] = ours[p + "mlp.fc.weight"][:I]
        sd[r + "mlp.up_proj.weight"] = ours[p + "mlp.fc.weight"][I:]
        sd[r + "mlp.down_proj.weight"] = ours[p + "mlp.proj.weight"]
    ref.load_state_dict(sd, strict=True)
    return ref
