"""Random search over the space evolution explores: each candidate is the base spec after a few
random structural mutations (the same menu), trained from scratch with an equal share of a
FLOPs budget. The baseline an evolved population must beat (benchmarks/evolution.py).

    best, results = random_search("spec.morph", "runs/rs", n=4, flops_each=5e11, seed=0)
"""
from __future__ import annotations

import random
from pathlib import Path

import torch

from .config import EvolveConfig
from .member import run_generation
from .mutations import STRUCTURAL, choose, describe_arch


def random_architecture(graph, menu, rng: random.Random, k: int):
    """The graph after `k` random structural mutations from `menu` (weights of a seeded random
    init are only used to choose which units the pruning mutations remove)."""
    import morphdsl
    from ..growth import GrowthTransaction

    torch.manual_seed(rng.randrange(2**31))
    module = morphdsl.compile(graph)
    applied = []
    for _ in range(k):
        m = choose(module.morph_graph, menu, rng, only=STRUCTURAL)
        module = GrowthTransaction(module, None, verify=False).apply(m["op"], m["args"]).module
        applied.append(m)
    return module.morph_graph, applied


def random_search(spec, out, n: int, flops_each: float, *, finish_flops: float = 0.0,
                  seed: int = 0, max_mutations: int = 3, executor: str = "local", workers: int = 2,
                  train: dict | None = None, menu=None, replace: bool = True) -> tuple[dict, list]:
    """Train `n` random architectures (0..max_mutations mutations of `spec`) for `flops_each`
    FLOPs each into `out/c00`, ...; (best result, all results), best = lowest val loss. With
    `finish_flops`, the best then trains on for that many FLOPs more into `out/finish` (every
    candidate's LR schedule is laid over the run it would have as the winner): the
    screen-then-finish shape of an evolved population with `finish`.
    `replace=False` keeps candidates already trained in `out` (their result.json)."""
    import shutil

    import morphdsl
    from ..ir.emit import emit
    from .executors import make_executor

    base = morphdsl.build(spec)
    cfg = EvolveConfig.from_section(base.sections.get("evolve"))
    menu = menu or cfg.menu
    if replace and Path(out).exists():
        shutil.rmtree(out)
    rng = random.Random(f"random-search:{seed}")
    jobs = []
    for i in range(n):
        g, applied = random_architecture(base, menu, rng, rng.randint(0, max_mutations))
        over = {"flops": float(flops_each + finish_flops), "steps": 10**12, "sample_tokens": 0,
                "eval_every": 10**9, "checkpoint_every": 10**9, **(train or {})}
        if finish_flops:
            over["stop_at_flops"] = float(flops_each)
        jobs.append({"out": str(Path(out) / f"c{i:02d}"), "spec": emit(g), "seed": seed * 1000 + i,
                     "overrides": over, "applied": applied, "arch": describe_arch(g)})
    ex = make_executor(executor, workers)
    try:
        results = ex.map(run_generation, jobs)
        for j, r in zip(jobs, results):
            r["applied"], r["arch"] = j["applied"], j["arch"]
        best = min(results, key=lambda r: r["val_loss"])
        if finish_flops:
            fin = ex.map(run_generation, [{"out": str(Path(out) / "finish"), "parent": best["out"],
                                           "overrides": {}}])[0]
            fin.update(applied=best["applied"], arch=best["arch"], screened=best["out"])
            best = fin
    finally:
        ex.close()
    best["search_flops"] = sum(r["flops_spent"] for r in results) + (
        best["flops_spent"] if finish_flops else 0)
    return best, results
