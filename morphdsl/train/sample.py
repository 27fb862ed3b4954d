"""Text generation from a compiled model: temperature sampling (greedy at T=0) in a ctx window."""
from __future__ import annotations

import torch


@torch.no_grad()
def generate(model, tokenizer, prompt: str, tokens: int, ctx: int, temperature: float = 0.8,
             seed: int = 0) -> str:
    """`prompt` continued by `tokens` new tokens; returns the prompt plus the continuation."""
    ids = tokenizer.encode(prompt) or [0]
    p = next(iter(model.parameters()), None)
    x = torch.tensor([ids], dtype=torch.long, device=p.device if p is not None else "cpu")
    gen = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    for _ in range(tokens):
        logits = model(x[:, -ctx:])[:, -1, :]  # (1, V) at the last position
        if temperature <= 0:
            nxt = logits.argmax(-1, keepdim=True)
        else:
            probs = torch.softmax(logits.float() / temperature, dim=-1).cpu()  # CPU sampler:
            nxt = torch.multinomial(probs, 1, generator=gen).to(x.device)  # same text anywhere
        x = torch.cat([x, nxt], dim=1)
    model.train(was_training)
    return tokenizer.decode(x[0].tolist())
