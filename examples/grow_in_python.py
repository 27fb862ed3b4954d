"""Grow a model in a loop from Python: train a few AdamW steps, grow (weights AND optimizer
state move), check the function is unchanged, repeat; then emit the grown spec, save the
weights, reload both and check the outputs are identical.

    .venv/bin/python examples/grow_in_python.py
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_model, save_model

import morphdsl
from morphdsl.rewrites import grow_model

torch.manual_seed(0)
t0 = time.time()
model = morphdsl.compile("specs/gpt_tiny.morph")
opt = torch.optim.AdamW(model.parameters(), lr=3e-3)

# tiny data: a repeating byte pattern the model can learn quickly
text = b"the cat sat on the mat. " * 64
data = torch.tensor(list(text))


def batch(B=8, T=32):
    i = torch.randint(0, len(data) - T - 1, (B,))
    x = torch.stack([data[j:j + T + 1] for j in i.tolist()])
    return x[:, :-1], x[:, 1:]


def train(model, opt, steps=5):
    for _ in range(steps):
        x, y = batch()
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss.item()


schedule = [
    ("add_head", {"target": "blocks.1.attn", "n": 2}),       # 2 -> 4 heads, head_dim kept
    ("widen_mlp", {"target": "blocks.*.mlp", "by": 64}),      # 256 -> 320 hidden units
    ("insert_block", {"target": "blocks", "at": 1}),          # 2 -> 3 blocks, identity
]
print(f"start: {model.morph_graph.n_params():,} params, loss {train(model, opt):.3f}")
for op, args in schedule:
    grown = grow_model(model, op, optimizer=opt, **args)  # verifies the identity (raises if not)
    model, opt = grown.module, grown.optimizer
    rep = grown.reports[-1]
    loss = train(model, opt)
    print(f"{op:13s} -> {model.morph_graph.n_params():,} params; identity max|d| = "
          f"{rep.max_abs_err:.1e}; loss after 5 steps {loss:.3f}")

# emit + save, then reload from the emitted spec and compare
with tempfile.TemporaryDirectory() as tmp:
    spec, weights = Path(tmp, "grown.morph"), Path(tmp, "grown.safetensors")
    spec.write_text(morphdsl.emit(model.morph_graph))
    save_model(model, str(weights))
    again = morphdsl.compile(str(spec))
    load_model(again, str(weights))
    x, _ = batch(2, 16)
    model.eval(), again.eval()
    with torch.no_grad():
        same = torch.equal(model(x), again(x))
    print(f"reloaded from the emitted spec: outputs {'identical' if same else 'DIFFER'}")
    assert same
print(f"done in {time.time() - t0:.1f}s")
