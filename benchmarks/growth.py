"""Does growing pay? Static target vs growth schedules on real text, compared in FLOPs.

    python -m benchmarks.growth            # full: 2 data sets x 3 seeds, all grow_*.morph
                                           # (~2 h on 2 cores; runs with unchanged spec,
                                           # settings and code are reused)
    python -m benchmarks.growth --quick    # 1 seed, 500 static steps, 2 schedules, < 10 min

For each data set (Shakespeare, character level; the embedded stories) and seed:
- `specs/bench/static.morph` (4 layers, 4 heads, d = 128) trains for `steps` steps; its FLOPs
  budget F = steps x the graph's FLOPs per step, and its final validation loss is L*;
- every `specs/bench/grow_*.morph` schedule starts small (2 layers, 2 heads, d = 64) and grows to
  the same final size, trained on the same data stream and LR rule (warm-up + cosine over the
  run's FLOPs budget) with a budget of `budget` x F.
FLOPs are counted from the graph at every step (`morphdsl.ir.cost`), so they follow growth.
Reported per schedule (mean +- std over seeds): FLOPs and training seconds to reach L*
(interpolated between evaluations), FLOPs to reach mean L* (the static final loss averaged over
seeds: the per-seed L* carries the static run's own seed noise), the final validation loss, and
the static model's validation loss at the grown run's total FLOPs.
Writes report.md, results.json and growth.png.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs" / "bench"
DATASETS = ("shakespeare", "stories")
FULL = dict(steps=1500, seeds=3, eval_every=50)
QUICK = dict(steps=500, seeds=1, eval_every=50)
QUICK_SCHEDULES = ("grow_last", "grow_plateau")  # the best fixed schedule and the plateau one


def step_flops(spec: Path, batch: int, ctx: int) -> int:
    import morphdsl
    from morphdsl.ir.cost import train_flops

    return train_flops(morphdsl.build(spec), batch, ctx)


def spec_sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def code_sha() -> str:
    """A hash of the morphdsl package source and the torch version: a run is reused only when
    the code that trained it is the code that would train it again."""
    import torch

    h = hashlib.sha256(torch.__version__.encode())
    for f in sorted((ROOT / "morphdsl").rglob("*.py")) + sorted((ROOT / "morphdsl").rglob("*.lark")):
        h.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def run_one(job: dict) -> dict:
    """Train one (spec, data set, seed) in its own process; returns its evaluation curve."""
    import torch

    from morphdsl.train.api import train_spec
    from morphdsl.train.loop import read_jsonl

    torch.set_num_threads(job["threads"])
    ov = dict(source=job["data"], tokenizer="chars", seed=job["seed"], flops=job["flops"],
              steps=10**9, threads=job["threads"], sample_tokens=0,
              eval_every=job["eval_every"], eval_batches=16, checkpoint_every=10**9)
    t0 = time.time()
    summary = train_spec(str(job["spec"]), job["run_dir"], ov)
    rows = read_jsonl(Path(job["run_dir"]) / "metrics.jsonl")
    curve = [(0, 0.0, None)] + [(r["flops"], r["train_s"], r["val_loss"]) for r in rows
                                 if "val_loss" in r]
    log = read_jsonl(Path(job["run_dir"]) / "events.jsonl")
    events = [e for e in log if e.get("type") == "growth"]
    return {**{k: job[k] for k in ("name", "data", "seed", "spec_sha")}, "curve": curve[1:],
            "events": [{"op": e["op"], "step": e["step"], "flops": e.get("flops"),
                        "params_after": e["params_after"]} for e in events],
            "failed": [{"op": e["op"], "step": e["step"], "error": e.get("error")}
                       for e in log if e.get("type") == "growth_failed"],
            "final": summary["val_loss"], "flops": summary["flops"], "steps": summary["step"],
            "params": summary["params"],
            "wall_s": time.time() - t0}


def reach(curve, target: float):
    """(FLOPs, seconds) at which the validation loss first reaches `target` (linear between
    evaluations), or None."""
    prev = None
    for f, s, v in curve:
        if v <= target:
            if prev is None:
                return f, s
            f0, s0, v0 = prev
            a = (v0 - target) / (v0 - v) if v0 != v else 1.0
            return f0 + a * (f - f0), s0 + a * (s - s0)
        prev = (f, s, v)
    return None


def loss_at(curve, flops: float) -> float:
    """Validation loss of a curve at `flops` (linear between evaluations)."""
    prev = None
    for f, _, v in curve:
        if f >= flops:
            if prev is None:
                return v
            a = (flops - prev[0]) / (f - prev[0])
            return prev[1] + a * (v - prev[1])
        prev = (f, v)
    return curve[-1][2]


def ms(xs, fmt="{:.3f}"):
    """mean ± std of the values; None: not reached; nan or inf (e.g. a ratio with one budget
    to interpolate between) are left out and counted."""
    xs = [x for x in xs if x is not None]
    if not xs:
        return "not reached"
    bad = sum(not math.isfinite(x) for x in xs)
    xs = [x for x in xs if math.isfinite(x)]
    if not xs:
        return "n/a"
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{fmt.format(statistics.mean(xs))} ± {fmt.format(sd)}" + (f" ({bad} n/a)" if bad else "")


def counted(xs) -> str:
    """mean +- std of the seeds that reached, and how many did when some did not."""
    miss = sum(x is None for x in xs)
    return ms(xs) + (f" ({len(xs) - miss}/{len(xs)} seeds reached)" if miss else "")


def analyse(results: list[dict], names: list[str]) -> dict:
    """Per data set and schedule: the numbers of the report (per seed, then mean +- std)."""
    out = {}
    for data in sorted({r["data"] for r in results}):
        static = {r["seed"]: r for r in results if r["data"] == data and r["name"] == "static"}
        mean_target = statistics.mean(r["final"] for r in static.values()) if static else None
        rows = {}
        for name in names:
            per = []
            for r in results:
                if r["data"] != data or r["name"] != name or r["seed"] not in static:
                    continue
                st = static[r["seed"]]
                target = st["final"]
                t_static = st["curve"][-1][1]
                hit = reach(r["curve"], target)
                hit_mean = reach(r["curve"], mean_target)  # the seed-mean static final loss
                per.append({"seed": r["seed"], "final": r["final"], "target": target,
                            "flops_to_target": hit[0] / st["flops"] if hit else None,
                            "time_to_target": hit[1] / t_static if hit else None,
                            "mean_target": mean_target,
                            "flops_to_mean_target": hit_mean[0] / st["flops"] if hit_mean else None,
                            "seconds_to_target": hit[1] if hit else None,
                            "static_seconds": t_static,
                            "flops_used": r["flops"] / st["flops"],
                            "static_at_equal_flops": loss_at(st["curve"], r["flops"]),
                            "reached": hit is not None})
            rows[name] = per
        out[data] = rows
    return out


def report(table: dict, cfg: dict, date: str) -> str:
    lines = [f"Growth benchmark, {date}: {cfg['steps']} static steps of batch {cfg['batch']} x "
             f"ctx {cfg['ctx']}, {cfg['seeds']} seed(s), grown budget {cfg['budget']:.2f} x the "
             f"static FLOPs.", ""]
    for data, rows in table.items():
        lines += [f"**{data}** (L* = the same seed's static final validation loss; "
                  f"mean L* = their mean over seeds)", "",
                  "| run | final val loss | FLOPs to reach L* (x static) | saving | "
                  "train time to reach L* (x static) | FLOPs to reach mean L* | "
                  "static val loss at equal FLOPs |",
                  "|---|---|---|---|---|---|---|"]
        for name, per in rows.items():
            mean_hit = counted([p.get("flops_to_mean_target") for p in per])
            if name == "static":
                lines.append(f"| static | {ms([p['final'] for p in per])} | 1 | — | 1 | "
                             f"{mean_hit} | {ms([p['final'] for p in per])} |")
                continue
            f = [p["flops_to_target"] for p in per]
            sav = [None if x is None else 100 * (1 - x) for x in f]
            sav_s = ms(sav, "{:.0f}") + "%" if any(x is not None for x in sav) else "—"
            lines.append(f"| {name} | {ms([p['final'] for p in per])} | {counted(f)} | "
                         f"{sav_s} | {ms([p['time_to_target'] for p in per], '{:.2f}')} | "
                         f"{mean_hit} | {ms([p['static_at_equal_flops'] for p in per])} |")
        lines.append("")
    return "\n".join(lines)


def highlights(table: dict) -> list[str]:
    """static, the schedule with the lowest final loss relative to static (mean over data sets),
    and the plateau-triggered ones."""
    names = {n for rows in table.values() for n in rows if n != "static"}
    if not names:
        return ["static"]

    def final(rows, n):
        return statistics.mean(p["final"] for p in rows[n])

    def rel(n):
        return statistics.mean(final(rows, n) / final(rows, "static")
                               for rows in table.values() if rows.get(n) and rows.get("static"))
    best = min(sorted(names), key=rel)
    return ["static", best] + sorted(n for n in names if "plateau" in n and n != best)


def plot(results: list[dict], names: list[str], path: Path, focus=None) -> None:
    """Validation loss vs FLOPs per data set (top) and the end of the race, zoomed (bottom).
    Runs of schedules not in `focus` (default: all) are drawn faint."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datas = sorted({r["data"] for r in results})
    fig, axes = plt.subplots(2, len(datas), figsize=(6.5 * len(datas), 8.4), squeeze=False)
    colors = {n: "black" if n == "static" else f"C{i % 10}" for i, n in enumerate(names)}
    for col, data in enumerate(datas):
        st = [r for r in results if r["data"] == data and r["name"] == "static"]
        target = statistics.mean(r["final"] for r in st) if st else None
        fmax = max(r["flops"] for r in st) if st else None
        for row, ax in enumerate(axes[:, col]):
            for name in names:
                runs = [r for r in results if r["data"] == data and r["name"] == name]
                for i, r in enumerate(runs):
                    f = [c[0] for c in r["curve"]]
                    v = [c[2] for c in r["curve"]]
                    strong = focus is None or name in focus
                    ax.plot(f, v, color=colors[name], alpha=0.85 if strong else 0.2,
                            lw=1.2 if strong else 0.8, marker="." if strong else None, ms=2,
                            label=name if i == 0 else None)
                    for e in (r["events"] if strong else []):
                        if e.get("flops") is not None:
                            ax.plot([e["flops"]], [loss_at(r["curve"], e["flops"])], marker="v",
                                    color=colors[name], ms=6, ls="none")
            if target is not None:
                ax.axhline(target, color="gray", ls=":", lw=1,
                           label="static final, mean of seeds (mean L*)")
            ax.set_xlabel("training FLOPs (counted from the graph)")
            ax.set_ylabel("validation loss (nats/char)")
            ax.grid(alpha=0.3)
            if row == 0:
                ax.set_title(f"{data} (char-level): validation loss vs training FLOPs")
                ax.legend(fontsize=8)
            elif target is not None:
                ax.set_title(f"{data}: the last 60% of the static budget, zoomed")
                ax.set_xlim(0.4 * fmax, 1.02 * fmax)
                ax.set_ylim(target - 0.04 * max(target, 1), target + 0.12 * max(target, 1))
    fig.text(0.01, 0.005, "▼ growth events", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def reusable(path: Path, cfg: dict, jobs: list[dict]) -> list[dict]:
    """Runs of an earlier results.json that this invocation would repeat exactly."""
    if not path.exists():
        return []
    old = json.loads(path.read_text())
    keys = ("steps", "batch", "ctx", "budget", "eval_every", "static_flops", "code_sha")
    if any(old["config"].get(k) != cfg.get(k) for k in keys):
        return []
    want = {(j["name"], j["data"], j["seed"]): j["spec_sha"] for j in jobs}
    return [r for r in old["runs"]
            if want.get((r["name"], r["data"], r["seed"])) == r.get("spec_sha")]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 seed, short runs (< 10 min)")
    ap.add_argument("--steps", type=int, help="static training steps (sets the FLOPs budget)")
    ap.add_argument("--seeds", type=int, help="seeds per configuration")
    ap.add_argument("--budget", type=float, default=0.7,
                    help="grown runs' FLOPs budget as a fraction of the static run's (0.7)")
    ap.add_argument("--data", nargs="+", default=list(DATASETS), choices=DATASETS)
    ap.add_argument("--schedules", nargs="+", help="grow_*.morph names (default: all)")
    ap.add_argument("--jobs", type=int, default=2, help="runs in parallel (1 thread each)")
    ap.add_argument("--out", help="where report.md, results.json and growth.png go")
    ap.add_argument("--fresh", action="store_true",
                    help="rerun everything (default: reuse runs in OUT/results.json whose spec "
                         "file, settings and morphdsl source are unchanged)")
    args = ap.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    cfg.update({k: v for k, v in (("steps", args.steps), ("seeds", args.seeds)) if v})
    out = Path(args.out or ROOT / ("runs/bench-growth-quick" if args.quick
                                    else "benchmarks/results/growth"))
    run_root = (out / "runs" if args.out
                else ROOT / "runs" / ("bench-growth-quick" if args.quick else "bench-growth"))
    out.mkdir(parents=True, exist_ok=True)
    scheds = sorted(p.stem for p in SPECS.glob("grow_*.morph"))
    pick = args.schedules or (QUICK_SCHEDULES if args.quick else None)
    if pick:
        unknown = sorted(set(pick) - set(scheds))
        if unknown:
            ap.error(f"no specs/bench/{unknown[0]}.morph (have: {', '.join(scheds)})")
        scheds = [s for s in scheds if s in pick]
    names = ["static"] + scheds

    import morphdsl

    static_spec = SPECS / "static.morph"
    tr = morphdsl.build(static_spec).sections["train"]
    batch, ctx = int(tr["batch"]), int(tr["ctx"])
    F = cfg["steps"] * step_flops(static_spec, batch, ctx)
    cfg.update(batch=batch, ctx=ctx, budget=args.budget, static_flops=F, code_sha=code_sha())
    jobs = []
    for seed in range(cfg["seeds"]):
        for data in args.data:
            for name in names:
                jobs.append(dict(name=name, data=data, seed=seed, spec=SPECS / f"{name}.morph",
                                 spec_sha=spec_sha(SPECS / f"{name}.morph"),
                                 flops=F if name == "static" else args.budget * F,
                                 threads=1, eval_every=cfg["eval_every"],
                                 run_dir=str(run_root / f"{data}-{name}-s{seed}")))
    results = [] if args.fresh else reusable(out / "results.json", cfg, jobs)
    done = {(r["name"], r["data"], r["seed"]) for r in results}
    jobs = [j for j in jobs if (j["name"], j["data"], j["seed"]) not in done]
    print(f"{len(jobs)} runs ({len(results)} reused), {args.jobs} at a time; static budget "
          f"{F:.3g} FLOPs")
    t0 = time.time()
    with ProcessPoolExecutor(max_workers=args.jobs) as ex:
        for r in ex.map(run_one, jobs):
            results.append(r)
            print(f"  {r['data']:12s} {r['name']:16s} seed {r['seed']}: val {r['final']:.4f}, "
                  f"{r['flops']:.3g} FLOPs, {r['steps']} steps, {r['wall_s']:.0f} s "
                  f"[{time.time() - t0:.0f} s]", flush=True)
    date = time.strftime("%Y-%m-%d")
    table = analyse(results, names)
    text = report(table, cfg, date)
    (out / "report.md").write_text(text + "\n")
    (out / "results.json").write_text(json.dumps({"config": cfg, "date": date, "table": table,
                                                  "runs": results}, indent=1, default=str))
    plot(results, names, out / "growth.png", focus=highlights(table))
    print("\n" + text)
    print(f"wrote {out / 'report.md'}, {out / 'results.json'}, {out / 'growth.png'} "
          f"in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
