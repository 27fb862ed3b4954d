"""What a gardener measures: per-site gradient statistics and a seed's counterfactual
contribution. All read the engine's model without changing it (or its RNG streams)."""
from __future__ import annotations

import math

import torch


def _under(name: str, path: str) -> bool:
    return name.startswith(path + ".")


@torch.no_grad()
def grad_rms(model, paths: list[str], exclude=()) -> dict[str, float]:
    """RMS of the last step's gradients of the parameters under each path (0 when none have
    gradients), leaving out parameters under `exclude` (e.g. the seeds)."""
    sums = {p: [0.0, 0] for p in paths}
    for name, prm in model.named_parameters():
        if prm.grad is None or any(_under(name, e) for e in exclude):
            continue
        for p in paths:
            if _under(name, p):
                sums[p][0] += float(prm.grad.detach().float().pow(2).sum())
                sums[p][1] += prm.numel()
    return {p: math.sqrt(s / n) if n else 0.0 for p, (s, n) in sums.items()}


@torch.no_grad()
def grad_ratio(engine, path: str) -> float:
    """A seed's gradient RMS over the host's (every parameter in no seed); inf if the host's is 0."""
    from ..ir.seeds import seed_paths

    seeds = [p for p, _ in seed_paths(engine.model.morph_graph.root)]
    acc = {"seed": [0.0, 0], "host": [0.0, 0]}
    for name, prm in engine.model.named_parameters():
        if prm.grad is None:
            continue
        who = "seed" if _under(name, path) else None if any(_under(name, e) for e in seeds) else "host"
        if who is not None:
            acc[who][0] += float(prm.grad.detach().float().pow(2).sum())
            acc[who][1] += prm.numel()
    seed, host = (math.sqrt(s / n) if n else 0.0 for s, n in acc.values())
    return seed / host if host > 0 else math.inf


def contribution(engine, path: str, val_loss: float) -> float:
    """(validation loss with the seed masked out - with it) / with it: positive when the seed
    helps. The masked model is the seed_stage(training) rewrite of the model, sharing its
    parameters (nothing is copied or changed), evaluated on the same validation batches."""
    from ..growth import GrowthTransaction

    with torch.random.fork_rng(devices=[]):
        masked = GrowthTransaction(engine.model, None, share=True, verify=False).apply(
            "seed_stage", {"target": path, "stage": "training"}).module
    loss = engine.evaluate(masked)
    return (loss - val_loss) / val_loss
