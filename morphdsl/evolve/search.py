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


def random_search(spec, out, n: int, flops_each: float, *, seed: int = 0, max_mutations: int = 3,
                  executor: str = "local", workers: int = 2, train: dict | None = None,
                  menu=None, replace: bool = True) -> tuple[dict, list]:
    """Train `n` random architectures (0..max_mutations mutations of `spec`) for `flops_each`
    FLOPs each into `out/c00`, ...; (best result, all results), best = lowest val loss.
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
        over = {"flops": float(flops_each), "steps": 10**9, "sample_tokens": 0,
                "eval_every": 10**9, "checkpoint_every": 10**9, **(train or {})}
        jobs.append({"out": str(Path(out) / f"c{i:02d}"), "spec": emit(g), "seed": seed * 1000 + i,
                     "overrides": over, "applied": applied, "arch": describe_arch(g)})
    ex = make_executor(executor, workers)
    try:
        results = ex.map(run_generation, jobs)
    finally:
        ex.close()
    for j, r in zip(jobs, results):
        r["applied"], r["arch"] = j["applied"], j["arch"]
    return min(results, key=lambda r: r["val_loss"]), results
