"""The growth benchmark's arithmetic (crossing points, interpolation) and a tiny end-to-end run."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.growth import analyse, highlights, loss_at, main, reach
from tests.test_train import _env, cache  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]

CURVE = [(10.0, 1.0, 3.0), (20.0, 2.0, 2.0), (30.0, 3.0, 1.5)]  # (flops, seconds, val loss)


def test_reach_interpolates_between_evaluations():
    assert reach(CURVE, 2.5) == pytest.approx((15.0, 1.5))
    assert reach(CURVE, 3.5) == (10.0, 1.0)  # already below at the first evaluation
    assert reach(CURVE, 1.0) is None


def test_loss_at_interpolates_in_flops():
    assert loss_at(CURVE, 25.0) == pytest.approx(1.75)
    assert loss_at(CURVE, 99.0) == 1.5


def test_analyse_compares_each_seed_with_its_static_run():
    runs = [{"name": "static", "data": "d", "seed": 0, "curve": CURVE, "final": 1.5,
             "flops": 30.0},
            {"name": "g", "data": "d", "seed": 0, "final": 1.4, "flops": 21.0,
             "curve": [(5.0, 0.5, 2.0), (14.0, 1.0, 1.6), (21.0, 1.5, 1.4)]}]
    (row,) = analyse(runs, ["static", "g"])["d"]["g"]
    assert row["flops_to_target"] == pytest.approx((14 + 0.5 * 7) / 30)
    assert row["static_at_equal_flops"] == pytest.approx(loss_at(CURVE, 21.0))


def test_analyse_mean_target_is_the_seed_mean_static_loss():
    lucky = [(10.0, 1.0, 3.0), (20.0, 2.0, 2.0), (30.0, 3.0, 1.3)]  # seed 1 ends at 1.3
    runs = [{"name": "static", "data": "d", "seed": 0, "curve": CURVE, "final": 1.5, "flops": 30.0},
            {"name": "static", "data": "d", "seed": 1, "curve": lucky, "final": 1.3, "flops": 30.0},
            {"name": "g", "data": "d", "seed": 1, "final": 1.35, "flops": 21.0,
             "curve": [(5.0, 0.5, 2.0), (14.0, 1.0, 1.6), (21.0, 1.5, 1.35)]}]
    table = analyse(runs, ["static", "g"])["d"]
    (row,) = table["g"]
    assert row["mean_target"] == pytest.approx(1.4)
    assert not row["reached"] and row["flops_to_target"] is None  # misses its own seed's 1.3 ...
    assert row["flops_to_mean_target"] == pytest.approx((14 + 7 * 0.2 / 0.25) / 30)  # ... not 1.4
    assert table["static"][0]["flops_to_mean_target"] is None  # seed 0 static never gets to 1.4


def test_plot_highlights_the_best_schedule_and_plateau_ones():
    def rows(**finals):
        return {n: [{"final": f}] for n, f in finals.items()}
    table = {"a": rows(static=2.0, grow_x=1.8, grow_y=1.9, grow_plateau=2.1),
             "b": rows(static=1.0, grow_x=1.0, grow_y=0.8, grow_plateau=1.1)}
    # relative to static: x 0.95, y 0.875 -> y is best on average over the data sets
    assert highlights(table) == ["static", "grow_y", "grow_plateau"]


def test_benchmark_runs_end_to_end(tmp_path):
    args = ["--steps", "6", "--seeds", "1", "--data", "stories", "--jobs", "1",
            "--schedules", "grow_plateau", "grow_late", "--out", str(tmp_path)]
    assert main(args) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    names = {r["name"] for r in res["runs"]}
    assert names == {"static", "grow_plateau", "grow_late"}
    static = next(r for r in res["runs"] if r["name"] == "static")
    for r in res["runs"]:
        assert r["flops"] >= (1.0 if r["name"] == "static" else 0.7) * static["flops"] * 0.999
    assert (tmp_path / "growth.png").stat().st_size > 10_000
    assert "FLOPs to reach L*" in (tmp_path / "report.md").read_text()
    # a second invocation reuses every unchanged run instead of training again
    assert main(args) == 0
    again = json.loads((tmp_path / "results.json").read_text())
    assert [r["wall_s"] for r in again["runs"]] == [r["wall_s"] for r in res["runs"]]
    # ... but not runs trained by other code (the results would not be reproducible)
    from benchmarks.growth import reusable

    jobs = [{k: r[k] for k in ("name", "data", "seed", "spec_sha")} for r in again["runs"]]
    assert len(reusable(tmp_path / "results.json", dict(again["config"]), jobs)) == 3
    assert reusable(tmp_path / "results.json", {**again["config"], "code_sha": "other"}, jobs) == []


SCHEDULES = sorted(p.stem for p in (ROOT / "specs" / "bench").glob("grow_*.morph"))


@pytest.mark.parametrize("name", SCHEDULES)
def test_every_schedule_grows_into_exactly_the_static_architecture(name, tmp_path):
    """The benchmark's premise: each grow_*.morph, with all its rules applied in order, is the
    static model (same parameter names and shapes), and every step is function-preserving.
    grow_small's target is the frontier's 2L/d64 static size, grow_wide's its 2L/d64/m8 (an
    8 x d MLP; benchmarks.frontier)."""
    import morphdsl
    from benchmarks.frontier import size_spec
    from morphdsl.rewrites import grow

    g = morphdsl.build(ROOT / "specs" / "bench" / f"{name}.morph")
    want = {"grow_small": size_spec(2, 64, 6e-3, tmp_path),
            "grow_wide": size_spec(2, 64, 6e-3, tmp_path, mlp=8),
            "grow_wide_lr2": size_spec(2, 64, 6e-3, tmp_path, mlp=8)}.get(
        name, ROOT / "specs" / "bench" / "static.morph")
    assert g.n_params() < morphdsl.build(want).n_params() / 3
    for rule in g.sections["grow"]:
        for a in rule["actions"]:
            target = {"target": a["args"][0]} if a["args"] else {}
            res = grow(g, a["name"], **target, **a["kwargs"])
            assert res.exact
            g = res.graph
    static = morphdsl.build(want)
    assert g.param_shapes() == static.param_shapes()
