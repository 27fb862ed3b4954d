"""How much of the network must stay plastic to learn the next domain? The ACC ceiling of any
method that keeps the earlier host exact.

    python -m benchmarks.continual_plasticity               # 3 seeds, S = 600 (~9 min with --jobs 2)
    python -m benchmarks.continual_plasticity --quick       # 1 seed, S = 50 (< 1 min)

From the continual benchmark's host (specs/bench/continual.morph), trained by AdamW on the
domains before, each *transition* (Shakespeare -> stories; Shakespeare, stories -> Python) is
learnt for S steps with only one part of the network trainable, the rest held at the weights
the earlier domains left: everything (sequential fine-tuning), the hulls (the MLPs: what
new petals add to), attention, everything but the hulls, and low-rank deltas W + A B of every
matrix (rank r, the norms and biases trained in full: LoRA, Hu et al. 2021). A method whose old
generations stay exact (routing, lanes, crystallized petals) learns the new domain with at
most what its added parameters can express; this measures what each choice reaches, and its
parameter count, against fine-tuning everything. One training loop for every row (the
engine's: AdamW betas (0.9, 0.95), weight decay 0.1 on matrices, clip 1.0, warm-up 20 then
cosine to lr / 10, lr 3e-3, batch 16 x 64), through `torch.func.functional_call`, so the
host's own weights are never written. Last, a label-free learner at that ceiling (routed_deltas):
a generation of rank-8 deltas per later domain, each window routed by the continual benchmark's
likelihood router; its matrix, ACC and BWT. Writes report.md and results.json under OUT.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import time
from pathlib import Path

from benchmarks import continual as C

OUT = Path("benchmarks/results/continual/plasticity")
# plastic part -> regex over parameter names (None: low-rank deltas of every matrix)
PARTS = {"everything": r".", "hulls": r"\.mlp\.", "attention": r"\.attn\.",
         "everything but the hulls": r"^(?!.*\.mlp\.)", "rank 4 deltas": None,
         "rank 8 deltas": None}


def lr_at(step: int, steps: int, lr: float, warmup: int = 20) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return lr / 10 + 0.5 * (lr - lr / 10) * (1 + math.cos(math.pi * t))


def trainables(module, part: str) -> tuple[dict, callable]:
    """(the trainable tensors by name, a function from them to the full parameter dict)."""
    import torch

    base = {n: p.detach() for n, p in module.named_parameters()}
    rank = int(part.split()[1]) if PARTS[part] is None else None
    if rank is None:
        pat = re.compile(PARTS[part])
        train = {n: p.clone().requires_grad_() for n, p in base.items() if pat.search(n)}
        return train, lambda t: {**base, **t}
    gen = torch.Generator().manual_seed(0)
    train = {}
    for n, p in base.items():
        if p.dim() >= 2 and min(p.shape[-2:]) > rank:
            *lead, m, k = p.shape
            train[n + ":A"] = torch.zeros(*lead, m, rank, requires_grad=True)
            train[n + ":B"] = (torch.randn(*lead, rank, k, generator=gen) / math.sqrt(k)).requires_grad_()
        else:
            train[n] = p.clone().requires_grad_()

    def full(t):
        out = dict(base)
        for n in base:
            out[n] = t[n + ":A"] @ t[n + ":B"] + base[n] if n + ":A" in t else t.get(n, base[n])
        return out
    return train, full


def learn(module, stream, part: str, steps: int, seed: int, lr: float = 3e-3):
    """Train `part` of `module` on `stream` for `steps`; (the parameter dict, trained count)."""
    import torch
    import torch.nn.functional as F
    from torch.func import functional_call

    train, full = trainables(module, part)
    decay = [t for t in train.values() if t.dim() >= 2]
    rest = [t for t in train.values() if t.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": rest, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(seed)
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, lr)
        x, y = stream.get_batch("train", 16, 64, gen)
        logits = functional_call(module, full(train), (x,))
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(train.values()), 1.0)
        opt.step()
    return {n: t.detach() for n, t in full(train).items()}, sum(t.numel() for t in train.values())


def loss_on(module, params: dict, val) -> float:
    import torch
    import torch.nn.functional as F
    from torch.func import functional_call

    with torch.no_grad():
        tot = n = 0
        for x, y in val:
            logits = functional_call(module, params, (x,))
            tot += F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum").item()
            n += y.numel()
    return tot / n


def routed_losses(module, gens: list, val: dict) -> list[float]:
    """Per domain, the loss on positions ROUTE_PREFIX.. of every window when it is scored by the
    generation (a parameter dict) whose NLL of the window's first ROUTE_PREFIX bytes is lowest
    (continual.window_scores: no label, and the scored targets are never read)."""
    import torch
    import torch.nn.functional as F
    from torch.func import functional_call

    start, out = C.ROUTE_PREFIX, []
    with torch.no_grad():
        for dom in C.DOMAINS:
            tot = n = 0
            for x, y in val[dom]:
                nll, logp = [], []
                for g in gens:
                    logits = functional_call(module, g, (x,))
                    sc, lp = C.window_scores(lambda _x, lg=logits: lg, x)
                    nll.append(sc["nll"])
                    logp.append(lp)
                pick = torch.stack(nll).argmin(0)  # (windows,)
                lp = torch.stack(logp)[pick, torch.arange(x.shape[0])][:, start:]
                tot -= lp.gather(-1, y[:, start:, None]).sum().item()
                n += y[:, start:].numel()
            out.append(tot / n)
    return out


def routed_deltas(module, params1: dict, data, steps: int, seed: int, rank: int = 8) -> dict:
    """A label-free continual learner built from the rows above: the host as the first domain
    left it, then for each later domain rank-`rank` deltas on the previous generation (which
    stays exact: it is never written), each window scored by the generation that predicts its
    prefix best (routed_losses). Its matrix, ACC, BWT and parameters added."""
    gens, added, matrix = [params1], 0, []
    matrix.append(routed_losses(module, gens, data.val))
    for k in range(1, len(C.DOMAINS)):
        module.load_state_dict(gens[-1], strict=False)
        p, n = learn(module, data.streams[C.DOMAINS[k]], f"rank {rank} deltas", steps,
                     1000 * seed + k)
        gens.append(p)
        added += n
        matrix.append(routed_losses(module, gens, data.val))
    acc, bwt = C.acc_bwt(matrix)
    return {"rank": rank, "matrix": matrix, "acc": acc, "bwt": bwt, "params_added": added}


def run_seed(seed: int, steps: int, max_chars: int | None) -> dict:
    """For each transition and plastic part: the new domain's loss after S steps; and the
    routed delta learner (key `routed_deltas`)."""
    import torch

    torch.set_num_threads(1)
    data = C.domains(max_chars, 16, 64, 16)
    module = C.build(C.HOST, seed)
    module.eval()  # no dropout in the host; eval keeps it deterministic anyway
    params, _ = learn(module, data.streams[C.DOMAINS[0]], "everything", steps, 1000 * seed)
    out = {"routed_deltas": routed_deltas(module, params, data, steps, seed)}
    for k in range(1, len(C.DOMAINS)):
        module.load_state_dict(params, strict=False)
        dom = C.DOMAINS[k]
        out[dom] = {}
        for part in PARTS:
            t = time.time()
            p, n = learn(module, data.streams[dom], part, steps, 1000 * seed + k)
            out[dom][part] = {"loss": loss_on(module, p, data.val[dom]), "trained": n,
                              "s": time.time() - t}
            if part == "everything":
                nxt = p  # the fine-tuned host carries on to the next transition
        params = nxt
    return out


def report(runs: list[dict], steps: int) -> str:
    lines = [f"S = {steps}, {len(runs)} seed(s); the new domain's validation loss (nats per byte)"
             " after S steps with only this part trainable", "",
             "| plastic part | trained params | " + " | ".join(C.DOMAINS[1:]) + " |",
             "|---|---|" + "---|" * (len(C.DOMAINS) - 1)]
    for part in PARTS:
        cells = []
        for dom in C.DOMAINS[1:]:
            xs = [r[dom][part]["loss"] for r in runs]
            cells.append(C.ms(xs))
        n = runs[0][C.DOMAINS[1]][part]["trained"]
        lines.append(f"| {part} | {n:,} | " + " | ".join(cells) + " |")
    rd = [r["routed_deltas"] for r in runs]
    lines += ["", f"Routed rank-{rd[0]['rank']} deltas (a generation per domain, each window "
              f"scored from position {C.ROUTE_PREFIX} by the generation that predicts its first "
              f"{C.ROUTE_PREFIX} bytes best; {rd[0]['params_added']:,} parameters added): ACC "
              f"{C.ms([r['acc'] for r in rd], '{:.4f}')}, BWT {C.ms([r['bwt'] for r in rd], '{:+.4f}')}",
              "", "| after | " + " | ".join(C.DOMAINS) + " |", "|---|" + "---|" * len(C.DOMAINS)]
    for k, dom in enumerate(C.DOMAINS):
        lines.append(f"| {dom} | " + " | ".join(
            C.ms([r["matrix"][k][j] for r in rd]) for j in range(len(C.DOMAINS))) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 seed, S = 50, capped corpora")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", help=f"default {OUT} ({OUT}/quick with --quick)")
    a = ap.parse_args(argv)
    if a.seeds < 1 or a.steps < 1 or a.jobs < 1:
        ap.error("--seeds, --steps and --jobs must be at least 1")
    seeds, steps, cap = (1, 50, 200_000) if a.quick else (a.seeds, a.steps, None)
    out = Path(a.out) if a.out else (OUT / "quick" if a.quick else OUT)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if a.jobs > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(a.jobs) as pool:
            runs = pool.starmap(run_seed, [(s, steps, cap) for s in range(seeds)])
    else:
        runs = [run_seed(s, steps, cap) for s in range(seeds)]
    (out / "results.json").write_text(json.dumps({"steps": steps, "runs": runs}, indent=1))
    text = report(runs, steps)
    (out / "report.md").write_text(text)
    print(text + f"\nwrote {out}/report.md, results.json in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
