"""The gardener: germinate, the seed lifecycle (gates, alpha ramp, contribution, fossilize /
prune), the heuristic controller, their declarations in `grow { }`, resume mid-blend."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import morphdsl
from morphdsl.errors import GrowthError, MorphError
from morphdsl.garden import Gates, controllers_for
from morphdsl.garden.heuristic import sites
from morphdsl.growth import GrowthTransaction
from morphdsl.ir.seeds import seed_rows
from morphdsl.train import resume, train_spec
from morphdsl.train.loop import read_jsonl

HOST = """spec host
d = 32
block B(d) {
  residual {
    ln1: layernorm
    attn: attention(heads = 2)
  }
  residual {
    ln2: layernorm
    mlp: mlp(hidden = 64)
  }
}
model {
  tok: embed(vocab = 64, dim = d)
  pos: pos_embed(ctx = 16)
  blocks: repeat(2) {
    B(d = d)
  }
  ln_f: layernorm
  head: unembed(vocab = 64, tie = tok)
}
"""

RUN = HOST.replace("vocab = 64", "vocab = 96").replace("ctx = 16", "ctx = 32") + """
data {
  source = "stories"
  tokenizer = "chars"
  max_docs = 200
}
train {
  steps = 120
  batch = 8
  ctx = 32
  lr = 3e-3
  warmup = 5
  eval_every = 10
  eval_batches = 2
  sample_tokens = 0
  threads = 1
}
grow {
%s
}
"""
GARDEN = ("  seeds(min_training = 10, blend_steps = 20, blend_updates = 4, min_holding = 10)\n"
          "  heuristic(patience = 1, min_delta = 0.5, cooldown = 30, kinds = [\"mlp\", \"attn\"], hidden = 32)")


def host(seed=0):
    torch.manual_seed(seed)
    return morphdsl.compile(morphdsl.build(HOST))


def probe():
    return torch.randint(0, 64, (3, 16), generator=torch.Generator().manual_seed(1))


def test_germinate_is_exact_and_lists_the_seed():
    m = host()
    r = GrowthTransaction(m, None).apply("germinate", {"target": "blocks.1", "kind": "mlp", "hidden": 16})
    x = probe()
    assert torch.equal(m(x), r.module(x))  # bit for bit: the gate's forward is exactly 0
    assert seed_rows(r.module.morph_graph) == [
        {"path": "blocks.1.seed0", "stage": "training", "alpha": 0.0, "params": 64 + 32 * 16 + 16 + 16 * 32 + 32}]
    assert {n for n, _ in r.module.named_parameters()} - {n for n, _ in m.named_parameters()} == {
        f"blocks.1.seed0.{k}" for k in ("ln.weight", "ln.bias", "mlp.fc.weight", "mlp.fc.bias",
                                        "mlp.proj.weight", "mlp.proj.bias")}


def test_training_seed_is_isolated_learns_and_prunes_back_to_the_host():
    m = host()
    grown = GrowthTransaction(m, None).apply("germinate", {"target": "blocks.0", "kind": "attn"}).module
    opt = torch.optim.AdamW(grown.parameters(), lr=1e-2)
    x = probe()
    seed_w = grown.get_parameter("blocks.0.seed0.attn.qkv.weight")
    w0 = seed_w.detach().clone()
    for _ in range(3):
        pruned = GrowthTransaction(grown, None).apply("prune", {"target": "blocks.0.seed0"}).module
        assert torch.equal(grown(x), pruned(x))  # forward equals the host's, exactly, as it trains
        loss = grown(x).logsumexp(-1).mean()
        opt.zero_grad()
        loss.backward()
        assert seed_w.grad is not None and seed_w.grad.abs().sum() > 0  # it gets gradient
        opt.step()
    assert not torch.equal(seed_w.detach(), w0)
    # the pruned model is the host written without the seed, with the host's trained weights
    assert {n for n, _ in pruned.named_parameters()} == {n for n, _ in m.named_parameters()}
    text = morphdsl.emit(pruned.morph_graph)
    assert "seed(" not in text and "repeat(2) {\n    B(d = d)\n  }" in text


def test_germinated_seeds_survive_emit_and_recompile():
    m = host()
    t = GrowthTransaction(m, None)
    t.apply("germinate", {"target": "blocks.0", "kind": "mlp"})
    t.apply("seed_stage", {"target": "blocks.0.seed0", "stage": "blending", "alpha": 0.4})
    t.apply("germinate", {"target": "blocks.1", "kind": "attn", "heads": 1, "name": "extra"})
    g = t.module.morph_graph
    text = morphdsl.emit(g)
    assert "seed0: seed(stage = blending, alpha = 0.4)" in text and "extra: seed(stage = training)" in text
    again = morphdsl.compile(morphdsl.build(text))
    again.load_state_dict(t.module.state_dict())
    assert torch.equal(again(probe()), t.module(probe()))
    assert seed_rows(again.morph_graph) == seed_rows(g)


def test_germinate_names_are_fresh_after_fossilize_and_bad_calls_are_clear():
    t = GrowthTransaction(host(), None)
    t.apply("germinate", {"target": "blocks.0"})
    t.apply("seed_stage", {"target": "blocks.0.seed0", "stage": "holding"})
    t.apply("fossilize", {"target": "blocks.0.seed0"})
    t.apply("germinate", {"target": "blocks.0"})  # seed0 is now a host group: the next is seed1
    assert [r["path"] for r in seed_rows(t.module.morph_graph)] == ["blocks.0.seed1"]
    for args, msg in [({"target": "blocks"}, "not a block"), ({"target": "blocks.0", "kind": "conv"}, "kind"),
                      ({"target": "blocks.0", "name": "seed0"}, "taken"), ({}, "needs a target"),
                      ({"target": "blocks.0", "hidden": 0}, "positive integer")]:
        with pytest.raises(GrowthError, match=msg):
            t.apply("germinate", args)


@given(st.integers(1, 500), st.integers(1, 20), st.sampled_from(["linear", "cosine"]),
       st.lists(st.integers(0, 600), min_size=2, max_size=8))
@settings(max_examples=60, deadline=None)
def test_alpha_ramp_is_monotone_in_unit_interval_and_ends_at_one(steps, updates, ramp, at):
    g = Gates(blend_steps=steps, blend_updates=updates, ramp=ramp)
    vals = [g.alpha(s) for s in sorted(at)]
    assert all(0.0 <= a <= 1.0 for a in vals) and vals == sorted(vals)
    assert g.alpha(steps) == 1.0 and g.alpha(0) == 0.0
    assert len({g.alpha(s) for s in range(steps + 1)}) == min(updates, steps) + 1  # set `updates` times
    if ramp == "linear":
        assert g.alpha(steps // 2) <= 0.5 + 1e-12


@given(st.sampled_from(["training", "blending", "holding"]), st.floats(0, 1), st.integers(0, 400),
       st.sampled_from(["step", "eval"]), st.one_of(st.none(), st.floats(-0.1, 0.1)))
@settings(max_examples=200, deadline=None)
def test_gates_only_move_forward_and_hold_their_thresholds(stage, alpha, steps_in, event, contrib):
    g = Gates(min_training=50, blend_steps=100, blend_updates=5, min_holding=30, min_contribution=0.01)
    if stage != "blending":
        alpha = {"training": 0.0, "holding": 1.0}[stage]
    move = g.next(stage, alpha, steps_in, event, None, contrib)
    if move is None:
        return
    op, kw, why = move
    assert why
    if stage == "training":
        assert steps_in >= 50 and (op, kw) == ("seed_stage", {"stage": "blending", "alpha": 0.0})
    elif stage == "blending":
        assert op == "seed_stage" and (kw["stage"] == "holding" or kw["alpha"] > alpha)
    else:
        assert steps_in >= 30 and contrib is not None
        assert op == ("fossilize" if contrib >= 0.01 else "prune")


def test_declarations_are_checked_at_their_line(tmp_path):
    cases = [("  gardener(patience = 2)", "unknown controller `gardener", "heuristic"),
             ("  heuristic(kinds = [\"conv\"])", "kinds must be from", None),
             ("  seeds(ramp = \"square\")", "`ramp` must be one of", None),
             ("  heuristic(by = 1.5)", "`by` must be a fraction", None),
             ("  heuristic(max_pruned = 0)", "`max_pruned` must be an integer >= 1", None),
             ("  heuristic(site = \"middle\")", "`site` must be one of grad, last, first", None),
             ("  seeds(blend_steps = 0)", "`blend_steps` must be an integer >= 1", None),
             ("  seeds()\n  seeds()", "declared twice", None),
             ("  insert_block(blocks)", "has no trigger", "step(200) -> insert_block")]
    for body, msg, hint in cases:
        p = tmp_path / "bad.morph"
        p.write_text(RUN % body)
        with pytest.raises(MorphError, match=msg) as e:
            train_spec(p, tmp_path / "run")
        first = (RUN % body).splitlines().index(body.splitlines()[0]) + 1
        assert e.value.span.line == first + ("twice" in msg) and e.value.span.column == 3
        assert "bad.morph:" in str(e.value) or e.value.span.filename.endswith("bad.morph")
        if hint:
            assert hint in (e.value.hint or "")


def test_sites_are_the_blocks_of_every_repeat():
    assert sites(morphdsl.build(HOST)) == ["blocks.0", "blocks.1"]
    assert [type(c).__name__ for c in controllers_for([])] == []
    rules = morphdsl.build(RUN % GARDEN).sections["grow"]
    made = controllers_for(rules)
    assert [type(c).__name__ for c in made] == ["Lifecycle", "Heuristic"]
    assert made[0].gates == Gates(min_training=10, blend_steps=20, blend_updates=4, min_holding=10)


def _moves(run):
    return [(e["step"], e["type"], e.get("op"), e.get("target") or e.get("seed"), e.get("args"))
            for e in read_jsonl(run / "events.jsonl") if e["type"] in ("growth", "seed_contribution")]


@pytest.fixture(scope="module")
def garden_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("garden")
    p = d / "g.morph"
    p.write_text(RUN % GARDEN)
    summary = train_spec(p, d / "full")
    return p, d, summary


def test_heuristic_plants_on_plateau_and_the_lifecycle_runs_to_the_end(garden_run):
    p, d, summary = garden_run
    ev = read_jsonl(d / "full/events.jsonl")
    moves = _moves(d / "full")
    ops = [m[2] for m in moves if m[1] == "growth"]
    assert ops[0] == "germinate" and "seed_stage" in ops and ops.count("germinate") >= 2
    first = next(e for e in ev if e.get("op") == "germinate")
    assert first["reason"].startswith("plateau") and "largest gradient RMS" in first["reason"]
    assert first["loss_after"] == first["loss_before"]  # germination is exact
    seed = first["target"] + ".seed0"
    stages = [(m[0], m[4]) for m in moves if m[2] == "seed_stage" and m[3] == seed]
    assert [a for _, a in stages] == [{"stage": "blending", "alpha": 0.0}, {"stage": "blending", "alpha": 0.25},
                                      {"stage": "blending", "alpha": 0.5}, {"stage": "blending", "alpha": 0.75},
                                      {"stage": "holding"}]
    assert stages[0][0] - first["step"] == 10 and stages[-1][0] - stages[0][0] == 20  # the gates' steps
    c = next(e for e in ev if e["type"] == "seed_contribution" and e["seed"] == seed)
    end = next(e for e in ev if e.get("op") in ("fossilize", "prune") and e["target"] == seed)
    assert end["step"] == c["step"] and c["step"] - stages[-1][0] >= 10
    assert end["op"] == ("fossilize" if c["contribution"] >= 0 else "prune")
    assert math.isfinite(summary["val_loss"])


def test_deadline_plants_without_a_plateau_and_max_pruned_stops_planting(tmp_path):
    gates = "  seeds(min_training = 10, blend_steps = 10, blend_updates = 2, min_holding = 10, min_contribution = 1.0)\n"
    # never a plateau (patience 100): only the deadline plants, at the first evaluation past 20%
    p = tmp_path / "deadline.morph"
    p.write_text(RUN % (gates + "  heuristic(patience = 100, cooldown = 0, hidden = 16, by = 0.2)"))
    train_spec(p, tmp_path / "deadline")
    ev = read_jsonl(tmp_path / "deadline/events.jsonl")
    planted = [e for e in ev if e.get("op") == "germinate"]
    assert [e["step"] for e in planted] == [30]  # 30 / 120 = 0.25: the first evaluation >= 0.2
    assert planted[0]["reason"].startswith("deadline: nothing planted by 0.2")
    p.write_text(RUN % (gates + "  heuristic(patience = 100, cooldown = 0, hidden = 16, by = 0.2, site = \"last\")"))
    train_spec(p, tmp_path / "last")
    planted = [e for e in read_jsonl(tmp_path / "last/events.jsonl") if e.get("op") == "germinate"]
    assert [(e["step"], e["target"]) for e in planted] == [(30, "blocks.1")]
    assert "site blocks.1 is the last block" in planted[0]["reason"]
    # a plateau at every evaluation and every seed pruned (min_contribution = 100%): without
    # max_pruned the heuristic replants after each prune, with max_pruned = 1 it stops
    counts = []
    for extra in ("", ", max_pruned = 1"):
        p.write_text(RUN % (gates + f"  heuristic(patience = 1, min_delta = 0.5, cooldown = 0, hidden = 16{extra})"))
        run = tmp_path / f"pruned{len(counts)}"
        train_spec(p, run)
        ops = [e.get("op") for e in read_jsonl(run / "events.jsonl")]
        assert ops.count("prune") >= 1 and ops.count("fossilize") == 0
        counts.append((ops.count("germinate"), ops.count("prune")))
    assert counts[0][0] >= 3 and counts[1] == (1, 1)


def test_controller_decisions_are_reproducible_from_the_seed(garden_run, tmp_path):
    p, d, _ = garden_run
    train_spec(p, tmp_path / "again")
    assert _moves(tmp_path / "again") == _moves(d / "full")


def test_resume_mid_blend_equals_the_uninterrupted_run(garden_run, tmp_path):
    p, d, full = garden_run
    blend = [m[0] for m in _moves(d / "full") if m[2] == "seed_stage" and m[4].get("alpha") == 0.5]
    cut = blend[0] + 3  # inside the first seed's ramp
    train_spec(p, tmp_path / "cut", {"stop_at": cut})
    from morphdsl.train.checkpoint import load_checkpoint

    ck = load_checkpoint(tmp_path / "cut")
    assert "stage = blending, alpha = 0.5" in (ck["dir"] / "spec.morph").read_text()
    assert [(r["stage"], r["alpha"]) for r in seed_rows(ck["module"].morph_graph)] == [("blending", 0.5)]
    out = resume(tmp_path / "cut")
    a, b = read_jsonl(d / "full/metrics.jsonl"), read_jsonl(tmp_path / "cut/metrics.jsonl")
    assert [r["loss"] for r in a] == [r["loss"] for r in b]  # exactly
    assert [r.get("val_loss") for r in a] == [r.get("val_loss") for r in b]
    assert _moves(tmp_path / "cut") == _moves(d / "full")
    assert out["val_loss"] == full["val_loss"]


def test_negative_contribution_prunes_the_seed_exactly(tmp_path):
    p = tmp_path / "g.morph"
    p.write_text(RUN % GARDEN.replace("min_holding = 10)", "min_holding = 10, min_contribution = 1.0)"))
    train_spec(p, tmp_path / "run", {"steps": 80})
    ev = read_jsonl(tmp_path / "run/events.jsonl")
    pr = [e for e in ev if e.get("op") == "prune"]
    assert pr and "contribution" in pr[0]["reason"] and "< 100%" in pr[0]["reason"]
    germ = next(e for e in ev if e.get("op") == "germinate")
    assert pr[0]["params_after"] == germ["params_before"]  # the host again


def test_contribution_reads_the_model_without_changing_it(garden_run):
    from morphdsl.garden.signals import contribution
    from morphdsl.train.config import from_sections
    from morphdsl.train.engine import Engine

    p, d, _ = garden_run
    torch.manual_seed(0)
    t = GrowthTransaction(morphdsl.compile(morphdsl.build(RUN % "")), None)
    t.apply("germinate", {"target": "blocks.0"})
    m = t.apply("seed_stage", {"target": "blocks.0.seed0", "stage": "holding"}).module
    cfg = from_sections(morphdsl.build(RUN % GARDEN).sections, {"threads": 1})
    eng = Engine(m, cfg, d / "probe", controllers=[])
    before = {k: v.clone() for k, v in m.state_dict().items()}
    rng = torch.get_rng_state()
    with_seed = eng.evaluate()
    c = contribution(eng, "blocks.0.seed0", with_seed)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert eng.evaluate() == with_seed and math.isfinite(c) and c != 0.0


def test_the_docs_python_controller_runs(tmp_path, monkeypatch):
    """docs/gardener.md's own-controller example, shortened: it plants, the lifecycle moves."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "gardener.md").read_text()
    code = re.search(r"```python\n(.*?)```", doc, re.S).group(1)
    assert '{"steps": 400}' in code and '"runs/mine"' in code
    code = code.replace('{"steps": 400}', '{"steps": 90, "eval_every": 10, "threads": 1, '
                                          '"sample_tokens": 0, "eval_batches": 2}')
    code = code.replace("Gates(min_training=50, blend_steps=50)", "Gates(min_training=10, blend_steps=10)")
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    exec(compile(code.replace('"runs/mine"', repr(str(tmp_path / "mine"))), "gardener.md", "exec"), {})
    ev = read_jsonl(tmp_path / "mine/events.jsonl")
    ops = [e["op"] for e in ev if e["type"] == "growth"]
    assert ops[0] == "germinate" and "seed_stage" in ops and ev[0]["reason"] == "every third"


def test_the_docs_grow_sections_build_their_controllers():
    """Every `grow { }` example in docs/gardener.md is a valid declaration for the garden host."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    doc = (root / "docs" / "gardener.md").read_text()
    blocks = [b for b in re.findall(r"```morph\n(.*?)```", doc, re.S) if b.lstrip().startswith("grow {")]
    assert len(blocks) >= 2
    host = (root / "specs" / "bench" / "garden_host.morph").read_text()
    for b in blocks:
        made = controllers_for(morphdsl.build(host + "\n" + b).sections["grow"])
        assert [type(c).__name__ for c in made] == ["Lifecycle", "Heuristic"]
    h = controllers_for(morphdsl.build(host + "\n" + blocks[-1]).sections["grow"])[1]
    assert (h.by, h.max_pruned) == (0.15, 1)
