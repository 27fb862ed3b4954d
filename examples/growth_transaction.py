"""A growth transaction with slice metadata: grow, freeze the new head, train, checkpoint-free.

    python examples/growth_transaction.py
"""
import torch
import torch.nn.functional as F

import morphdsl
from morphdsl.errors import GrowthError
from morphdsl.growth import GrowthTransaction, attach, set_lr

torch.manual_seed(0)
model = morphdsl.compile("specs/gpt_tiny.morph")
opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
x = torch.randint(0, 256, (4, 33))


def step():
    logits = model(x[:, :-1])
    loss = F.cross_entropy(logits.flatten(0, 1), x[:, 1:].flatten())
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


txn = GrowthTransaction(model, opt, step=0)
for s in range(1, 31):
    step()
    if s == 10:
        txn.step = s
        r = txn.apply("add_head", {"target": "blocks.0.attn", "n": 1})
        model, opt, meta = r.module, r.optimizer, r.meta
        print("add_head: identity error", r.report.max_abs_err)
        for sl in meta.slices("blocks.0.attn.qkv.weight"):
            print("  ", sl.index, sl.origin, "step", sl.step)
    if s == 20:  # a bad request changes nothing
        try:
            txn.apply("widen_mlp", {"target": "blocks.9.mlp", "by": 64})
        except GrowthError as e:
            print("refused:", e.message, "| hint:", e.hint)
        assert txn.module is model
        meta.freeze("blocks.0.attn.qkv.weight", ((64, 96), None))  # the new head's q rows
        attach(model, opt, meta)
        frozen = model.get_parameter("blocks.0.attn.qkv.weight")[64:96].detach().clone()
    set_lr(opt, 1e-3)
print("frozen rows unchanged after 10 steps:",
      torch.equal(model.get_parameter("blocks.0.attn.qkv.weight")[64:96], frozen))
