"""The gardener experiment: from one small host, at one FLOPs budget, on both corpora —
static host, static target size, fixed seed schedules, the heuristic gardener, and a PPO
gardener trained on one corpus and evaluated on held-out seeds of both.

    python -m benchmarks.garden            # the full run (policy ~30 min + 5 seeds x 2 corpora)
    python -m benchmarks.garden --quick    # a short policy, 2 seeds, shorter budget (< 10 min)
    python -m benchmarks.garden --host specs/bench/garden_tiny.morph --budget-steps 2400 \
        --methods static_host static_target fixed_late heuristic   # another regime, no PPO

Writes report.md, results.json and garden.png under benchmarks/results/garden (or --out).
Paired comparisons over the evaluation seeds (same seed = same data order and init) state
their two-sided p-values (scipy.stats.ttest_rel).
"""
from __future__ import annotations

import argparse
import json
import math
import re
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from .growth import ROOT, ms, run_one, spec_sha

HOST = ROOT / "specs" / "bench" / "garden_host.morph"
DATA = ("stories", "shakespeare")
FULL = dict(budget_steps=600, decide_every=30, timesteps=4800, seeds=5, train_on="stories")
QUICK = dict(budget_steps=120, decide_every=20, timesteps=256, seeds=2, train_on="stories")
GATES = ("seeds(min_training = {t}, blend_steps = {t}, blend_updates = 4, min_holding = {t}, "
         "min_contribution = {c:g})")
HEURISTIC = "heuristic(patience = 2, min_delta = 0.01, cooldown = {c}, kinds = [\"mlp\", \"attn\"], hidden = 64)"
FIXED = {  # germinate at fixed fractions of the budget (`{last}`: the host's last block); the
    # lifecycle's gates do the rest
    "fixed_early": ["progress(0.15) -> germinate(blocks.{last}, kind = mlp, hidden = 64)",
                    "progress(0.5) -> germinate(blocks.0, kind = mlp, hidden = 64)"],
    "fixed_late": ["progress(0.4) -> germinate(blocks.{last}, kind = mlp, hidden = 64)"],
}


METHODS = ("static_host", "static_target", *FIXED, "heuristic", "ppo")


def spec_text(method: str, cfg: dict, policy: Path | None = None, host: Path = HOST) -> str:
    text = host.read_text()
    t = cfg["decide_every"]
    layers = re.compile(r"^layers\s*=\s*(\d+)", re.M)
    n = int(layers.search(text)[1])
    if method == "static_target":  # the size the seeds grow the host towards: twice the blocks
        text = layers.sub(f"layers = {2 * n}", text, count=1)
    grow = []
    gates = GATES.format(t=t, c=cfg.get("min_contribution", 0.0))
    if method.startswith("fixed"):
        grow = [gates] + [g.format(last=n - 1) for g in FIXED[method]]
    elif method == "heuristic":
        grow = [gates, (cfg.get("heuristic") or HEURISTIC).format(c=3 * t)]
    elif method == "ppo":
        grow = [gates, f'policy("{policy}")']
    if grow:
        text += "\ngrow {\n" + "".join(f"  {g}\n" for g in grow) + "}\n"
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timesteps", type=int, help="PPO environment steps")
    ap.add_argument("--seeds", type=int)
    ap.add_argument("--policy", help="evaluate this policy instead of training one")
    ap.add_argument("--host", type=Path, default=HOST, help="the host spec (default: %(default)s)")
    ap.add_argument("--budget-steps", type=int, help="the FLOPs budget, in host steps")
    ap.add_argument("--decide-every", type=int, help="steps between evaluations and decisions")
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS),
                    help="a subset (without ppo no policy is trained)")
    ap.add_argument("--first-seed", type=int, default=100,
                    help="the first evaluation seed (default: %(default)s; PPO trains on seeds 0, 1, ...)")
    ap.add_argument("--min-contribution", type=float, default=0.0,
                    help="the gates' min_contribution for every gardener (default: %(default)s)")
    ap.add_argument("--heuristic", help="the heuristic's declaration ({c}: 3 x --decide-every), "
                    f"default: {HEURISTIC}")
    ap.add_argument("--reuse-static", type=Path, metavar="RESULTS_JSON",
                    help="take the static_host and static_target runs from an earlier results.json "
                         "of the same host, budget, decision interval and seeds (their specs have "
                         "no grow section, so the gardeners' settings do not change them)")
    args = ap.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    cfg["min_contribution"], cfg["first_seed"] = args.min_contribution, args.first_seed
    if args.first_seed < 100 and "ppo" in args.methods:
        ap.error("--first-seed below 100 would evaluate PPO on the seeds it trains on")
    if args.heuristic:
        cfg["heuristic"] = args.heuristic
    for k in ("timesteps", "seeds", "budget_steps", "decide_every"):
        if getattr(args, k) is not None:
            if getattr(args, k) < 1:
                ap.error(f"--{k.replace('_', '-')} must be at least 1")
            cfg[k] = getattr(args, k)
    host = args.host.resolve()
    cfg["host"] = str(args.host)
    import morphdsl
    from morphdsl.errors import MorphError
    from morphdsl.garden import controllers_for

    try:
        g = morphdsl.build(host)
    except (MorphError, OSError) as e:  # the spec's own message: FILE:LINE:COL, the text, a hint
        ap.exit(2, (e.render() if isinstance(e, MorphError) else f"garden: error: {e}") + "\n")
    if not re.search(r"^layers\s*=\s*\d+", host.read_text(), re.M):
        ap.error(f"{args.host}: the host needs a top-level `layers = N` (the static target "
                 "doubles it, the fixed schedules plant at its last block)")
    out = Path(args.out or ROOT / ("runs/bench-garden-quick" if args.quick else "benchmarks/results/garden"))
    (out / "specs").mkdir(parents=True, exist_ok=True)
    log = lambda s: print(s, flush=True)  # noqa: E731
    from morphdsl.ir.cost import train_flops

    tr = g.sections["train"]
    budget = cfg["budget_steps"] * train_flops(g, int(tr["batch"]), int(tr["ctx"]))
    # 1. the PPO gardener, trained on one corpus
    policy = Path(args.policy) if args.policy else out / "garden.zip"
    ppo_report = None
    if not args.policy and "ppo" in args.methods:
        from morphdsl.garden.ppo import train_policy

        log(f"training the PPO gardener on {cfg['train_on']}: {cfg['timesteps']} decisions")
        ppo_report = train_policy(host, policy, timesteps=cfg["timesteps"], seed=0, log=log, env_kwargs={
            "budget_steps": cfg["budget_steps"], "decide_every": cfg["decide_every"], "hidden": 64,
            "source": cfg["train_on"], "eval_batches": 16})  # as the evaluation runs (run_one)
    # 2. every method on held-out seeds of both corpora (seeds 100+: PPO trained on 0, 1, ...)
    methods = [m for m in METHODS if m in args.methods]
    jobs = []
    for m in methods:
        p = out / "specs" / f"{m}.morph"
        try:
            p.write_text(spec_text(m, cfg, policy.resolve(), host))
        except (KeyError, IndexError, ValueError) as e:  # str.format of --heuristic
            ap.error(f"--heuristic: {e!r} in {args.heuristic!r}: the only placeholder is {{c}}")
        try:  # the gardeners' declarations are checked here, at their line, not in a worker
            controllers_for(morphdsl.build(p).sections.get("grow") or [])
        except MorphError as e:
            ap.exit(2, e.render() + "\n")
        for data in DATA:
            for s in range(cfg["first_seed"], cfg["first_seed"] + cfg["seeds"]):
                jobs.append(dict(name=m, data=data, seed=s, spec=p, spec_sha=spec_sha(p), flops=budget,
                                 threads=1, eval_every=cfg["decide_every"],
                                 run_dir=str(out / "runs" / f"{data}-{m}-s{s}")))
    results = []
    if args.reuse_static:
        try:
            old = reusable(args.reuse_static, jobs, budget, cfg["decide_every"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            ap.exit(2, f"garden: error: --reuse-static {args.reuse_static}: not a results.json of this "
                       f"benchmark ({type(e).__name__}: {e})\n")
        results = [old[key(j)] for j in jobs if key(j) in old]
        jobs = [j for j in jobs if key(j) not in old]
        cfg["reused_static"] = f"{args.reuse_static} ({len(results)} runs)"
    log(f"{len(jobs)} evaluation runs ({len(results)} reused), {args.jobs} at a time")
    t0 = time.time()
    with ProcessPoolExecutor(max_workers=args.jobs) as ex:
        for j, r in zip(jobs, ex.map(run_one, jobs)):
            results.append(r)
            log(f"  {r['data']:12s} {r['name']:14s} seed {r['seed']}: val {r['final']:.4f} "
                f"({r['wall_s']:.0f} s) [{time.time() - t0:.0f} s]")
    table = analyse(results, methods)
    date = time.strftime("%Y-%m-%d")
    text = report(table, cfg, budget, ppo_report, date)
    (out / "report.md").write_text(text + "\n")
    (out / "results.json").write_text(json.dumps({"config": cfg, "budget": budget, "date": date,
                                                  "table": table, "ppo": ppo_report, "runs": results},
                                                 indent=1, default=str))
    plot(results, methods, ppo_report, out / "garden.png")
    print(text)
    return 0


def key(job: dict) -> tuple:
    return job["name"], job["data"], job["seed"], job["spec_sha"]


def reusable(path: Path, jobs, budget, decide_every: int) -> dict:
    """The static runs of an earlier results.json that these jobs would repeat (same spec text,
    corpus and seed, same budget and evaluation interval): {key: run}."""
    old = json.loads(Path(path).read_text())
    if abs(float(old["budget"]) - budget) > 1e-6 * budget:
        raise SystemExit(f"garden: --reuse-static {path}: its budget {old['budget']:.4g} FLOPs is not "
                         f"this run's {budget:.4g}")
    if old["config"]["decide_every"] != decide_every:
        raise SystemExit(f"garden: --reuse-static {path}: it evaluated every "
                         f"{old['config']['decide_every']} steps, this run every {decide_every}")
    want = {key(j) for j in jobs if j["name"].startswith("static")}
    return {k: r for r in old["runs"] if (k := key(r)) in want}


def analyse(results, methods) -> dict:
    from scipy.stats import ttest_rel

    out = {}
    for data in DATA:
        rows = {m: sorted((r for r in results if r["data"] == data and r["name"] == m),
                          key=lambda r: r["seed"]) for m in methods}
        cells = {}
        for m, rs in rows.items():
            params = [r["params"] for r in rs]
            secs = [r["curve"][-1][1] for r in rs]
            cells[m] = {"final": [r["final"] for r in rs], "params": params, "seconds": secs,
                        "flops": [r["flops"] for r in rs],
                        "param_seconds": [p * s for p, s in zip(params, secs)],
                        "events": [sum(1 for e in r["events"] if e["op"] == "germinate") for r in rs],
                        "pruned": [sum(1 for e in r["events"] if e["op"] == "prune") for r in rs]}
        fixed = [m for m in methods if m.startswith("fixed")]
        best_fixed = min(fixed, key=lambda m: sum(cells[m]["final"])) if fixed else None

        def paired(a, b):  # None when a method was not run
            if a not in cells or b not in cells:
                return None
            x, y = cells[a]["final"], cells[b]["final"]
            d = [u - v for u, v in zip(x, y)]
            p = float(ttest_rel(x, y).pvalue) if len(x) > 1 and any(d) else 1.0
            return {"diff": d, "p": p, "wins": sum(v < 0 for v in d), "n": len(d)}

        out[data] = {"cells": cells, "best_fixed": best_fixed,
                     "ppo_vs_heuristic": paired("ppo", "heuristic"),
                     "ppo_vs_fixed": paired("ppo", best_fixed),
                     "heuristic_vs_host": paired("heuristic", "static_host")}
    return out


def report(table, cfg, budget, ppo, date) -> str:
    lines = [f"Gardener experiment, {date}: host {cfg.get('host', 'specs/bench/garden_host.morph')}, "
             f"budget {cfg['budget_steps']} host steps = {budget:.3g} FLOPs, a decision every "
             f"{cfg['decide_every']} steps, {cfg['seeds']} held-out seeds per corpus "
             f"({cfg.get('first_seed', 100)}-{cfg.get('first_seed', 100) + cfg['seeds'] - 1}); " +
             (f"PPO trained on {cfg['train_on']} for {cfg['timesteps']} decisions." if
              any("ppo" in t["cells"] for t in table.values()) else "no PPO."), "",
             f"Gates: min_contribution = {cfg.get('min_contribution', 0.0):g}; heuristic: "
             f"`{(cfg.get('heuristic') or HEURISTIC).format(c=3 * cfg['decide_every'])}`" +
             (f"; static runs reused from {cfg['reused_static']}" if cfg.get("reused_static") else "") + ".", ""]
    if ppo:
        ent = [e["entropy"] for e in ppo["entropy"]]
        lines += [f"PPO training: {ppo['timesteps']} steps, {ppo['episodes']} episodes, "
                  f"{ppo['seconds']:.0f} s; action entropy per update {ent[0]:.3f} -> "
                  f"{min(ent):.3f} (min) -> {ent[-1]:.3f} nats (uniform over 7 actions: "
                  f"{math.log(7):.3f}).", ""]
    for data, t in table.items():
        lines += [f"**{data}**", "", "| method | final val loss | params at end | seconds | "
                  "param-seconds | seeds planted | pruned |", "|---|---|---|---|---|---|---|"]
        for m, c in t["cells"].items():
            tag = " (best fixed)" if m == t["best_fixed"] else ""
            lines.append(f"| {m}{tag} | {ms(c['final'])} | {ms(c['params'], '{:,.0f}')} | "
                         f"{ms(c['seconds'], '{:.1f}')} | {ms(c['param_seconds'], '{:.3g}')} | "
                         f"{ms(c['events'], '{:.1f}')} | {ms(c.get('pruned', [0]), '{:.1f}')} |")
        lines.append("")
        for k, label in (("ppo_vs_heuristic", "PPO - heuristic"), ("ppo_vs_fixed", f"PPO - {t['best_fixed']}"),
                         ("heuristic_vs_host", "heuristic - static host")):
            c = t[k]
            if c is None:
                continue
            lines.append(f"- {label}: {ms(c['diff'], '{:+.4f}')} nats, lower on {c['wins']}/{c['n']} "
                         f"seeds, paired t-test p = {c['p']:.3g}")
        lines.append("")
    return "\n".join(lines)


def plot(results, methods, ppo, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(DATA) + 1, figsize=(6 * (len(DATA) + 1), 4.5))
    for ax, data in zip(axes, DATA):
        for i, m in enumerate(methods):
            rs = [r for r in results if r["data"] == data and r["name"] == m]
            for k, r in enumerate(rs):
                ax.plot([c[0] for c in r["curve"]], [c[2] for c in r["curve"]], color=f"C{i}",
                        alpha=0.6, lw=1, label=m if k == 0 else None)
        ax.set_xlabel("training FLOPs")
        ax.set_ylabel("validation loss")
        ax.set_title(data)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    ax = axes[-1]
    if ppo:
        ax.plot([e["timesteps"] for e in ppo["entropy"]], [e["entropy"] for e in ppo["entropy"]], "o-")
        ax.axhline(math.log(7), ls="--", color="grey", label="uniform")
        ax.legend(fontsize=7)
    ax.set_xlabel("PPO environment steps")
    ax.set_ylabel("action entropy (nats)")
    ax.set_title("PPO policy entropy per update")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
