"""The selection loop: train every member for a generation, rank by fitness, replace the worst
by children of tournament winners (mutated, or bred by crossover), and repeat.

    summary = evolve("spec.morph", "runs/pop", executor="ray")   # `morphc evolve`
    summary = evolve_resume("runs/pop")                          # `morphc evolve --resume`

The run directory holds `population.json` (the driver's state: written atomically after each
generation, with the next generation's jobs), one directory per member per generation
(`g003/m02/`: a morphdsl run with its checkpoint, spec and `result.json`), `lineage.json` and
`evolution.png`. Every choice is drawn from `random.Random(f"{seed}:{generation}")` and every job
is deterministic (member.py), so a resumed population — after kill -9 of the driver — is the
population an uninterrupted run makes, member for member.
"""
from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

from ..errors import MorphError
from .config import EvolveConfig
from .member import run_generation
from .mutations import choose, describe

STATE = "population.json"
VERSION = 1


def fitness(cfg: EvolveConfig, res: dict) -> float:
    return (res["val_loss"] + cfg.param_penalty * res["params"] / 1e6
            + cfg.flops_penalty * res["flops"] / 1e12)


def _save(out: Path, state: dict) -> None:
    tmp = out / (STATE + ".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    os.replace(tmp, out / STATE)


def _graph(run_dir: str):
    from ..train import checkpoint as ckpt
    from ..train.ckpt_files import read_spec

    return read_spec(ckpt.checkpoint_dir(run_dir))


def _tournament(members: list, k: int, rng: random.Random) -> dict:
    return min(rng.sample(members, min(k, len(members))), key=lambda m: (m["fitness"], m["slot"]))


def next_jobs(cfg: EvolveConfig, out: Path, records: list, gen: int) -> list:
    """The jobs of generation `gen` from the ranked records of generation gen - 1: survivors
    continue, the worst `cfg.replaced` slots get children."""
    from functools import lru_cache

    graph = lru_cache(maxsize=None)(_graph)  # each parent's spec is read once
    rng = random.Random(f"{cfg.seed}:{gen}")
    ranked = sorted(records, key=lambda m: (m["fitness"], m["slot"]))
    survivors = ranked[:cfg.population - cfg.replaced]
    stop = _stop(cfg, gen)
    jobs, used = [], set()  # (parent, mate or mutation): no two children of one generation alike
    for m in survivors:
        jobs.append({"slot": m["slot"], "parent": m["out"], "parent_id": m["id"], "mutation": None,
                     "overrides": {**stop, "lr": m["lr"]}})
    for m in ranked[len(survivors):]:
        a = _tournament(survivors, cfg.tournament, rng)
        job = {"slot": m["slot"], "parent": a["out"], "parent_id": a["id"], "replaces": m["id"],
               "mutation": None, "overrides": {**stop, "lr": a["lr"]},
               "data_seed": rng.randrange(2**31)}  # not its parent's batches: the two diverge
        others = [s for s in survivors if s is not a]
        if others and rng.random() < cfg.crossover:
            from .crossover import aligned_positions

            b = _tournament(others, cfg.tournament, rng)
            if (a["id"], b["id"]) in used:
                job["note"] = f"already bred with {b['id']}: mutated instead"
            elif aligned_positions(graph(a["out"]), graph(b["out"])):
                used.add((a["id"], b["id"]))
                job.update(mate=b["out"], mate_id=b["id"],
                           crossover={"seed": rng.randrange(2**31), "p": 0.5})
            else:
                job["note"] = f"no aligned blocks with {b['id']}: mutated instead"
        if "mate" not in job:
            g = graph(a["out"])
            for _ in range(8):  # a different change than its siblings got, where one exists
                mut = choose(g, cfg.menu, rng)
                if (a["id"], describe(mut)) not in used:
                    break
            used.add((a["id"], describe(mut)))
            job["mutation"] = mut
            if mut["op"] is None:
                job["overrides"]["lr"] = a["lr"] * mut["lr_factor"]
        jobs.append(job)
    jobs.sort(key=lambda j: j["slot"])
    for j in jobs:
        j["out"] = str(out / f"g{gen:03d}" / f"m{j['slot']:02d}")
        j["id"] = f"g{gen:03d}.m{j['slot']:02d}"
    return jobs


def finish_job(cfg: EvolveConfig, out: Path, records: list) -> dict:
    """The last job: the fittest member trains on alone for `cfg.finish` steps."""
    best = min(records, key=lambda m: (m["fitness"], m["slot"]))
    return {"slot": best["slot"], "id": "finish", "out": str(out / "finish"), "parent": best["out"],
            "parent_id": best["id"], "mutation": None, "note": "finish",
            "overrides": {**_stop(cfg, None), "lr": best["lr"]}}


def first_jobs(cfg: EvolveConfig, out: Path, spec_text: str, train: dict,
               lr: float | None = None) -> list:
    """Generation 0: the spec, one seed per member; with `lr_spread` s > 1 the members' LRs
    are spread log-evenly over [lr / s, lr * s] (population-based training's initial draw)."""
    P, s = cfg.population, cfg.lr_spread
    lrs = [None] * P if lr is None or s == 1 else [lr * s ** (2 * i / (P - 1) - 1) for i in range(P)]
    return [{"slot": i, "id": f"g000.m{i:02d}", "out": str(out / "g000" / f"m{i:02d}"),
             "spec": spec_text, "seed": cfg.seed * 1000 + i, "mutation": None,
             "overrides": {**train, **_stop(cfg, 0), **({"lr": lrs[i]} if lrs[i] else {})}}
            for i in range(P)]


def _stop(cfg: EvolveConfig, gen: int | None) -> dict:
    """Where generation `gen` (None: the finish) ends: after its steps, or — per_generation =
    "flops" — once the member has spent its share of FLOPs (`steps` steps at the starting size:
    a member that grew takes fewer, so members are compared at equal compute)."""
    if gen is None:
        return {} if cfg.per_generation == "flops" else \
            {"stop_at": cfg.steps * cfg.generations + cfg.finish}
    if cfg.per_generation == "flops":
        return {"stop_at_flops": cfg.unit_flops * cfg.steps * (gen + 1)}
    return {"stop_at": cfg.steps * (gen + 1)}


def _record(cfg, job: dict, res: dict, gen: int) -> dict:
    rec = {"id": job["id"], "gen": gen, "slot": job["slot"], "parent": job.get("parent_id"),
           "mate": job.get("mate_id"), "replaces": job.get("replaces"),
           "mutation": describe(job.get("mutation")) if not job.get("mate") else "crossover",
           "note": job.get("note"), "fitness": fitness(cfg, res)}
    rec.update({k: res.get(k) for k in ("out", "val_loss", "params", "flops", "flops_spent", "lr",
                                        "step", "blocks", "crossover", "time_s")})
    rec["change"] = res.get("mutation")  # the measured output change of a structural mutation
    return rec


def _train_overrides(cfg: EvolveConfig, graph, executor: str, train: dict | None) -> dict:
    """The members' train settings: one LR schedule over the whole evolution (generations and
    finish: in steps, or in FLOPs at the starting size), an evaluation and a checkpoint at the
    end of each generation."""
    over = {"eval_every": cfg.steps, "checkpoint_every": cfg.steps, "sample_tokens": 0,
            **(train or {})}
    if cfg.unit_flops is None:
        cfg.unit_flops = unit_flops(graph, train)
    if cfg.per_generation == "flops":
        over.update(steps=10**12, flops=cfg.unit_flops * (cfg.steps * cfg.generations + cfg.finish))
    else:
        over["steps"] = cfg.steps * cfg.generations + cfg.finish
    if executor != "local":
        over.setdefault("threads", 1)  # one core per member: workers run side by side
    return over


def unit_flops(graph, train: dict | None) -> float:
    """Training FLOPs of one step of `graph` at its batch and ctx (`train` overriding)."""
    from ..ir.cost import train_flops
    from ..train.config import from_sections

    tc = from_sections(graph.sections, train)
    return float(train_flops(graph, tc.batch, tc.ctx))


def _generations_for(cfg: EvolveConfig) -> int:
    """Generations that spend about `cfg.flops` (exactly, per_generation = "flops")."""
    per = cfg.unit_flops * cfg.steps * cfg.population
    return max(1, int((cfg.flops - cfg.unit_flops * cfg.finish) // per))


def evolve(spec, out, overrides: dict | None = None, *, executor: str = "local",
           workers: int | None = None, address: str | None = None, train: dict | None = None,
           replace: bool = False, log=None) -> dict:
    """Evolve a population from `spec` (a path, text or MorphGraph) into run directory `out`.
    `overrides` change evolve settings (None values are ignored), `train` train settings."""
    import morphdsl
    from ..ir.emit import emit

    graph = morphdsl.build(spec)
    cfg = EvolveConfig.from_section(graph.sections.get("evolve"), overrides)
    out = Path(out)
    if (out / STATE).exists() and not replace:
        raise MorphError(f"{out} already holds a population; it was left as it is",
                         hint=f"continue it: morphc evolve --resume {out}; start over: --force")
    if out.exists() and not out.is_dir():
        raise MorphError(f"{out} is a file", hint="give --out a directory")
    if out.exists() and replace:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg.unit_flops = unit_flops(graph, train)
    if cfg.flops:
        cfg.generations = _generations_for(cfg)
    text = emit(graph)
    (out / "base.morph").write_text(text)
    tr = _train_overrides(cfg, graph, executor, train)
    from ..train.config import from_sections

    lr = from_sections(graph.sections, tr).lr
    state = {"version": VERSION, "config": cfg.to_dict(), "train": tr, "generation": 0,
             "jobs": first_jobs(cfg, out, text, tr, lr), "history": [], "done": False}
    _save(out, state)
    return _loop(out, state, executor, workers or cfg.workers, address, log)


def evolve_resume(out, *, executor: str = "local", workers: int | None = None,
                  address: str | None = None, log=None) -> dict:
    """Continue the population in `out` after an interruption (a finished one is reported)."""
    out = Path(out)
    try:
        state = json.loads((out / STATE).read_text())
        if state.get("version") != VERSION:
            raise ValueError("unknown version")
    except (OSError, ValueError) as e:
        raise MorphError(f"{out} holds no population to resume ({type(e).__name__})",
                         hint="start one: morphc evolve SPEC --out DIR") from None
    cfg = EvolveConfig.from_dict(state["config"])
    return _loop(out, state, executor, workers or cfg.workers, address, log)


def _loop(out: Path, state: dict, executor: str, workers: int, address, log) -> dict:
    from .executors import make_executor
    from .lineage import write_lineage

    cfg = EvolveConfig.from_dict(state["config"])
    ex = None
    try:
        while not state["done"]:
            gen = state["generation"]
            if ex is None:
                ex = make_executor(executor, workers, address)
            results = ex.map(run_generation, state["jobs"])
            records = [_record(cfg, j, r, gen) for j, r in zip(state["jobs"], results)]
            state["history"].append(records)
            if gen + 1 < cfg.generations:
                state["jobs"], state["generation"] = next_jobs(cfg, out, records, gen + 1), gen + 1
            elif cfg.finish and gen + 1 == cfg.generations:  # generation G is the finish
                state["jobs"], state["generation"] = [finish_job(cfg, out, records)], gen + 1
            else:
                state["done"], state["jobs"] = True, []
            _save(out, state)
            write_lineage(out, state["history"])
            if log is not None:
                log(generation_line(gen, records))
    finally:
        if ex is not None:
            ex.close()
    return summarize(out, state)


def generation_line(gen: int, records: list) -> str:
    best = min(records, key=lambda r: r["fitness"])
    if best["id"] == "finish":
        return (f"finish: {best['parent']} trained on alone to step {best['step']}: "
                f"val loss {best['val_loss']:.4f}")
    fit = sorted(r["fitness"] for r in records)
    muts = ", ".join(f"{r['id'][-3:]} {r['mutation']}" for r in records if r["mutation"] != "-")
    return (f"generation {gen}: best {best['fitness']:.4f} ({best['id']}, {best['params']:,} params), "
            f"median {fit[len(fit) // 2]:.4f}" + (f"; new: {muts}" if muts else ""))


def summarize(out: Path, state: dict) -> dict:
    last = state["history"][-1]
    best = min(last, key=lambda r: (r["fitness"], r["slot"]))
    total = sum(r["flops_spent"] for gen in state["history"] for r in gen)
    spec = Path(best["out"]) / "checkpoints" / "latest" / "spec.morph"
    if spec.exists():
        shutil.copyfile(spec, out / "best.morph")
    fin = len(state["history"]) > state["config"]["generations"]  # the last one was the finish
    return {"best": best, "generations": len(state["history"]) - fin, "finished": fin,
            "flops_total": total,
            "best_spec": str(out / "best.morph"), "out": str(out)}
