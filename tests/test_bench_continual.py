"""The continual-learning benchmark: its ACC/BWT arithmetic, the Python-source domain, the lanes
method's frozen slices, EWC's gradient hook, and a tiny end-to-end run."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import morphdsl

from benchmarks import continual as C
from tests.test_train import _env, cache  # noqa: F401

SMALL = 100_000  # characters per domain in these tests


def _need_shakespeare():
    why = C.shakespeare_missing()
    if why:
        pytest.skip(why)


def test_acc_and_bwt_of_a_hand_made_matrix():
    R = [[1.0, 3.0, 4.0],   # after stage 1 (domain 0 learned)
         [1.5, 1.2, 4.1],   # after stage 2
         [1.8, 1.6, 0.9]]   # after stage 3
    acc, bwt = C.acc_bwt(R)
    assert acc == pytest.approx((1.8 + 1.6 + 0.9) / 3)
    assert bwt == pytest.approx(((1.8 - 1.0) + (1.6 - 1.2)) / 2)  # 0.6: forgetting is positive
    acc, bwt = C.acc_bwt([[1.0, 2.0, 3.0]])  # joint: one row, no BWT
    assert acc == pytest.approx(2.0) and bwt is None
    assert C.acc_bwt([[2.0, 5.0], [1.5, 1.0]])[1] == pytest.approx(-0.5)  # improved: negative


def test_goal_line_clauses():
    def t(acc, bwt, added):
        return {"acc": acc, "bwt": bwt, "params_added": added}
    methods = {"ours": t([2.0, 2.02], [0.01, 0.01], [10, 10]),
               "ewc": t([2.1], [0.2], [0]), "sequential": t([2.2], [0.3], [0]),
               "joint": t([1.98], [None], [0]), "lanes": t([2.3], [0.1], [100])}
    g = C.goal(methods)
    assert g == {"bwt_small": True, "below_ewc": True, "below_sequential": True,
                 "acc_near_joint": True, "fewer_params_than_lanes": True, "met": True}
    methods["ewc"] = t([2.1], [0.04], [0])  # below ewc by 0.03 < the 0.05 margin
    assert C.goal(methods)["below_ewc"] is False and C.goal(methods)["met"] is False
    del methods["lanes"]
    assert C.goal(methods)["fewer_params_than_lanes"] is None and C.goal(methods)["met"] is None


def test_python_domain_is_real_stdlib_source_and_deterministic():
    import sysconfig
    from pathlib import Path

    root = Path(sysconfig.get_paths()["stdlib"])
    files = C.python_files()
    rel = [p.relative_to(root).as_posix() for p in files]
    assert len(files) > 100 and rel == sorted(rel) and "argparse.py" in rel
    for r in rel:
        dirs = r.split("/")[:-1]
        assert not any(d.startswith("test") or d == "site-packages" for d in dirs), r
    a, b = C.python_texts(cap=50_000), C.python_texts(cap=50_000)
    assert a == b and sum(map(len, a)) == 50_000
    text = "".join(a)
    assert "def " in text and "import " in text
    first = next(t for t in (p.read_text(encoding="utf-8", errors="replace") for p in files)
                 if t.strip())
    assert a[0] == first[:50_000]  # whole files in path order


def test_ours_spec_is_the_host():
    def shapes(spec):
        m = C.build(spec, 0)
        return [(n, tuple(p.shape)) for n, p in m.named_parameters()]
    assert shapes(C.OURS) == shapes(C.HOST)


def test_ewc_hook_adds_exactly_lambda_fisher_times_displacement():
    torch.manual_seed(0)
    m = C.build(C.HOST, 0)
    x = torch.randint(0, 256, (2, 16))
    y = torch.randint(0, 256, (2, 16))

    def grads():
        m.zero_grad(set_to_none=True)
        F.cross_entropy(m(x).flatten(0, 1), y.flatten()).backward()
        return {n: p.grad.clone() for n, p in m.named_parameters()}

    plain = grads()
    fisher = {n: torch.rand_like(p) for n, p in m.named_parameters()}
    star = {n: p.detach() + 0.1 * torch.randn_like(p) for n, p in m.named_parameters()}
    lam = 37.0
    handles = C.add_ewc_hooks(m, [C.EWCTask(fisher, star)], lam)
    assert len(handles) == len(plain)
    hooked = grads()
    for n, p in m.named_parameters():
        want = lam * fisher[n] * (p.detach() - star[n])
        torch.testing.assert_close(hooked[n] - plain[n], want, rtol=1e-4, atol=1e-6)
        assert torch.equal(hooked[n], plain[n] + lam * (fisher[n] * (p.detach() - star[n])))
    # = the gradient of loss + (lambda / 2) sum F (theta - theta*)^2 by autograd
    for h in handles:
        h.remove()
    m.zero_grad(set_to_none=True)
    pen = sum((fisher[n] * (p - star[n]) ** 2).sum() for n, p in m.named_parameters())
    (F.cross_entropy(m(x).flatten(0, 1), y.flatten()) + lam / 2 * pen).backward()
    for n, p in m.named_parameters():
        torch.testing.assert_close(p.grad, hooked[n], rtol=1e-4, atol=1e-5)
    assert all(torch.equal(a, plain[n]) for n, a in grads().items())  # hooks removed


def test_lanes_method_keeps_old_slices_bit_unchanged(tmp_path):
    _need_shakespeare()
    data = C.domains(SMALL, 16, 64, 1)
    seen = {}

    class Probe(C.Lanes):
        def start_stage(self, k, engine, ctx):
            meta = engine.model.morph_meta if k else None
            seen[k] = {"frozen": [], "new": []}
            for n, p in engine.model.named_parameters():
                for s in (meta.params[n] if meta else []):
                    box = tuple(slice(a, b) for a, b in s.index)
                    seen[k]["frozen" if s.frozen else "new"].append((p, box, p[box].clone()))
            return []

        def end_stage(self, k, engine, ctx):
            params = {id(p) for p in engine.model.parameters()}
            for p, box, before in seen[k]["frozen"]:
                assert id(p) in params and torch.equal(p[box], before)
            moved = [not torch.equal(p[box], before) for p, box, before in seen[k]["new"]]
            if k:
                assert seen[k]["frozen"] and sum(moved) > len(moved) // 2

    r = Probe().run({"data": data, "steps": 3, "seed": 0, "run_dir": str(tmp_path),
                     "curve_points": 1, "fisher_batches": 1})
    assert [len(row) for row in r["matrix"]] == [3, 3, 3]
    assert r["params_added"] > 0 and r["params_end"] == r["params_start"] + r["params_added"]
    assert seen[0]["frozen"] == [] and seen[2]["frozen"]  # stage 1 trains all; later ones not


def test_tiny_run_writes_report_and_results(tmp_path, capsys):
    _need_shakespeare()
    args = ["--methods", "ewc", "joint", "--seeds", "1", "--steps", "2", "--lambdas", "1", "100",
            "--max-chars", str(SMALL), "--out", str(tmp_path)]
    assert C.main(args) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    runs = res["runs"]
    assert sorted((r["method"], r["variant"]) for r in runs) == [
        ("ewc", "lam=1"), ("ewc", "lam=100"), ("joint", "")]
    for r in runs:
        assert len(r["matrix"]) == (1 if r["method"] == "joint" else 3)
        assert r["acc"] == pytest.approx(C.acc_bwt(r["matrix"])[0])
    sweep = res["table"]["sweeps"]["ewc"]
    assert sweep["chosen"] == min((r for r in runs if r["method"] == "ewc"),
                                  key=lambda r: r["acc"])["variant"]
    text = (tmp_path / "report.md").read_text()
    assert "ACC" in text and "BWT" in text and "ewc sweep" in text and "Goal (not asserted)" in text
    assert (tmp_path / "continual.png").stat().st_size > 5_000
    # a second call reuses the runs; --analyse re-reports them without training
    assert C.main(args) == 0
    assert "0 runs (3 reused)" in capsys.readouterr().out
    (tmp_path / "report.md").unlink()
    assert C.main(args + ["--analyse"]) == 0
    assert (tmp_path / "report.md").read_text() == text


def test_an_ours_variant_sets_train_settings_and_replaces_the_rule(tmp_path):
    p = C.ours_variant(["optimizer_chrysalis=100", "optimizer_crystal_host=false"],
                       "frozen(share = 0.9) -> add_petals(lanes.blocks.*.mlp, n = 2)", tmp_path)
    g = morphdsl.build(str(p))
    cfg = C.stage_config(C.build(p, 0), 10, 0)
    assert cfg.optimizer_args["chrysalis"] == 100 and cfg.optimizer_args["crystal_host"] is False
    (rule,) = g.sections["grow"]
    assert rule["trigger"]["kwargs"] == {"share": 0.9}
    assert "grow" not in morphdsl.build(str(C.ours_variant([], "none", tmp_path))).sections or \
        not morphdsl.build(str(C.ours_variant([], "none", tmp_path))).sections["grow"]
    assert C.Ours(spec=str(p)).spec == p and C.variant_name({"spec": str(p)}) == f"spec={p.stem}"


def test_routing_to_the_first_generation_reproduces_the_model_after_stage_one(tmp_path):
    """ours_routed: the generation of petals crystallized at the end of stage 1, gated alone,
    computes what the model computed then (everything older is crystallized), and every
    window is routed to one generation."""
    _need_shakespeare()
    data = C.domains(SMALL, 16, 64, 1)
    after = {}

    class Probe(C.OursRouted):
        def end_stage(self, k, engine, ctx):
            super().end_stage(k, engine, ctx)
            if k == 0:
                routed = C.evaluate_routed(engine.model, data.val, self.gens, self.refs)
                after[0] = routed[C.PRIMARY][0]
                assert set(routed) == set(C.ROUTERS)
            if k == len(C.DOMAINS) - 1:
                g0 = self.gens[0]
                assert any(m.any() for m in g0.values())  # stage 1 crystallized petals
                with C._Gated(engine.model, g0):
                    got = C.evaluate(engine.model, data.val, C.ROUTE_PREFIX)
                assert got == pytest.approx(after[0], abs=2e-3)

    r = Probe().run({"data": data, "steps": 60, "seed": 0, "run_dir": str(tmp_path),
                     "curve_points": 2})
    picks = r["info"]["picks"]
    for router in C.ROUTERS:
        assert [len(p[router][0]) for p in picks] == [1, 2, 3]
        assert all(sum(c) == sum(picks[0][router][0]) for stage in picks for c in stage[router])
    assert set(r["info"]["other_routers"]) == set(C.ROUTERS) - {C.PRIMARY}
    assert len(r["info"]["tail_matrix"]) == 3 and r["info"]["tail_bwt"] is not None


def test_diagnosis_separates_drift_from_interference(tmp_path):
    """continual_diag: with only stage 1's crystallized petals on, the last model computes what
    the stage-1 model did, and crystallized weights barely moved."""
    from benchmarks.continual_diag import diagnose

    _need_shakespeare()
    data = C.domains(SMALL, 16, 64, 1)
    C.Ours().run({"data": data, "steps": 60, "seed": 0, "run_dir": str(tmp_path), "curve_points": 2})
    r = diagnose(tmp_path, data.val)
    assert r["stage1_crystals_only"] == pytest.approx(r["after_stage1"], abs=2e-3)
    assert r["after_last"] != pytest.approx(r["after_stage1"], abs=1e-2)  # the new petals changed it
    assert r["largest_crystal_move"] < 1e-4


def test_lr_replaces_every_methods_peak_lr():
    """--lr: one peak LR for every method (the ours spec's and the host's alike)."""
    for spec in (C.HOST, C.OURS):
        m = C.build(spec, 0)
        assert C.stage_config(m, 10, 0).lr == 3e-3
        assert C.stage_config(m, 10, 0, 6e-3).lr == 6e-3
    assert C.settings({**C.FULL, "lr": 6e-3})["lr"] == 6e-3 and C.settings(dict(C.FULL))["lr"] is None
