"""Training throughput: the morphdsl engine vs a plain hand-written PyTorch loop.

    python -m benchmarks.throughput [--steps 10] [--repeats 2] [--specs specs/gpt_tiny.morph specs/gpt_host.morph]

Both loops train the same compiled model (same initial weights) on the same batches with AdamW;
tokens/s counts time inside training steps (the engine's own per-step bookkeeping — callbacks,
controllers, FLOPs counting — included; evaluation and checkpoint writes excluded).
Goal: ratio >= 0.97.
"""
from __future__ import annotations

import argparse
import copy
import tempfile
import time

import torch
import torch.nn.functional as F

import morphdsl
from morphdsl.train import Engine, from_sections
from morphdsl.train.config import from_dict
from morphdsl.train.data import prepare_data
from morphdsl.train.loop import clone_module, read_jsonl
from morphdsl.train.optim import lr_at, make_optimizer, set_lr


def plain_loop(model, stream, cfg, steps: int) -> float:
    """The reference: a nanoGPT-style loop. Returns tokens/s."""
    opt = make_optimizer(model, cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    model.train()
    t0 = time.perf_counter()
    for step in range(steps):
        set_lr(opt, lr_at(step, cfg))
        x, y = stream.get_batch("train", cfg.batch, cfg.ctx, gen)
        logits = model(x)  # (B, T, V)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        loss.item()
    return steps * cfg.batch * cfg.ctx / (time.perf_counter() - t0)


def morph_loop(model, tokenizer, stream, cfg) -> float:
    with tempfile.TemporaryDirectory() as d:
        tr = Engine(model, cfg, d, tokenizer=tokenizer, stream=stream, controllers=[])
        tr.run()
        return read_jsonl(f"{d}/metrics.jsonl")[-1]["tok_s"]


def bench(path: str, steps: int, threads: int, repeats: int = 2) -> dict:
    g = morphdsl.build(path)
    cfg = from_sections(g.sections, {"steps": steps, "eval_every": 10 * steps,
                                     "checkpoint_every": 10 * steps, "threads": threads,
                                     "sample_tokens": 0})
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = morphdsl.compile(g)
    tokenizer, stream = prepare_data(cfg, g)
    init = clone_module(model)
    plain_loop(clone_module(init), stream, cfg, 3)  # warm-up both paths (allocator, AdamW state)
    morph_loop(clone_module(init), tokenizer, stream, from_dict(cfg.to_dict(), {"steps": 3}))
    plain = morph = 0.0
    for _ in range(repeats):  # alternate, best of each: robust to a busy machine
        plain = max(plain, plain_loop(clone_module(init), stream, cfg, steps))
        morph = max(morph, morph_loop(clone_module(init), tokenizer, stream, copy.deepcopy(cfg)))
    return {"spec": path, "params": sum(p.numel() for p in model.parameters()),
            "batch x ctx": f"{cfg.batch} x {cfg.ctx}", "plain tok/s": plain,
            "morphdsl tok/s": morph, "ratio": morph / plain}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--specs", nargs="+", default=["specs/gpt_tiny.morph", "specs/gpt_host.morph"])
    a = ap.parse_args()
    rows = [bench(s, a.steps, a.threads, a.repeats) for s in a.specs]
    print(f"\ntraining throughput, {a.steps} steps, best of {a.repeats}, {a.threads} threads, CPU\n")
    print("| spec | params | batch x ctx | plain tok/s | morphdsl tok/s | ratio |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['spec']} | {r['params']:,} | {r['batch x ctx']} | {r['plain tok/s']:,.0f} "
              f"| {r['morphdsl tok/s']:,.0f} | {r['ratio']:.3f} |")


if __name__ == "__main__":
    main()
