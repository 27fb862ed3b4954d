"""Does evolution pay? An evolved population against three baselines at equal total FLOPs.

    python -m benchmarks.evolution [--quick] [--jobs 2] [--finish STEPS] [--analyse]

Per corpus (Shakespeare, stories) and seed, from specs/bench/evolution.morph (2 blocks, d 32).
Every member of a generation spends the FLOPs of `steps` steps at the starting size
(`per_generation = "flops"`: a member that grew takes fewer steps), so the population's budget
is known in advance: E = (population x generations x steps + finish) x (FLOPs of a base step).
- **evolution**: `morphdsl.evolve` with the spec's menu (widen_mlp, add_head, insert_block,
  widen_embed, prune_units, prune_heads, remove_block, lr) and crossover 0.25; with `--finish`
  its fittest member then trains on alone for that many base steps' FLOPs.
- **pbt**: the same loop with the lr mutation only and no crossover (hyperparameter-only PBT).
- **random**: random search over the same spec space (morphdsl.evolve.search): `population`
  architectures, each the base after 0-3 random structural mutations, trained from scratch
  for a member's share (generations x steps base steps' FLOPs); the best then finishes like
  evolution's.
- **static**: the base spec and a target (4 blocks, d 64, 4 heads) trained from scratch for E
  FLOPs, cosine fully decayed, each with its LR the better of two; the better size is the
  static baseline.
Each method picks its best model on the validation batches the runs evaluate on
(`eval_batches`); that model is then scored on **held-out** validation windows no selection
saw. Results: benchmarks/results/evolution/ (results*.json, report*.md); runs are reused when
the code (morphdsl, this file, the spec) and settings are unchanged.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "bench" / "evolution.morph"
OUT = ROOT / "benchmarks" / "results" / "evolution"
RUNS = ROOT / "runs" / "bench-evolution"
FULL = dict(seeds=3, corpora=("shakespeare", "stories"), population=4, generations=6, steps=100,
            lrs=(3e-3, 6e-3), heldout_batches=32)
QUICK = dict(seeds=1, corpora=("stories",), population=3, generations=3, steps=30, lrs=(3e-3,),
             heldout_batches=8)
TARGET = {"d      = 32": "d      = 64", "heads  = 2": "heads  = 4", "layers = 2": "layers = 4"}
METHODS = ("evolution", "pbt", "random", "static")


def code_sha() -> str:
    from .growth import code_sha as morph_sha

    h = hashlib.sha256(morph_sha().encode())
    h.update(Path(__file__).read_bytes())
    h.update(SPEC.read_bytes())
    return h.hexdigest()[:16]


SHRINK = ("mutate(prune_units", "mutate(prune_heads", "mutate(remove_block")


def spec_text(target: bool = False, pbt: bool = False, grow_only: bool = False) -> str:
    """The benchmark spec; the target size; PBT's lr-only menu; or the menu without the
    shrinking mutations (`--menu grow`)."""
    text = SPEC.read_text()
    if grow_only:
        text = "\n".join(ln for ln in text.splitlines() if not ln.strip().startswith(SHRINK)) + "\n"
    if target:
        for a, b in TARGET.items():
            text = text.replace(a, b)
    if pbt:  # the same settings, the menu lr only, no crossover
        lines = [ln for ln in text.splitlines() if not ln.strip().startswith("mutate(")
                 or ln.strip().startswith("mutate(lr")]
        text = "\n".join(ln if not ln.strip().startswith("crossover") else "  crossover   = 0"
                         for ln in lines) + "\n"
    return text


def heldout_windows(stream, ctx: int, batch: int, eval_batches: int, batches: int):
    """(x, y) of up to `batches` batches of validation windows that the runs' evaluation
    (`iter_eval_batches(..., max_batches=eval_batches)`, windows spread over the split) skips."""
    import torch

    data = stream.split("val")
    total = stream.n_eval_windows("val", ctx)
    want = min(total, eval_batches * batch)
    seen = set((torch.arange(want) * total // want).tolist())
    free = [i for i in range(total) if i not in seen]
    n = min(len(free), batches * batch)
    rows = torch.tensor([free[i * len(free) // n] for i in range(n)])
    xs, ys = data.unfold(0, ctx, ctx), data[1:].unfold(0, ctx, ctx)
    return xs[rows], ys[rows]


def heldout(run_dir: str, batches: int) -> float:
    """A run's loss on the held-out validation windows (heldout_windows)."""
    import torch
    import torch.nn.functional as F

    from morphdsl.evolve.member import _data
    from morphdsl.train import checkpoint as ckpt
    from morphdsl.train.config import from_dict

    r = ckpt.load_checkpoint(run_dir)
    cfg = from_dict(r["state"]["config"])
    _, stream = _data(cfg, r["module"].morph_graph, r["tokenizer"])
    X, Y = heldout_windows(stream, cfg.ctx, cfg.batch, cfg.eval_batches, batches)
    model, tot, cnt = r["module"].eval(), 0.0, 0
    with torch.no_grad():
        for i in range(0, len(X), cfg.batch):
            x, y = X[i:i + cfg.batch], Y[i:i + cfg.batch]
            loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
            tot, cnt = tot + loss.item() * y.numel(), cnt + y.numel()
    return tot / cnt


def _static(text: str, out: Path, flops: float, lr: float, seed: int, train: dict) -> dict:
    from morphdsl.evolve.member import run_generation

    job = {"out": str(out), "spec": text, "seed": seed,
           "overrides": {"flops": float(flops), "steps": 10**9, "lr": lr, "sample_tokens": 0,
                         "eval_every": 10**9, "checkpoint_every": 10**9, **train}}
    return run_generation(job)


def run_combo(job: dict) -> dict:
    """All four methods on one (corpus, seed): {method: {val, heldout, params, arch, ...}}."""
    import torch

    torch.set_num_threads(1)
    import morphdsl
    from morphdsl.evolve import evolve
    from morphdsl.evolve.mutations import describe_arch
    from morphdsl.evolve.population import unit_flops
    from morphdsl.evolve.search import random_search

    c, seed, cfg = job["corpus"], job["seed"], job["cfg"]
    base = RUNS / f"{c}-s{seed}"
    if base.exists():  # members' result.json would be reused: a new run starts clean
        import shutil

        shutil.rmtree(base)
    train = {"source": c, "threads": 1}
    over = {k: cfg[k] for k in ("population", "generations", "steps")} | {"seed": seed}
    out: dict = {}

    def arch(run_dir):
        return describe_arch(morphdsl.build(str(Path(run_dir) / "checkpoints" / "latest" / "spec.morph")))

    def entry(res, t0, **kw):
        return {"val": res["val_loss"], "heldout": heldout(res["out"], cfg["heldout_batches"]),
                "params": res["params"], "arch": arch(res["out"]), "out": res["out"],
                "seconds": time.time() - t0, **kw}

    t0 = time.time()
    fin = cfg.get("finish", 0)
    P, G, K = cfg["population"], cfg["generations"], cfg["steps"]
    over |= {"finish": fin}
    menu_spec = spec_text(grow_only=cfg.get("menu") == "grow")
    s = evolve(menu_spec, base / "evolution", over, train=train, replace=True)
    E = s["flops_total"]
    out["evolution"] = entry(s["best"], t0, flops=E, spec=Path(s["best_spec"]).read_text(),
                             lineage=str(base / "evolution" / "lineage.json"))
    t0 = time.time()
    p = evolve(spec_text(pbt=True), base / "pbt", over, train=train, replace=True)
    out["pbt"] = entry(p["best"], t0, flops=p["flops_total"])
    t0 = time.time()
    f0 = unit_flops(morphdsl.build(SPEC), None)
    best, _ = random_search(menu_spec, base / "random", P, G * K * f0, finish_flops=fin * f0,
                            seed=seed, train=train)
    out["random"] = entry(best, t0, flops=best["search_flops"])
    for size, text in (("base", spec_text()), ("target", spec_text(target=True))):
        t0 = time.time()
        runs = [_static(text, base / f"static-{size}-lr{lr:g}", E, lr, seed, train) for lr in cfg["lrs"]]
        r = min(runs, key=lambda r: r["val_loss"])
        out[f"static_{size}"] = entry(r, t0, flops=r["flops"], lr=r["lr"])
    out["static"] = min((out["static_base"], out["static_target"]), key=lambda e: e["val"])
    return {"corpus": c, "seed": seed, "methods": out}


def _ms(xs):
    if len(xs) == 1:
        return f"{xs[0]:.4f}"
    return f"{statistics.mean(xs):.4f} ± {statistics.stdev(xs):.4f}"


def report(res: dict) -> str:
    lines = [f"# Evolution benchmark ({res['date']}, `{res['command']}`, code {res['code_sha']})", ""]
    for c in res["cfg"]["corpora"]:
        combos = [r for r in res["runs"] if r["corpus"] == c]
        lines += [f"## {c} ({len(combos)} seeds): held-out loss (selection on the eval batches)", "",
                  "| method | held-out loss | val (selection) | params | FLOPs | s |", "|---|---|---|---|---|---|"]
        for m in METHODS + ("static_base", "static_target"):
            es = [r["methods"][m] for r in combos]
            lines.append(f"| {m} | {_ms([e['heldout'] for e in es])} | {_ms([e['val'] for e in es])} | "
                         f"{statistics.mean(e['params'] for e in es):,.0f} | "
                         f"{statistics.mean(e['flops'] for e in es):.3g} | "
                         f"{statistics.mean(e['seconds'] for e in es):.0f} |")
        wins = {m: sum(r["methods"]["evolution"]["heldout"] < r["methods"][m]["heldout"] for r in combos)
                for m in ("pbt", "random", "static")}
        lines += ["", "evolution beats: " + ", ".join(f"{m} {w}/{len(combos)} seeds" for m, w in wins.items()),
                  "", "evolved architectures: " + "; ".join(
                      f"s{r['seed']}: {r['methods']['evolution']['arch']}" for r in combos), ""]
    return "\n".join(lines)


def plot(res: dict, path: Path) -> None:
    """Held-out loss per method and corpus (mean, seeds as dots), and the evolved populations'
    best fitness per generation (one line per seed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    corpora = res["cfg"]["corpora"]
    fig, axes = plt.subplots(2, len(corpora), figsize=(6 * len(corpora), 8), squeeze=False)
    names = METHODS + ("static_base", "static_target")
    for j, c in enumerate(corpora):
        combos = [r for r in res["runs"] if r["corpus"] == c]
        ax = axes[0][j]
        for i, m in enumerate(names):
            ys = [r["methods"][m]["heldout"] for r in combos]
            ax.bar(i, statistics.mean(ys), color="C0" if m == "evolution" else "0.7")
            ax.scatter([i] * len(ys), ys, color="k", s=10, zorder=3)
        ax.set_xticks(range(len(names)), names, rotation=30)
        lo = min(r["methods"][m]["heldout"] for r in combos for m in names)
        ax.set_ylim(lo * 0.9, None)
        ax.set(title=f"{c}: held-out loss at equal total FLOPs", ylabel="loss (nats/char)")
        ax = axes[1][j]
        for r in combos:
            lin = Path(r["methods"]["evolution"]["lineage"])
            if not lin.exists():  # the run directories are not kept with the results
                continue
            rows = json.loads(lin.read_text())
            gens = sorted({x["gen"] for x in rows})
            ax.plot(gens, [min(x["fitness"] for x in rows if x["gen"] == g) for g in gens], "o-",
                    label=f"seed {r['seed']}")
        ax.set(title=f"{c}: evolution's best member per generation (last: finish)",
               xlabel="generation", ylabel="val loss")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--analyse", action="store_true", help="report the saved results again")
    ap.add_argument("--finish", type=int, default=0, metavar="STEPS",
                    help="evolution's best member then trains alone for STEPS steps; PBT and "
                         "random search screen the same way and finish with the rest of the "
                         "budget (results-finish.json)")
    ap.add_argument("--menu", choices=["all", "grow"], default="all",
                    help="grow: the menu without prune_units, prune_heads, remove_block "
                         "(evolution and random search): results-grow.json")
    ap.add_argument("--steps", type=int, help="steps per generation (default 100; 30 with "
                                              "--quick): results-stepsN.json")
    a = ap.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    tag = ("-quick" if a.quick else "") + ("-finish" if a.finish else "") + \
        (f"-steps{a.steps}" if a.steps else "") + ("-grow" if a.menu == "grow" else "")
    path = OUT / f"results{tag}.json"
    if a.analyse:
        print(outputs(json.loads(path.read_text()), tag))
        return 0
    cfg = dict(QUICK if a.quick else FULL, finish=a.finish)
    if a.steps:
        cfg["steps"] = a.steps
    if a.menu == "grow":
        cfg["menu"] = "grow"
    sha = code_sha()
    old = json.loads(path.read_text()) if path.exists() else {}
    keep = {(r["corpus"], r["seed"]): r for r in old.get("runs", [])
            if old.get("code_sha") == sha and old.get("cfg") == json.loads(json.dumps(cfg))}
    jobs = [{"corpus": c, "seed": s, "cfg": cfg} for c in cfg["corpora"] for s in range(cfg["seeds"])
            if (c, s) not in keep]
    import multiprocessing as mp

    with ProcessPoolExecutor(max_workers=a.jobs, mp_context=mp.get_context("spawn")) as ex:
        for r in ex.map(run_combo, jobs):
            keep[(r["corpus"], r["seed"])] = r
            print(f"{r['corpus']} s{r['seed']}: " + ", ".join(
                f"{m} {e['heldout']:.4f}" for m, e in r["methods"].items()), flush=True)
    res = {"date": time.strftime("%Y-%m-%d"), "command": "python -m benchmarks.evolution" +
           (" --quick" if a.quick else "") + (f" --finish {a.finish}" if a.finish else "") +
           (f" --steps {a.steps}" if a.steps else "") + (" --menu grow" if a.menu == "grow" else ""),
           "code_sha": sha, "cfg": cfg,
           "runs": sorted(keep.values(), key=lambda r: (r["corpus"], r["seed"]))}
    path.write_text(json.dumps(res, indent=1))
    print(outputs(res, tag))
    return 0


def outputs(res: dict, tag: str) -> str:
    """report{tag}.md, the evolved specs and evolution{tag}.png in the results folder; the report."""
    text = report(res)
    (OUT / f"report{tag}.md").write_text(text + "\n")
    for r in res["runs"]:  # the evolved specs: architectures no one wrote
        (OUT / f"evolved{tag}-{r['corpus']}-s{r['seed']}.morph").write_text(r["methods"]["evolution"]["spec"])
    plot(res, OUT / f"evolution{tag}.png")
    return text


if __name__ == "__main__":
    sys.exit(main())
