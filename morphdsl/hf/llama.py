"""Llama (`model_type = llama`; `mistral` without a sliding window; `qwen2`, which adds biases to
q/k/v but not o_proj): RMSNorm, rotary positions, grouped-query attention (q_proj, k_proj,
v_proj, o_proj), a SwiGLU MLP, an untied head by default."""
from __future__ import annotations

from .family import Family, fmt, head_and_data, layers, unit
from .files import field

ACTS = {"silu": "swiglu", "gelu": "geglu"}


def _ctx(g) -> int:
    """max_position_embeddings: the spec's `ctx` parameter (an imported spec has it), else the
    training context, else 2048."""
    v = g.params.get("ctx", g.sections.get("train", {}).get("ctx"))
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else 2048


class Llama(Family):
    name, model_types, style, architecture = "llama", ("llama", "mistral", "qwen2"), "linear", "LlamaForCausalLM"

    def hparams(self, cfg, path):
        pos = lambda v: v > 0  # noqa: E731
        h = {"vocab": field(cfg, path, "vocab_size", check=pos), "d": field(cfg, path, "hidden_size", check=pos),
             "heads": field(cfg, path, "num_attention_heads", check=pos),
             "layers": field(cfg, path, "num_hidden_layers", check=pos),
             "hidden": field(cfg, path, "intermediate_size", check=pos),
             "ctx": field(cfg, path, "max_position_embeddings", int, 2048, pos),
             "eps": field(cfg, path, "rms_norm_eps", float, 1e-6),
             "tie": field(cfg, path, "tie_word_embeddings", bool, False),
             "bias": field(cfg, path, "attention_bias", bool, False),
             "mlp_bias": field(cfg, path, "mlp_bias", bool, False)}
        h["proj_bias"] = h["bias"]
        if cfg.get("model_type") == "qwen2":  # q/k/v biases, none on o_proj
            h["bias"], h["proj_bias"] = True, False
        h["kv"] = field(cfg, path, "num_key_value_heads", int, h["heads"], pos)
        if h["heads"] % h["kv"]:
            raise self.unsupported(path, "num_key_value_heads", h["kv"],
                                   f"does not divide num_attention_heads = {h['heads']}")
        h["head_dim"] = field(cfg, path, "head_dim", int, None, pos)
        if h["head_dim"] is None:
            if h["d"] % h["heads"]:
                raise self.unsupported(path, "num_attention_heads", h["heads"], "does not divide hidden_size")
            h["head_dim"] = h["d"] // h["heads"]
        act = cfg.get("hidden_act", "silu")
        if act not in ACTS:
            raise self.unsupported(path, "hidden_act", act, "no gated morphdsl MLP computes it",
                                   "supported: silu (SwiGLU), gelu (GeGLU)")
        h["act"] = ACTS[act]
        rope = cfg.get("rope_parameters") if isinstance(cfg.get("rope_parameters"), dict) else {}
        kind = rope.get("rope_type", rope.get("type", "default"))
        scaling = cfg.get("rope_scaling")
        if kind != "default" or (isinstance(scaling, dict) and scaling.get("rope_type", scaling.get("type"))
                                 not in (None, "default")):
            f = "rope_parameters" if kind != "default" else "rope_scaling"
            raise self.unsupported(path, f, cfg.get(f), "only the default rotary embedding is supported")
        h["theta"] = float(rope.get("rope_theta", cfg.get("rope_theta", 10000.0)))
        win = cfg.get("sliding_window")
        if win is not None and cfg.get("use_sliding_window", True) and win < h["ctx"]:
            raise self.unsupported(path, "sliding_window", win, "sliding-window attention is not supported",
                                   "set it to null (full causal attention) if the model allows")
        return h

    def spec(self, h, name, source, tokenizer):
        hd = "" if h["head_dim"] * h["heads"] == h["d"] else f", head_dim = {h['head_dim']}"
        if h["proj_bias"] != h["bias"]:
            hd += f", proj_bias = {fmt(h['proj_bias'])}"
        head, data = head_and_data(h, tokenizer)
        eps = fmt(h["eps"])
        return f"""# {name}: imported from the Hugging Face model in {source} (Llama-style)
# by `morphc import`. Each block: x + attn(rmsnorm(x)), then x + mlp(rmsnorm(x)), with
# {h['heads']} query heads sharing {h['kv']} key/value heads, rotary positions and a gated MLP.
spec {name}

vocab  = {h['vocab']}
d      = {h['d']}
heads  = {h['heads']}
kv     = {h['kv']}
hidden = {h['hidden']}
layers = {h['layers']}
ctx    = {h['ctx']}  # max_position_embeddings (rotary positions need no table; kept for export)

block LlamaBlock(d, heads, kv) {{
  residual {{
    ln1: rmsnorm(eps = {eps})
    attn: attention(heads = heads, kv_heads = kv{hd}, rope = true, rope_theta = {fmt(h['theta'])}, bias = {fmt(h['bias'])})
  }}
  residual {{
    ln2: rmsnorm(eps = {eps})
    mlp: mlp(hidden = hidden, act = {h['act']}, bias = {fmt(h['mlp_bias'])})
  }}
}}

model {{
  tok: embed(vocab = vocab, dim = d)
  blocks: repeat(layers) {{
    LlamaBlock(d = d, heads = heads, kv = kv)
  }}
  ln_f: rmsnorm(eps = {eps})
  head: {head}
}}
{data}"""

    def paths(self, h):
        out = {"tok": "model.embed_tokens", "ln_f": "model.norm"}
        for i in range(h["layers"]):
            for ours, theirs in (("ln1", "input_layernorm"), ("attn", "self_attn"),
                                 ("ln2", "post_attention_layernorm"), ("mlp", "mlp")):
                out[f"blocks.{i}.{ours}"] = f"model.layers.{i}.{theirs}"
        if not h["tie"]:
            out["head"] = "lm_head"
        return out

    def from_graph(self, g):
        tok, attn, mlp = unit(g, "tok", "embed"), unit(g, "blocks.0.attn", "attention"), unit(g, "blocks.0.mlp", "mlp")
        r, m = attn.resolved, mlp.resolved
        return {"vocab": tok.resolved["vocab"], "d": tok.resolved["dim"], "heads": r["heads"],
                "kv": r.get("kv_heads") or r["heads"], "head_dim": r["head_dim"], "layers": layers(g),
                "hidden": m["hidden"], "ctx": _ctx(g), "eps": unit(g, "ln_f", "rmsnorm").resolved["eps"],
                "tie": bool(unit(g, "head", "unembed").resolved.get("tie")), "bias": r.get("bias", True),
                "proj_bias": r.get("proj_bias", r.get("bias", True)),
                "mlp_bias": m.get("bias", True), "act": m.get("act"), "theta": r.get("rope_theta", 10000.0)}

    def check(self, h, path):
        if h["proj_bias"] and not h["bias"]:
            raise self.unsupported(path, "attention_bias", False, "an o_proj bias without q/k/v "
                                   "biases is neither Llama nor Qwen2", "drop `proj_bias`")
        if h["d"] % h["heads"]:  # transformers validates this even when head_dim is given
            raise self.unsupported(path, "num_attention_heads", h["heads"],
                                   f"transformers needs hidden_size = {h['d']} divisible by it",
                                   "grow heads by a count that keeps the width divisible "
                                   "(add_head n = ...), or widen the model")

    def config(self, h):
        act = {v: k for k, v in ACTS.items()}.get(h["act"], h["act"])
        qwen = h["bias"] and not h["proj_bias"]  # only Qwen2 has q/k/v biases without o_proj's
        arch, mt = ("Qwen2ForCausalLM", "qwen2") if qwen else (self.architecture, "llama")
        extra = {"use_sliding_window": False, "sliding_window": None} if qwen else {}
        return {**extra, "architectures": [arch], "model_type": mt, "vocab_size": h["vocab"],
                "hidden_size": h["d"], "num_attention_heads": h["heads"], "num_key_value_heads": h["kv"],
                "head_dim": h["head_dim"], "num_hidden_layers": h["layers"], "intermediate_size": h["hidden"],
                "max_position_embeddings": h["ctx"], "rms_norm_eps": h["eps"], "hidden_act": act,
                "tie_word_embeddings": h["tie"], "attention_bias": h["bias"], "mlp_bias": h["mlp_bias"],
                "rope_theta": h["theta"], "rope_parameters": {"rope_type": "default", "rope_theta": h["theta"]},
                "attention_dropout": 0.0, "bos_token_id": None, "eos_token_id": None, "pad_token_id": None,
                "torch_dtype": "float32", "dtype": "float32"}
