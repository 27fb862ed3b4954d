"""GPT-2 (`model_type = gpt2`): learned positions, LayerNorm, fused Conv1D attention, a
GELU MLP, tied head by default."""
from __future__ import annotations

from .family import Family, fmt, head_and_data, layers, unit
from .files import field

ACTS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu_fast": None,
        "gelu": "gelu", "relu": "relu", "silu": "silu", "tanh": "tanh"}


class GPT2(Family):
    name, model_types, style, architecture = "gpt2", ("gpt2",), "conv1d", "GPT2LMHeadModel"

    def hparams(self, cfg, path):
        pos = lambda v: v > 0  # noqa: E731
        h = {"vocab": field(cfg, path, "vocab_size", check=pos), "d": field(cfg, path, "n_embd", check=pos),
             "heads": field(cfg, path, "n_head", check=pos), "layers": field(cfg, path, "n_layer", check=pos),
             "ctx": field(cfg, path, "n_positions", check=pos),
             "eps": field(cfg, path, "layer_norm_epsilon", float, 1e-5),
             "tie": field(cfg, path, "tie_word_embeddings", bool, True)}
        h["hidden"] = field(cfg, path, "n_inner", int, None, pos)
        act = cfg.get("activation_function", "gelu_new")
        if ACTS.get(act) is None:
            raise self.unsupported(path, "activation_function", act, "no morphdsl activation computes it",
                                   "supported: " + ", ".join(k for k, v in ACTS.items() if v))
        h["act"] = ACTS[act]
        if h["d"] % h["heads"]:
            raise self.unsupported(path, "n_head", h["heads"], f"does not divide n_embd = {h['d']}")
        for f in ("scale_attn_by_inverse_layer_idx", "add_cross_attention"):
            if cfg.get(f):
                raise self.unsupported(path, f, cfg[f], "morphdsl's attention does not do this")
        if cfg.get("scale_attn_weights") is False:
            raise self.unsupported(path, "scale_attn_weights", False, "attention is always scaled by 1/sqrt(head_dim)")
        return h

    def spec(self, h, name, source, tokenizer):
        hidden = "4 * d" if h["hidden"] in (None, 4 * h["d"]) else str(h["hidden"])
        eps = fmt(h["eps"])
        head, data = head_and_data(h, tokenizer)
        return f"""# {name}: imported from the Hugging Face model in {source} (model_type gpt2)
# by `morphc import`. Each block: x + attn(ln1(x)), then x + mlp(ln2(x)).
spec {name}

vocab  = {h['vocab']}
d      = {h['d']}
heads  = {h['heads']}
layers = {h['layers']}
ctx    = {h['ctx']}

block Block(d, heads) {{
  residual {{
    ln1: layernorm(eps = {eps})
    attn: attention(heads = heads)
  }}
  residual {{
    ln2: layernorm(eps = {eps})
    mlp: mlp(hidden = {hidden}, act = {h['act']})
  }}
}}

model {{
  tok: embed(vocab = vocab, dim = d)
  pos: pos_embed(ctx = ctx)
  blocks: repeat(layers) {{
    Block(d = d, heads = heads)
  }}
  ln_f: layernorm(eps = {eps})
  head: {head}
}}
{data}"""

    def paths(self, h):
        out = {"tok": "transformer.wte", "pos": "transformer.wpe", "ln_f": "transformer.ln_f"}
        for i in range(h["layers"]):
            for ours, theirs in (("ln1", "ln_1"), ("attn", "attn"), ("ln2", "ln_2"), ("mlp", "mlp")):
                out[f"blocks.{i}.{ours}"] = f"transformer.h.{i}.{theirs}"
        if not h["tie"]:
            out["head"] = "lm_head"
        return out

    def from_graph(self, g):
        tok, attn, mlp = unit(g, "tok", "embed"), unit(g, "blocks.0.attn", "attention"), unit(g, "blocks.0.mlp", "mlp")
        r = attn.resolved
        return {"vocab": tok.resolved["vocab"], "d": tok.resolved["dim"], "heads": r["heads"],
                "layers": layers(g), "ctx": unit(g, "pos", "pos_embed").resolved["ctx"],
                "eps": unit(g, "ln_f", "layernorm").resolved["eps"], "hidden": mlp.resolved["hidden"],
                "act": mlp.resolved.get("act", "gelu"), "tie": bool(unit(g, "head", "unembed").resolved.get("tie")),
                "head_dim": r["head_dim"]}

    def check(self, h, path):
        if h["heads"] * h["head_dim"] != h["d"]:
            raise self.unsupported(path, "n_head", h["heads"],
                                   f"GPT-2 needs heads x head_dim = n_embd, but this model has "
                                   f"{h['heads']} x {h['head_dim']} != {h['d']}",
                                   "GPT-2 fixes head_dim = n_embd / n_head: grow heads together with "
                                   "the width (widen_embed doubles both), or export a Llama-style spec")

    def config(self, h):
        act = {"gelu_tanh": "gelu_new"}.get(h["act"], h["act"])
        return {"architectures": [self.architecture], "model_type": "gpt2", "vocab_size": h["vocab"],
                "n_embd": h["d"], "n_head": h["heads"], "n_layer": h["layers"], "n_positions": h["ctx"],
                "n_inner": h["hidden"], "layer_norm_epsilon": h["eps"], "activation_function": act,
                "tie_word_embeddings": h["tie"], "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
                "scale_attn_weights": True, "bos_token_id": None, "eos_token_id": None,
                "torch_dtype": "float32", "dtype": "float32"}
