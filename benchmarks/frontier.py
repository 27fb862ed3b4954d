"""Does growing pay against the best static model? The static compute frontier.

    python -m benchmarks.frontier            # the full run (see FULL; runs are reused when the
                                             # spec text, settings and morphdsl source match)
    python -m benchmarks.frontier --quick    # 1 seed, small budgets, 2 sizes, < 10 min
    python -m benchmarks.frontier --reuse-static   # keep the static runs of results.json
                                             # (trained by other code); retrain the schedules

A static family (SIZES: layers x width [x MLP multiplier], each with the best of --lrs on seed 0,
swept on a short run or, with --lr-per-budget, at every budget) trains at every FLOPs budget (BUDGETS x F, F = the growth benchmark's static budget) with
its cosine fully decayed at that budget. At each budget the lowest final loss of any size is the
*frontier*. The growth schedules (specs/bench/grow_*.morph) train at the same budgets. Reported
per data set, mean +- std over seeds: the best schedule's final loss minus the frontier's; the
frontier FLOPs ratio (the FLOPs the frontier needs, interpolated in log FLOPs between budgets, to
reach the grown run's final loss, over the grown run's FLOPs); the same in training seconds; and,
as in benchmarks.growth, the FLOPs to reach the same-size static model's final loss.
Writes report.md, results.json and frontier.png.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from .growth import DATASETS, ROOT, SPECS, code_sha, ms, reach, run_one, spec_sha, step_flops

# (layers, width) of the static family: the grown path 2L/d64 -> 2L/d128 -> 3L/d128 -> 4L/d128.
# Sized to fit about 2.5 h on 2 cores: F-units (1 F = one 4L/d128 run of 1,500 steps, 7-11 min
# at 1 thread here) = 4 sizes x (0.125 + 0.25 + 0.5) x 6 (3 seeds x 2 data sets) = 21, the two
# schedules 10.5, the LR sweep's second LR 1 (its first LR is the seed-0 run at 0.125 F, reused):
# 32.5 F, about 2.2 h with 2 at a time (2L/d64/m8 adds about 1.5 F). `--budgets 0.25 0.5 1
# --sizes ... 4x192` runs larger; `--lr-per-budget` sweeps every size at every budget (x len(LRS)
# on seed 0: restrict it with --sizes and --data, as BENCHMARKS.md's commands do).
# 2L/d64/m8 (an MLP of 8 x d) is the end size of grow_wide, and on stories the better 2L/d64.
SIZES = ((2, 64), (2, 64, 8), (2, 128), (3, 128), (4, 128))
LRS = (6e-3, 1.2e-2)            # at d = 128 (lr_width = 128): the sweep per size
BUDGETS = (0.125, 0.25, 0.5)    # x F
SCHEDULES = ("grow_last", "grow_plateau")
FULL = dict(seeds=3, sizes=SIZES, budgets=BUDGETS, schedules=SCHEDULES, lr_budget=0.125, eval_every=50)
QUICK = dict(seeds=1, sizes=((2, 64), (2, 128)), budgets=(0.02, 0.04), schedules=("grow_last",),
             lr_budget=0.02, eval_every=25)


def size_name(layers: int, d: int, mlp: int = 4) -> str:
    """static_2L_d64, or static_2L_d64_m8 for an MLP of 8 x d (a size is (layers, d[, mlp]))."""
    return f"static_{layers}L_d{d}" + (f"_m{mlp}" if mlp != 4 else "")


def size_label(size) -> str:
    """2L/d64, 2L/d64/m8."""
    return size_name(*size)[len("static_"):].replace("_", "/")


def parse_size(text: str) -> tuple:
    """'2x64' -> (2, 64); '2x64m8' -> (2, 64, 8) (an MLP of 8 x d; m4 is the default)."""
    m = re.fullmatch(r"(\d+)x(\d+)(?:m(\d+))?", text.strip().lower())
    if not m:
        raise ValueError(text)
    layers, d, mlp = int(m[1]), int(m[2]), int(m[3] or 4)
    return (layers, d) if mlp == 4 else (layers, d, mlp)


def size_spec(layers: int, d: int, lr: float, out: Path, mlp: int = 4) -> Path:
    """specs/bench/static.morph with `layers` blocks of width d (heads of 32 channels) and an
    MLP of mlp x d."""
    text = (SPECS / "static.morph").read_text()
    for key, val in (("d", d), ("heads", max(1, d // 32)), ("layers", layers)):
        text = re.sub(rf"^{key}\s*=\s*\d+", f"{key} = {val}", text, count=1, flags=re.M)
    text = re.sub(r"^(\s*lr\s*=\s*)[0-9.e-]+.*$", rf"\g<1>{lr!r}", text, count=1, flags=re.M)
    if mlp != 4:
        text, n = re.subn(r"hidden = 4 \* d", f"hidden = {mlp} * d", text)
        assert n == 1, "static.morph's MLP is no longer `hidden = 4 * d`"
    p = out / f"{size_name(layers, d, mlp)}_lr{lr:g}.morph"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def _job(name, spec: Path, data, seed, flops, cfg, root: Path, tag: str) -> dict:
    return dict(name=name, data=data, seed=seed, spec=spec, spec_sha=spec_sha(spec), flops=flops,
                code_sha=cfg.get("code_sha"), threads=1, eval_every=cfg["eval_every"], run_dir=str(root / f"{data}-{tag}-s{seed}"))


def _run(jobs, n, reuse: dict, log, save=lambda r: None) -> list[dict]:
    """Train the jobs not in `reuse`, `n` at a time; `save` gets each run as it ends (so an
    interrupted benchmark keeps what finished)."""
    todo = [j for j in jobs if _key(j) not in reuse]
    log(f"{len(todo)} runs ({len(jobs) - len(todo)} reused), {n} at a time")
    out = [reuse[_key(j)] for j in jobs if _key(j) in reuse]
    t0 = time.time()
    with ProcessPoolExecutor(max_workers=n) as ex:
        for j, r in zip(todo, ex.map(run_one, todo)):
            r.update(budget=j["budget"], lr=j.get("lr"), size=j.get("size"), spec_sha=j["spec_sha"],
                     code_sha=j.get("code_sha"))
            out.append(r)
            save(r)
            log(f"  {r['data']:12s} {r['name']:18s} x{j['budget']:<5g} seed {r['seed']}: val "
                f"{r['final']:.4f} ({r['wall_s']:.0f} s) [{time.time() - t0:.0f} s]")
    return out


def _key(j) -> tuple:
    return (j["name"], j["data"], j["seed"], j["budget"], j["spec_sha"])


def frontier_at(points: dict, flops: float) -> float:
    """The frontier's loss at `flops`, linear in log FLOPs between its budgets."""
    xs = sorted(points)
    if flops <= xs[0]:
        return points[xs[0]]
    for a, b in zip(xs, xs[1:]):
        if flops <= b:
            t = (math.log(flops) - math.log(a)) / (math.log(b) - math.log(a))
            return points[a] + t * (points[b] - points[a])
    return points[xs[-1]]


def frontier_needs(points: dict, loss: float) -> tuple[float, bool]:
    """(FLOPs at which the frontier reaches `loss`, outside the budgets?) linear in log FLOPs;
    below the frontier's best it extends the last segment, above its worst it answers the
    smallest budget (an upper bound); both are flagged."""
    xs = sorted(points)
    for a, b in zip(xs, xs[1:]):
        la, lb = points[a], points[b]
        if lb <= loss <= la and la != lb:
            return math.exp(math.log(a) + (la - loss) / (la - lb) * (math.log(b) - math.log(a))), False
    if loss >= points[xs[0]]:  # worse than the smallest budget's: at most that (flagged)
        return xs[0], True
    if len(xs) < 2:  # one budget: nothing to extrapolate along
        return math.nan, True
    a, b = xs[-2], xs[-1]
    slope = (points[b] - points[a]) / (math.log(b) - math.log(a))  # nats per e-fold of FLOPs
    if slope >= 0:
        return math.inf, True
    return math.exp(math.log(b) + (loss - points[b]) / slope), True


def analyse(results: list[dict], cfg: dict) -> dict:
    out = {}
    for data in sorted({r["data"] for r in results}):
        rows = [r for r in results if r["data"] == data]
        seeds = sorted({r["seed"] for r in rows})
        per_seed = {}
        for s in seeds:
            static = [r for r in rows if r["seed"] == s and r["name"].startswith("static")]
            front = {}
            for r in static:
                b = r["flops"]
                key = min(front, key=lambda x: abs(math.log(x / b))) if front else None
                if key is not None and abs(math.log(key / b)) < 0.05:  # the same budget
                    if r["final"] < front[key][0]:
                        front[key] = (r["final"], r["name"], r["curve"][-1][1])
                else:
                    front[b] = (r["final"], r["name"], r["curve"][-1][1])
            per_seed[s] = front
        table = {"frontier": {}, "schedules": {}}
        for budget in cfg["budgets"]:  # a budget no static size of this data set ran at is left out
            fr = [min(got) for s in seeds if (got := [v for k, v in per_seed[s].items()
                                                      if abs(math.log(k / (budget * cfg["F"]))) < 0.05])]
            if fr:
                table["frontier"][budget] = {"loss": [f[0] for f in fr], "best": [f[1] for f in fr]}
        for name in cfg["schedules"]:
            for budget in cfg["budgets"]:
                cells = []
                for r in rows:
                    if r["name"] != name or r["budget"] != budget:
                        continue
                    front = per_seed[r["seed"]]
                    loss_pts = {k: v[0] for k, v in front.items()}
                    sec_pts = {k: v[2] for k, v in front.items()}
                    need, extra = frontier_needs(loss_pts, r["final"])
                    same = next((x for x in rows if x["seed"] == r["seed"] and x["budget"] == budget
                                 and x["name"] == cfg["target"]), None)
                    hit = reach(r["curve"], same["final"]) if same else None
                    cells.append({"seed": r["seed"], "final": r["final"],
                                  "gap": r["final"] - frontier_at(loss_pts, r["flops"]),
                                  "flops_ratio": need / r["flops"], "extrapolated": extra,
                                  "seconds_ratio": (frontier_at(sec_pts, need) if math.isfinite(need)
                                                    else math.inf) / r["curve"][-1][1],
                                  "flops_to_same_size": hit[0] / same["flops"] if hit else None})
                table["schedules"].setdefault(name, {})[budget] = cells
        table["best"] = best_schedule(table, cfg)
        table["failed"] = [f"{r['name']} x{r['budget']:g} seed {r['seed']}: {f['op']} at step {f['step']}"
                           for r in rows if r["name"] in cfg["schedules"] for f in r.get("failed") or ()]
        table["code"] = {kind: sorted({str(r.get("code_sha")) for r in rows
                                       if bool(r.get("size")) == (kind == "static")})
                         for kind in ("static", "schedules")}
        out[data] = table
    return out


def best_schedule(table: dict, cfg: dict) -> dict:
    """Per budget, the schedule with the lowest mean final loss; whether it beats the frontier
    on every seed; and the goal (every budget, every seed; FLOPs ratio >= 1.25 at the largest)."""
    per = {}
    for b in cfg["budgets"]:
        cands = {n: c[b] for n, c in table["schedules"].items() if c.get(b)}
        if not cands:
            continue
        name = min(cands, key=lambda n: sum(c["final"] for c in cands[n]) / len(cands[n]))
        cells = cands[name]
        per[b] = {"schedule": name, "beats": sum(c["gap"] < 0 for c in cells), "seeds": len(cells),
                  "gap": [c["gap"] for c in cells], "flops_ratio": [c["flops_ratio"] for c in cells]}
    last = per.get(max(cfg["budgets"])) if per else None
    ratio = sorted(last["flops_ratio"])[len(last["flops_ratio"]) // 2] if last else None
    ok = bool(per) and all(v["beats"] == v["seeds"] for v in per.values()) and ratio is not None \
        and min(last["flops_ratio"]) >= 1.25
    return {"per_budget": per, "goal_met": ok, "largest_budget_ratio_median": ratio}


def report(table: dict, cfg: dict, date: str) -> str:
    lines = [f"Frontier benchmark, {date}: budgets {', '.join(f'{b:g}' for b in cfg['budgets'])} x F "
             f"(F = {cfg['F']:.3g} FLOPs), static sizes "
             f"{', '.join(size_label(s) for s in cfg['sizes'])}, {cfg['seeds']} seed(s).", ""]
    for data, t in table.items():
        lines += [f"**{data}**", "", "| run | budget | final loss | minus frontier | frontier FLOPs "
                  "ratio | frontier seconds ratio | FLOPs to same-size static loss |",
                  "|---|---|---|---|---|---|---|"]
        for b, f in t["frontier"].items():
            best = sorted(set(f["best"]))
            lines.append(f"| frontier ({', '.join(best)}) | {b:g} | {ms(f['loss'])} | 0 | 1 | 1 | — |")
        for name, per in t["schedules"].items():
            for b, cells in per.items():
                if not cells:  # no run of this schedule at this budget
                    continue
                ext = " (outside the budgets)" if any(c["extrapolated"] for c in cells) else ""
                lines.append(f"| {name} | {b:g} | {ms([c['final'] for c in cells])} | "
                             f"{ms([c['gap'] for c in cells], '{:.4f}')} | "
                             f"{ms([c['flops_ratio'] for c in cells], '{:.2f}')}{ext} | "
                             f"{ms([c['seconds_ratio'] for c in cells], '{:.2f}')} | "
                             f"{ms([c['flops_to_same_size'] for c in cells], '{:.2f}')} |")
        best = t.get("best") or {}
        for b, v in (best.get("per_budget") or {}).items():
            lines.append(f"- x{b:g} F: best schedule {v['schedule']}, minus frontier "
                         f"{ms(v['gap'], '{:+.4f}')}, below the frontier on {v['beats']}/{v['seeds']} "
                         f"seeds, frontier FLOPs ratio {ms(v['flops_ratio'], '{:.2f}')}")
        if t.get("code"):
            lines.append(f"- trained by code {', '.join(t['code']['static'])} (static runs) and "
                         f"{', '.join(t['code']['schedules'])} (schedules)")
        for f in t.get("failed") or ():
            lines.append(f"- growth FAILED (the run went on without it): {f}")
        if best:
            lines.append(f"- goal (below the frontier at every budget on every seed, FLOPs ratio "
                         f">= 1.25 at the largest): {'met' if best['goal_met'] else 'not met'}")
        lines.append("")
    return "\n".join(lines)


def plot(results: list[dict], cfg: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datas = sorted({r["data"] for r in results})
    fig, axes = plt.subplots(1, len(datas), figsize=(7 * len(datas), 5), squeeze=False)
    for ax, data in zip(axes[0], datas):
        rows = [r for r in results if r["data"] == data]
        means = {}  # (size, budget) -> the seed mean of its final loss
        for i, size in enumerate(cfg["sizes"]):
            for b in cfg["budgets"]:
                got = [r["final"] for r in rows if r["name"] == size_name(*size)
                       and abs(math.log(r["flops"] / (b * cfg["F"]))) < 0.05]
                if got:
                    means[size, b] = sum(got) / len(got)
            pts = sorted((b * cfg["F"], v) for (sz, b), v in means.items() if sz == size)
            if pts:
                ax.plot(*zip(*pts), "o--", color=f"C{i}", alpha=0.7, label=f"static {size_label(size)}")
        fr = sorted((b * cfg["F"], min(v for (_, b2), v in means.items() if b2 == b))
                    for b in cfg["budgets"] if any(b2 == b for _, b2 in means))
        ax.plot(*zip(*fr), "-", color="black", lw=2.5, label="static frontier (seed mean: min)")
        for j, name in enumerate(cfg["schedules"]):
            for r in (r for r in rows if r["name"] == name and r["seed"] == 0):
                ax.plot([c[0] for c in r["curve"]], [c[2] for c in r["curve"]], color=f"C{5 + j}",
                        lw=1, alpha=0.8, label=name if r["budget"] == cfg["budgets"][-1] else None)
                for e in r["events"]:
                    if e.get("flops"):
                        v = min(r["curve"], key=lambda c: abs(c[0] - e["flops"]))[2]
                        ax.plot([e["flops"]], [v], "v", color=f"C{5 + j}", ms=5)
        ax.set_xscale("log")
        ax.set_xlabel("training FLOPs (log)")
        ax.set_ylabel("validation loss (nats/char)")
        ax.set_title(f"{data}: static compute frontier vs growth (▼ growth events)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _analyse_only(old: dict, cfg: dict, args, out: Path) -> int:
    """Report on the finished runs of results.json (those of the configured budgets, schedules,
    sizes and data sets), whatever code trained them: its code_sha is kept."""
    if not old.get("runs"):
        raise SystemExit(f"no runs in {out / 'results.json'}")
    sizes = {size_name(*s) for s in cfg["sizes"]}
    best = pick_lrs([r for r in old["runs"] if r.get("size") and r["seed"] == 0
                     and (cfg["lr_per_budget"] or r["budget"] == cfg["lr_budget"])
                     and r.get("lr") in cfg["lrs"]], cfg["lr_per_budget"])
    keep = [r for r in old["runs"] if r["data"] in args.data and r["seed"] < cfg["seeds"]
            and r["budget"] in cfg["budgets"] and (r["name"] in cfg["schedules"] or r["name"] in sizes)
            and (not r.get("size") or r["lr"] == best.get(_lr_key(r, cfg["lr_per_budget"]), (None,))[0])]
    cfg = {**cfg, "code_sha": old.get("config", {}).get("code_sha")}
    date = old.get("date") or time.strftime("%Y-%m-%d")
    table = analyse(keep, cfg)
    (out / "report.md").write_text(report(table, cfg, date) + "\n")
    # results.json: this analysis's configuration and table; every run kept
    (out / "results.json").write_text(json.dumps({"config": {**cfg, "best_lr": _best_lr_json(best)},
                                                  "date": date, "table": table, "runs": old["runs"]},
                                                 indent=1, default=str))
    plot(keep, cfg, out / "frontier.png")
    print(report(table, cfg, date))
    return 0


def _best_lr_json(best: dict) -> dict:
    return {"/".join([size_name(*k[0])[len("static_"):], k[1]] + [f"x{b:g}" for b in k[2:]]): v
            for k, v in best.items()}


def _lr_key(r, per_budget: bool) -> tuple:
    return (tuple(r["size"]), r["data"]) + ((r["budget"],) if per_budget else ())


def pick_lrs(swept: list[dict], per_budget: bool) -> dict:
    """The LR sweep's winners: (size, data[, budget]) -> (lr, final loss) of the seed-0 runs."""
    best = {}
    for r in swept:
        k = _lr_key(r, per_budget)
        if k not in best or r["final"] < best[k][1]:
            best[k] = (r["lr"], r["final"])
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 seed, small budgets (< 10 min)")
    ap.add_argument("--data", nargs="+", default=list(DATASETS), choices=DATASETS)
    ap.add_argument("--seeds", type=int)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", help="where report.md, results.json and frontier.png go")
    ap.add_argument("--fresh", action="store_true", help="rerun everything")
    ap.add_argument("--budgets", type=float, nargs="+", help="FLOPs budgets as multiples of F")
    ap.add_argument("--sizes", nargs="+", metavar="LxD", help="static sizes, e.g. 2x64 4x128")
    ap.add_argument("--schedules", nargs="+", help="grow_*.morph names")
    ap.add_argument("--lr-budget", type=float, help="the LR sweep's budget (x F)")
    ap.add_argument("--lrs", type=float, nargs="+",
                    help=f"the LR sweep's values at lr_width 128 (default {' '.join(map(str, LRS))})")
    ap.add_argument("--lr-per-budget", action="store_true",
                    help="sweep the LRs at every budget (seed 0) and train each budget with its "
                         "own best, instead of one sweep at --lr-budget")
    ap.add_argument("--reuse-static", action="store_true",
                    help="reuse results.json's static runs whatever code trained them (each run "
                         "records its code_sha; the report names them); retrain the rest")
    ap.add_argument("--analyse", action="store_true",
                    help="only re-analyse the runs in --out's results.json (no training): rewrites "
                         "report.md, the plot and results.json's table")
    args = ap.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    if args.seeds:
        cfg["seeds"] = args.seeds
    if args.budgets:
        cfg["budgets"] = tuple(sorted(args.budgets))
    if args.sizes:
        try:
            cfg["sizes"] = tuple(parse_size(s) for s in args.sizes)
        except ValueError:
            ap.error("--sizes takes LAYERSxWIDTH[mMLP], e.g. 2x64 or 2x64m8 (an 8 x d MLP)")
    if args.schedules:
        unknown = [n for n in args.schedules if not (SPECS / f"{n}.morph").exists()]
        if unknown:
            ap.error(f"no specs/bench/{unknown[0]}.morph")
        cfg["schedules"] = tuple(args.schedules)
    if args.lr_budget:
        cfg["lr_budget"] = args.lr_budget
    cfg["lrs"] = tuple(args.lrs or LRS)
    cfg["lr_per_budget"] = bool(args.lr_per_budget)
    out = Path(args.out or ROOT / ("runs/bench-frontier-quick" if args.quick else "benchmarks/results/frontier"))
    root = out / "runs"
    out.mkdir(parents=True, exist_ok=True)
    tr = __import__("morphdsl").build(SPECS / "static.morph").sections["train"]
    F = 1500 * step_flops(SPECS / "static.morph", int(tr["batch"]), int(tr["ctx"]))
    largest = max(cfg["sizes"])
    cfg.update(F=F, code_sha=code_sha(), target=size_name(4, 128) if (4, 128) in cfg["sizes"] else size_name(*largest))
    old = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() and not args.fresh else {}
    for r in old.get("runs", []):  # runs of older results carry the file's code_sha
        r.setdefault("code_sha", old.get("config", {}).get("code_sha"))
    if args.analyse:
        return _analyse_only(old, cfg, args, out)
    reuse = {_key(r): r for r in old.get("runs", [])
             if r["code_sha"] == cfg["code_sha"] or (args.reuse_static and r.get("size"))}
    log = lambda s: print(s, flush=True)  # noqa: E731
    done = {_key(r): r for r in old.get("runs", [])}  # an interrupted run loses nothing

    def save(r):  # results.json holds every finished run at once, complete or not
        done[_key(r)] = r
        tmp = out / "results.json.tmp"
        tmp.write_text(json.dumps({"config": {"code_sha": cfg["code_sha"]}, "partial": True,
                                   "runs": list(done.values())}, default=str))
        tmp.replace(out / "results.json")
    # 1. the LR of each size: the best of --lrs (scaled 1 / width) on seed 0, on a short run
    #    (--lr-budget) or, with --lr-per-budget, at every budget
    sweep = []
    for size in cfg["sizes"]:
        name = size_name(*size)
        for lr in cfg["lrs"]:
            for data in args.data:
                for b in cfg["budgets"] if cfg["lr_per_budget"] else (cfg["lr_budget"],):
                    # the run directory's name (runs are reused by _key, not by directory)
                    tag = f"lr-{name}-{lr:g}" if not cfg["lr_per_budget"] else f"{name}-x{b:g}-lr{lr:g}"
                    j = _job(name, size_spec(*size[:2], lr, root / "specs", *size[2:]), data, 0,
                             b * F, cfg, root, tag)
                    sweep.append({**j, "budget": b, "lr": lr, "size": size})
    swept = _run(sweep, args.jobs, reuse, log, save)
    reuse.update({_key(r): r for r in swept})
    best_lr = pick_lrs(swept, cfg["lr_per_budget"])
    # 2. every size at every budget with its LR; 3. the schedules at every budget
    jobs = []
    for seed in range(cfg["seeds"]):
        for data in args.data:
            for b in cfg["budgets"]:
                for size in cfg["sizes"]:
                    lr = best_lr[(size, data) + ((b,) if cfg["lr_per_budget"] else ())][0]
                    spec = size_spec(*size[:2], lr, root / "specs", *size[2:])
                    jobs.append({**_job(size_name(*size), spec, data, seed, b * F, cfg, root,
                                        f"{size_name(*size)}-x{b:g}"), "budget": b, "lr": lr,
                                 "size": size})
                for name in cfg["schedules"]:
                    jobs.append({**_job(name, SPECS / f"{name}.morph", data, seed, b * F, cfg, root,
                                        f"{name}-x{b:g}"), "budget": b})
    results = _run(jobs, args.jobs, reuse, log, save)
    date = time.strftime("%Y-%m-%d")
    table = analyse(results, cfg)
    (out / "report.md").write_text(report(table, cfg, date) + "\n")
    cfg_out = {**cfg, "best_lr": _best_lr_json(best_lr)}
    # every run: this configuration's and, as in the partial saves, those outside it
    (out / "results.json").write_text(json.dumps({"config": cfg_out, "date": date, "table": table,
                                                  "runs": list(done.values())},
                                                 indent=1, default=str))
    plot(results, cfg, out / "frontier.png")
    print(report(table, cfg, date))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
