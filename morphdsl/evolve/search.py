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


def random_search(spec, out, n: int, flops_each: float | None = None, *, seed: int = 0,
                  max_mutations: int = 3, executor: str = "local", workers: int = 2,
                  train: dict | None = None, menu=None, replace: bool = True,
                  screen_steps: int | None = None, budget: float | None = None) -> tuple[dict, list]:
    """Train `n` random architectures (0..max_mutations mutations of `spec`) into `out/c00`, ...;
    (best result, all results), best = lowest val loss. Either each for `flops_each` FLOPs
    (its cosine decayed at the end), or — with `screen_steps` and `budget` — each for
    `screen_steps` steps, then the best on alone until the whole search has spent `budget`
    FLOPs (every candidate's LR schedule is laid over the run it would have as the winner),
    the screen-then-finish shape of an evolved population with `finish`.
    `replace=False` keeps candidates already trained in `out` (their result.json)."""
    import shutil

    import morphdsl
    from ..ir.cost import train_flops
    from ..ir.emit import emit
    from .executors import make_executor

    base = morphdsl.build(spec)
    cfg = EvolveConfig.from_section(base.sections.get("evolve"))
    menu = menu or cfg.menu
    if replace and Path(out).exists():
        shutil.rmtree(out)
    rng = random.Random(f"random-search:{seed}")
    drawn = [random_architecture(base, menu, rng, rng.randint(0, max_mutations)) for _ in range(n)]
    fixed = {"sample_tokens": 0, **(train or {})}
    jobs = []
    if screen_steps is None:
        for i, (g, applied) in enumerate(drawn):
            over = {"flops": float(flops_each), "steps": 10**9, "eval_every": 10**9,
                    "checkpoint_every": 10**9, **fixed}
            jobs.append({"spec": emit(g), "overrides": over})
    else:
        from ..train.config import from_sections

        tc = from_sections(base.sections, {k: v for k, v in fixed.items() if k != "source"})
        per = [train_flops(g, tc.batch, tc.ctx) for g, _ in drawn]
        left = budget - screen_steps * sum(per)
        if left < 0:
            raise ValueError(f"screening {n} candidates for {screen_steps} steps costs "
                             f"{screen_steps * sum(per):.3g} FLOPs, more than the budget {budget:.3g}")
        for (g, _), f in zip(drawn, per):
            total = screen_steps + int(left // f)
            jobs.append({"spec": emit(g), "total": total,
                         "overrides": {"steps": total, "stop_at": screen_steps,
                                       "eval_every": screen_steps, "checkpoint_every": screen_steps,
                                       **fixed}})
    for i, (j, (g, applied)) in enumerate(zip(jobs, drawn)):
        j.update(out=str(Path(out) / f"c{i:02d}"), seed=seed * 1000 + i, applied=applied,
                 arch=describe_arch(g))
    ex = make_executor(executor, workers)
    try:
        results = ex.map(run_generation, jobs)
        for j, r in zip(jobs, results):
            r["applied"], r["arch"] = j["applied"], j["arch"]
        best = min(results, key=lambda r: r["val_loss"])
        if screen_steps is not None:
            j = jobs[results.index(best)]
            fin = ex.map(run_generation, [{"out": str(Path(out) / "finish"), "parent": best["out"],
                                           "overrides": {"stop_at": j["total"]}}])[0]
            fin.update(applied=best["applied"], arch=best["arch"], screened=best["out"],
                       search_flops=sum(r["flops_spent"] for r in results) + fin["flops_spent"])
            best = fin
    finally:
        ex.close()
    return best, results
