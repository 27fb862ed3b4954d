"""The frontier benchmark's arithmetic (the frontier in log FLOPs, what it needs for a loss) and
a tiny end-to-end run."""
from __future__ import annotations

import json
import math

import pytest

import morphdsl
from benchmarks.frontier import (analyse, report, frontier_at, frontier_needs, main, parse_size, pick_lrs, size_label,
                                size_name, size_spec)
from tests.test_train import _env, cache  # noqa: F401

POINTS = {1e10: 2.0, 1e11: 1.5, 1e12: 1.2}  # budget FLOPs -> the frontier's final loss


def test_frontier_is_linear_in_log_flops():
    assert frontier_at(POINTS, 1e10) == 2.0 and frontier_at(POINTS, 1e12) == 1.2
    assert frontier_at(POINTS, math.sqrt(1e10 * 1e11)) == pytest.approx(1.75)
    assert frontier_at(POINTS, 1e13) == 1.2  # no extrapolation of the loss itself


def test_frontier_needs_interpolates_and_flags_extrapolation():
    f, extra = frontier_needs(POINTS, 1.75)
    assert f == pytest.approx(math.sqrt(1e10 * 1e11)) and not extra
    f, extra = frontier_needs(POINTS, 1.2)
    assert f == pytest.approx(1e12) and not extra
    f, extra = frontier_needs(POINTS, 1.05)  # below the frontier's best: the last segment extended
    assert extra and f == pytest.approx(1e12 * 10 ** 0.5)
    assert frontier_needs(POINTS, 3.0) == (1e10, True)  # worse than the smallest budget: a bound
    flat = {1e10: 1.0, 1e11: 1.0}
    assert frontier_needs(flat, 0.5) == (math.inf, True)
    f, extra = frontier_needs({1e10: 1.0}, 0.5)  # one budget: no slope to extend
    assert math.isnan(f) and extra


def test_lr_sweep_picks_per_size_and_data_or_per_budget():
    runs = [dict(size=[2, 64], data="stories", budget=b, lr=lr, final=loss)
            for b, lr, loss in ((0.1, 3e-3, 0.50), (0.1, 6e-3, 0.40), (0.2, 3e-3, 0.20),
                                (0.2, 6e-3, 0.30))]
    assert pick_lrs(runs, per_budget=False) == {((2, 64), "stories"): (3e-3, 0.20)}
    assert pick_lrs(runs, per_budget=True) == {((2, 64), "stories", 0.1): (6e-3, 0.40),
                                               ((2, 64), "stories", 0.2): (3e-3, 0.20)}


def test_lr_per_budget_trains_each_budget_with_its_own_best(tmp_path):
    args = ["--seeds", "2", "--data", "stories", "--jobs", "1", "--budgets", "0.0015", "0.003",
            "--sizes", "1x32", "--schedules", "grow_last", "--lrs", "1e-3", "2.4e-2",
            "--lr-per-budget", "--out", str(tmp_path)]
    assert main(args) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    static = [r for r in res["runs"] if r["name"] == "static_1L_d32"]
    for b in (0.0015, 0.003):  # seed 0 tried both LRs at this budget; seed 1 trained the better
        s0 = {r["lr"]: r["final"] for r in static if r["seed"] == 0 and r["budget"] == b}
        assert set(s0) == {1e-3, 2.4e-2}
        (s1,) = [r for r in static if r["seed"] == 1 and r["budget"] == b]
        assert s1["lr"] == min(s0, key=s0.get)
        assert res["config"]["best_lr"][f"1L_d32/stories/x{b:g}"] == [s1["lr"], min(s0.values())]
    text = (tmp_path / "report.md").read_text()
    assert main(args + ["--analyse"]) == 0  # the analysis picks the same LRs
    assert (tmp_path / "report.md").read_text() == text
    again = json.loads((tmp_path / "results.json").read_text())
    assert again["config"]["best_lr"] == res["config"]["best_lr"] and again["runs"] == res["runs"]
    assert again["table"] == res["table"]


def test_benchmark_runs_end_to_end(tmp_path):
    args = ["--seeds", "1", "--data", "stories", "--jobs", "1", "--budgets", "0.0015", "0.003",
            "--sizes", "1x32", "1x64", "--schedules", "grow_last", "--lr-budget", "0.0015",
            "--out", str(tmp_path)]
    assert main(args) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    names = {r["name"] for r in res["runs"]}
    assert names == {"static_1L_d32", "static_1L_d64", "grow_last"}
    F = res["config"]["F"]
    for r in res["runs"]:  # every run spends (at least) its budget
        assert r["flops"] >= r["budget"] * F * 0.999
    lrs = {r["lr"] for r in res["runs"] if r["name"].startswith("static")}
    assert len(lrs) == 2  # the sweep tried both LRs
    table = res["table"]["stories"]
    assert set(table["frontier"]) == {"0.0015", "0.003"}
    (cell,) = table["schedules"]["grow_last"]["0.003"]
    assert cell["gap"] == pytest.approx(cell["final"] - min(table["frontier"]["0.003"]["loss"]))
    assert (tmp_path / "frontier.png").stat().st_size > 10_000
    text = (tmp_path / "report.md").read_text()
    assert "frontier FLOPs ratio" in text and "best schedule grow_last" in text and "goal (" in text
    best = table["best"]["per_budget"]["0.003"]
    assert best["schedule"] == "grow_last" and best["beats"] == (cell["gap"] < 0)
    # --analyse reports the same runs again without training (nothing is rerun)
    before = {r["run_dir"] if "run_dir" in r else r["name"] for r in res["runs"]}
    (tmp_path / "report.md").unlink()
    assert main(args + ["--analyse"]) == 0
    assert (tmp_path / "report.md").read_text() == text
    assert {r.get("run_dir", r["name"]) for r in json.loads((tmp_path / "results.json").read_text())["runs"]} == before
    assert f"trained by code {res['config']['code_sha']} (static runs)" in text
    # --reuse-static: static runs trained by other code are kept (and named in the report),
    # the schedules are retrained by this code
    old = json.loads((tmp_path / "results.json").read_text())
    for r in old["runs"]:
        r["code_sha"] = "0ldc0de"
    (tmp_path / "results.json").write_text(json.dumps(old))
    assert main(args + ["--reuse-static"]) == 0
    new = json.loads((tmp_path / "results.json").read_text())
    by_kind = {(r["name"], r["code_sha"]) for r in new["runs"]}
    assert by_kind == {("static_1L_d32", "0ldc0de"), ("static_1L_d64", "0ldc0de"),
                       ("grow_last", new["config"]["code_sha"])}
    text = (tmp_path / "report.md").read_text()
    assert f"trained by code 0ldc0de (static runs) and {new['config']['code_sha']} (schedules)" in text
    # a growth that failed in a run is listed in the report (here: marked by hand, --analyse)
    for r in new["runs"]:
        if r["name"] == "grow_last":
            r["failed"] = [{"op": "widen_embed", "step": 7, "error": "identity FAILED"}]
    (tmp_path / "results.json").write_text(json.dumps(new))
    assert main(args + ["--analyse"]) == 0
    text = (tmp_path / "report.md").read_text()
    assert "- growth FAILED (the run went on without it): grow_last x0.0015 seed 0: widen_embed at step 7" in text


def test_sizes_name_an_mlp_multiplier(tmp_path):
    assert parse_size("2x64") == (2, 64) and parse_size("2x64m4") == (2, 64)
    assert parse_size("2x64M8") == (2, 64, 8) and size_name(2, 64, 8) == "static_2L_d64_m8"
    assert size_label((2, 64, 8)) == "2L/d64/m8" and size_label((4, 128)) == "4L/d128"
    with pytest.raises(ValueError):
        parse_size("2x64x8")
    base = morphdsl.build(size_spec(2, 64, 6e-3, tmp_path)).n_params()
    wide = morphdsl.build(size_spec(2, 64, 6e-3, tmp_path, mlp=8)).n_params()
    assert wide - base == 2 * (2 * 64 * 256 + 256)  # 2 blocks: 256 more hidden units, in and out


def test_a_budget_one_data_set_lacks_is_left_out_of_its_frontier():
    F = 1e12
    run = lambda name, data, b, loss: dict(name=name, data=data, seed=0, flops=b * F, budget=b,  # noqa: E731
                                          final=loss, size=[2, 64] if name.startswith("static") else None,
                                          curve=[[b * F, 1.0, loss]], events=[])
    rows = [run("static_2L_d64", "a", 0.5, 0.3), run("static_2L_d64", "a", 1, 0.2),
            run("static_2L_d64", "b", 0.5, 0.4), run("grow_x", "a", 1, 0.19), run("grow_x", "b", 0.5, 0.39)]
    cfg = dict(budgets=(0.5, 1), schedules=("grow_x",), F=F, target="static_4L_d128")
    t = analyse(rows, cfg)
    assert set(t["a"]["frontier"]) == {0.5, 1} and set(t["b"]["frontier"]) == {0.5}
    assert t["b"]["schedules"]["grow_x"][0.5][0]["gap"] == pytest.approx(-0.01)
    assert t["a"]["schedules"]["grow_x"][1][0]["gap"] == pytest.approx(-0.01)
    text = report(t, {**cfg, "sizes": ((2, 64),), "seeds": 1}, "today")
    assert "| grow_x | 1 | 0.190" in text and "| grow_x | 0.5 | 0.390" in text
    assert "| grow_x | 0.5 | not reached" not in text and text.count("| grow_x |") == 2


def test_mean_std_leaves_out_nan_and_counts_it():
    """A one-budget frontier gives nan ratios; the report says so instead of crashing."""
    from benchmarks.growth import ms

    assert ms([math.nan, math.nan]) == "n/a"
    assert ms([1.0, 3.0, math.nan], "{:.1f}") == "2.0 ± 1.4 (1 n/a)"
    assert ms([None]) == "not reached"
