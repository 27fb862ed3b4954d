"""Evolution: the `evolve { }` section, the mutation menu, members, selection, lineage, resume
after kill -9 of the driver, and the CLI (the Ray path is in test_evolve_ray.py)."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import morphdsl
from morphdsl.cli import main
from morphdsl.errors import MorphError
from morphdsl.evolve import evolve, evolve_resume
from morphdsl.evolve.config import EvolveConfig
from morphdsl.evolve.member import run_generation
from morphdsl.evolve.mutations import MUTATIONS, choose
from morphdsl.ir.emit import emit

SPEC = """spec evo
vocab = 96
d = 16
block Block(d, heads) {
  residual {
    ln1: layernorm
    attn: attention(heads = heads)
  }
  residual {
    ln2: layernorm
    mlp: mlp(hidden = 2 * d)
  }
}
model {
  tok: embed(vocab = vocab, dim = d)
  pos: pos_embed(ctx = 16)
  blocks: repeat(2) { Block(d = d, heads = 2) }
  ln_f: layernorm
  head: unembed(vocab = vocab, tie = tok)
}
data {
  source = "stories"
  tokenizer = "chars"
  max_docs = 200
}
train {
  batch = 4
  ctx = 16
  lr = 3e-3
  warmup = 2
  eval_batches = 2
}
evolve {
  population = 3
  generations = 3
  steps = 4
  crossover = 0
  seed = 1
  mutate(widen_mlp, weight = 1, by = 8)
  mutate(insert_block, weight = 1)
  mutate(lr, weight = 1)
}
"""


def _write(tmp_path, text=SPEC, name="evo.morph") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _lineage(out) -> list:
    rows = json.loads((Path(out) / "lineage.json").read_text())
    return [(r["id"], r["parent"], r["mutation"], r["params"], r["val_loss"]) for r in rows]


def test_section_parses_checks_and_survives_emit(tmp_path):
    g = morphdsl.build(str(_write(tmp_path)))
    cfg = EvolveConfig.from_section(g.sections["evolve"])
    assert (cfg.population, cfg.generations, cfg.steps, cfg.seed) == (3, 3, 4, 1)
    assert [(m.name, m.weight, m.kwargs) for m in cfg.menu] == \
        [("widen_mlp", 1.0, {"by": 8}), ("insert_block", 1.0, {}), ("lr", 1.0, {})]
    g2 = morphdsl.build(emit(g))  # the section round-trips through the emitter
    cfg2 = EvolveConfig.from_section(g2.sections["evolve"])
    assert cfg2.to_dict() == cfg.to_dict()
    assert EvolveConfig.from_section(None).menu  # no section: the default menu


@pytest.mark.parametrize("line,expect", [
    ("  populaton = 3", "unknown evolve setting 'populaton'"),
    ("  population = 1", "evolve setting 'population' must be an integer in 2..256"),
    ("  truncation = 2.5", "evolve setting 'truncation' must be a number"),
    ("  mutate(widen_mpl, weight = 1)", "unknown mutation 'widen_mpl'"),
    ("  mutate(lr, weight = -1)", "mutation weight must be a number >= 0"),
    ("  mutate(weight = 1)", "`mutate` takes the mutation's name first"),
    ("  mutate(widen_mlp, by = \"x\")", "mutation 'widen_mlp': 'by' must be a positive integer"),
    ("  mutate(add_head, by = 2)", "mutation 'add_head' takes no argument 'by'"),
    ("  mutate(lr, factors = [0.8, -1])", "'factors' must be a list of positive numbers"),
    ("  foo: linear(out = 3)", "`evolve` holds settings"),
])
def test_bad_evolve_settings_are_errors_at_their_line(tmp_path, line, expect, capsys):
    text = SPEC.replace("  seed = 1", line)
    p = _write(tmp_path, text)
    rc = main(["evolve", str(p), "--executor", "local", "--out", str(tmp_path / "pop")])
    err = capsys.readouterr().err
    assert rc == 1 and expect in err, err
    lineno = text.splitlines().index(line) + 1
    assert f"evo.morph:{lineno}:" in err and "Traceback" not in err
    assert not (tmp_path / "pop" / "population.json").exists()


def test_choose_is_reproducible_and_respects_the_menu():
    g = morphdsl.build(SPEC)
    cfg = EvolveConfig.from_section(g.sections["evolve"])
    a = [choose(g, cfg.menu, random.Random(7)) for _ in range(5)]
    b = [choose(g, cfg.menu, random.Random(7)) for _ in range(5)]
    assert a == b
    names = {choose(g, cfg.menu, random.Random(s))["name"] for s in range(40)}
    assert names == {"widen_mlp", "insert_block", "lr"}
    # remove_block cannot apply to a one-block model: the draw falls back to what can
    one = morphdsl.build(SPEC.replace("repeat(2)", "repeat(1)"))
    from morphdsl.evolve.config import Mutation
    menu = [Mutation("remove_block", 10.0), Mutation("widen_mlp", 1.0)]
    assert {choose(one, menu, random.Random(s))["name"] for s in range(10)} == {"widen_mlp"}
    with pytest.raises(MorphError, match="no mutation in the menu applies"):
        choose(one, [Mutation("remove_block", 1.0)], random.Random(0))


def _member(tmp_path, name="m"):
    g = morphdsl.build(SPEC)
    cfg = EvolveConfig.from_section(g.sections["evolve"])
    from morphdsl.evolve.population import _train_overrides, first_jobs

    tr = _train_overrides(cfg, g, "local", None)
    job = first_jobs(cfg, tmp_path / name, emit(g), tr)[0]
    return job, run_generation(job)


@pytest.mark.parametrize("name", ["widen_mlp", "add_head", "insert_block", "widen_embed",
                                  "prune_units", "prune_heads", "remove_block"])
def test_each_mutation_is_exact_or_reports_its_change(tmp_path, name):
    job, res = _member(tmp_path)
    g = morphdsl.build(Path(res["out"], "checkpoints", "latest", "spec.morph").read_text())
    mut = {"name": name, "lr_factor": 1.0, **MUTATIONS[name](g, random.Random(0), {})}
    child = {"out": str(tmp_path / "child"), "parent": res["out"], "mutation": mut,
             "overrides": {"stop_at": 8}}
    out = run_generation(child)
    ch = out["mutation"]
    assert ch["exact"] == (name in ("widen_mlp", "add_head", "insert_block", "widen_embed"))
    if ch["exact"]:
        assert ch["max_abs_change"] < 1e-5 and abs(ch["loss_after"] - ch["loss_before"]) < 1e-5
    else:
        assert ch["max_abs_change"] > 0
    assert out["params"] != res["params"] and out["step"] == 8
    assert run_generation(child) == out  # a finished job is not run again


def test_population_runs_records_lineage_and_is_reproducible(tmp_path, capsys):
    p = _write(tmp_path)
    rc = main(["evolve", str(p), "--executor", "local", "--out", str(tmp_path / "a")])
    text = capsys.readouterr().out
    assert rc == 0 and "generation 2: best" in text and "best: g002." in text
    rows = json.loads((tmp_path / "a" / "lineage.json").read_text())
    assert len(rows) == 9 and {r["gen"] for r in rows} == {0, 1, 2}
    kids = [r for r in rows if r["gen"] > 0 and r["mutation"] != "-"]
    assert len(kids) == 4  # truncation 0.5 of 3 members: 2 replaced per generation
    for r in kids:  # each child names its parent, which survived the previous generation
        par = next(x for x in rows if x["id"] == r["parent"])
        assert par["gen"] == r["gen"] - 1
    assert (tmp_path / "a" / "evolution.png").stat().st_size > 1000
    best = morphdsl.build(str(tmp_path / "a" / "best.morph"))  # the best member's spec builds
    assert best.param_shapes()
    assert main(["evolve", str(p), "--executor", "local", "--out", str(tmp_path / "a")]) == 1
    assert "already holds a population" in capsys.readouterr().err
    evolve(str(p), tmp_path / "b")
    assert _lineage(tmp_path / "a") == _lineage(tmp_path / "b")  # same seed, same population


_DRIVER = """
import sys
from morphdsl.evolve import evolve
evolve(sys.argv[1], sys.argv[2])
"""


def test_resume_after_kill_9_of_the_driver_makes_the_same_population(tmp_path):
    p = _write(tmp_path, SPEC.replace("generations = 3", "generations = 4"))
    evolve(str(p), tmp_path / "whole")
    env = {**os.environ, "PYTHONPATH": str(Path(morphdsl.__file__).parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", _DRIVER, str(p), str(tmp_path / "cut")], env=env)
    t0 = time.time()
    while not (tmp_path / "cut" / "g002" / "m01").exists():  # mid-generation 2
        assert proc.poll() is None and time.time() - t0 < 120
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    state = json.loads((tmp_path / "cut" / "population.json").read_text())
    assert not state["done"] and state["generation"] in (1, 2)
    s = evolve_resume(tmp_path / "cut")
    assert s["generations"] == 4 and not s["finished"]
    assert _lineage(tmp_path / "cut") == _lineage(tmp_path / "whole")
    assert evolve_resume(tmp_path / "cut")["best"] == s["best"]  # a finished one is reported
    with pytest.raises(MorphError, match="holds no population"):
        evolve_resume(tmp_path / "nothing")


def test_random_search_draws_from_the_menu_reproducibly_within_its_budget(tmp_path):
    from morphdsl.evolve.search import random_search
    from morphdsl.ir.cost import train_flops

    f = train_flops(morphdsl.build(SPEC), 4, 16)
    best, rs = random_search(SPEC, tmp_path / "a", n=3, flops_each=6 * f, seed=3)
    assert best["val_loss"] == min(r["val_loss"] for r in rs)
    for r in rs:  # each trained from scratch until its FLOPs share was spent, no further
        assert 6 * f <= r["flops"] < 6 * f + 2 * train_flops(morphdsl.build(
            Path(r["out"], "checkpoints", "latest", "spec.morph").read_text()), 4, 16)
    assert len({r["arch"] for r in rs}) > 1 and any(r["applied"] for r in rs)
    _, again = random_search(SPEC, tmp_path / "b", n=3, flops_each=6 * f, seed=3)
    assert [r["arch"] for r in again] == [r["arch"] for r in rs]
    assert [r["val_loss"] for r in again] == [r["val_loss"] for r in rs]


def test_finish_trains_the_fittest_member_on_alone(tmp_path):
    p = _write(tmp_path, SPEC.replace("generations = 3", "generations = 2\n  finish = 6\n"
                                      "  per_generation = \"steps\""))
    s = evolve(str(p), tmp_path / "f")
    rows = json.loads((tmp_path / "f" / "lineage.json").read_text())
    last_gen = [r for r in rows if r["gen"] == 1]
    fin = rows[-1]
    assert fin["id"] == "finish" and fin["gen"] == 2 and len(rows) == 7
    assert fin["parent"] == min(last_gen, key=lambda r: (r["fitness"], r["slot"]))["id"]
    assert fin["step"] == 2 * 4 + 6 and s["best"]["id"] == "finish"
    assert s["generations"] == 2 and s["finished"]
    assert fin["flops_spent"] > 0 and s["flops_total"] == sum(r["flops_spent"] for r in rows)


def test_per_generation_flops_gives_every_member_the_same_compute(tmp_path):
    from morphdsl.evolve.population import unit_flops

    text = SPEC.replace("generations = 3", "generations = 3\n  finish = 4").replace(
        "mutate(widen_mlp, weight = 1, by = 8)", "mutate(widen_mlp, weight = 1, by = 128)")
    s = evolve(str(_write(tmp_path, text)), tmp_path / "f")
    f0 = unit_flops(morphdsl.build(text), None)
    rows = json.loads((tmp_path / "f" / "lineage.json").read_text())
    grown = [r for r in rows if r["params"] > rows[0]["params"]]
    assert grown, "no member grew: the test shows nothing"
    for r in rows:  # each generation's (and the finish's) share: 4 steps at the starting size
        assert 4 * f0 <= r["flops_spent"] < 4 * f0 + 3 * f0, r  # overshoot: under one step
    for r in grown:  # a grown member spends its share in as many steps or fewer
        assert r["step"] <= 4 * (r["gen"] + 1) + (4 if r["id"] == "finish" else 0)
    assert any(r["step"] < 4 * (r["gen"] + 1) for r in grown if r["id"] != "finish")
    assert s["flops_total"] >= f0 * 4 * (3 * 3 + 1)
    assert s["flops_total"] < f0 * 4 * (3 * 3 + 1) + 10 * 3 * f0


def test_lr_spread_draws_generation_zeros_lrs_log_evenly(tmp_path):
    from morphdsl.evolve.population import first_jobs

    g = morphdsl.build(SPEC.replace("  seed = 1", "  seed = 1\n  population = 5\n  lr_spread = 4")
                       .replace("  population = 3\n", ""))
    cfg = EvolveConfig.from_section(g.sections["evolve"])
    cfg.unit_flops = one_step = 1.0  # FLOPs of a step (evolve() measures it)
    lrs = [j["overrides"]["lr"] for j in first_jobs(cfg, tmp_path, "spec", {}, lr=1e-3)]
    assert lrs == pytest.approx([2.5e-4, 5e-4, 1e-3, 2e-3, 4e-3])
    one = EvolveConfig.from_section(morphdsl.build(SPEC).sections["evolve"])
    one.unit_flops = one_step
    assert all("lr" not in j["overrides"] for j in first_jobs(one, tmp_path, "spec", {}, lr=1e-3))
