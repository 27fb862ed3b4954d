"""The visco-elastic optimizer, petal crystallization and automatic expansion (issue 17)."""
import json

import pytest
import torch
from hypothesis import given, settings, strategies as st

import morphdsl
from morphdsl.continual import ViscoElastic
from morphdsl.continual.crystal import crystal_mask, crystallize, frozen_shares, thaw
from morphdsl.continual.visco import CONSTANTS, damping, steady_resistance
from morphdsl.errors import MorphError
from morphdsl.growth import GrowthTransaction
from morphdsl.ops.modules import Hull
from morphdsl.train import train_spec
from morphdsl.train.config import TrainConfig
from morphdsl.train.optim import make_optimizer
from morphdsl.verify import jensen, static_checks

# betas 0: u = g / (|g| + eps) = sign(g), so a step is exactly lr * T / damping
PLAIN = dict(betas=(0.0, 0.0), eps=0.0, cool=0.0)


def _steps(p, opt, grads):
    moves = []
    for g in grads:
        before = p.detach().clone()
        p.grad = torch.full_like(p, float(g))
        opt.step()
        moves.append((p.detach() - before).item())
    return moves


def test_resistance_grows_on_same_sign_steps_and_damps_a_reversal_by_the_stated_factor():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = ViscoElastic([p], lr=0.1, resist=0.2, deplete=0.5, resist_decay=0.9, **PLAIN)
    moves = _steps(p, opt, [1.0] * 5)  # a positive gradient moves the weight down
    assert moves == pytest.approx([-0.1] * 5)  # nothing resists moving on
    R = 0.0
    history = []
    for _ in range(5):
        R = (R + 0.2) * 0.9  # resistance against moving up, built by each step down
        history.append(R)
    assert opt.state[p]["res_up"].item() == pytest.approx(R)
    assert history == sorted(history)  # it grows with every same-sign step
    (rev,) = _steps(p, opt, [-1.0])  # the reversal: divided by 1 + R
    assert rev == pytest.approx(0.1 / damping(R))
    assert opt.state[p]["res_up"].item() == pytest.approx(R * 0.5 * 0.9)  # half depleted...
    assert opt.state[p]["res_down"].item() == pytest.approx((R * 0.5 + 0.2) * 0.9)  # ...into the other side
    assert steady_resistance(0.2, 0.9) == pytest.approx(0.2 * 0.9 / 0.1)


def test_temperature_cools_when_not_moved_and_warms_when_pushed():
    p = torch.nn.Parameter(torch.zeros(2))
    opt = ViscoElastic([p], lr=0.01, cool=0.1, heat_ref=0.5)
    for _ in range(50):  # weight 0 pushed consistently, weight 1 by a vanishing gradient
        p.grad = torch.tensor([1.0, 0.0])
        opt.step()
    t = opt.temperature(p)
    assert t[0].item() == pytest.approx(1.0) and t[1].item() < 0.01
    for _ in range(50):  # now pushed: it warms back up (elasticity)
        p.grad = torch.tensor([1.0, 1.0])
        opt.step()
    assert opt.temperature(p)[1].item() > 0.9


def _hull(petals=3):
    torch.manual_seed(0)
    return Hull(dim=6, petals=petals, layers=2, width=8, out=6, pool="max")


def test_a_crystallized_petal_barely_moves_while_the_others_train():
    h = _hull()
    opt = ViscoElastic(h.parameters(), lr=1e-2)
    for _, p in h.named_parameters():
        opt.crystallize(p, (0, 1))
    before = {n: p.detach().clone() for n, p in h.named_parameters()}
    x = torch.randn(8, 4, 6)
    for _ in range(100):
        loss = 1e4 * (h(x) ** 2).mean()  # large gradients
        opt.zero_grad()
        loss.backward()
        opt.step()
    num = sum(((p.detach() - before[n])[0, 1] ** 2).sum() for n, p in h.named_parameters())
    den = sum((before[n][0, 1] ** 2).sum() for n, _ in h.named_parameters())
    assert (num / den).sqrt().item() < 1e-6
    moved = sum(((p.detach() - before[n])[0, 0] ** 2).sum() for n, p in h.named_parameters())
    assert (moved / den).sqrt().item() > 1e-2  # a free petal trains
    for k in range(1, h.layers):  # the nonneg weights are softplus(raw): valid whatever raw is
        assert torch.isfinite(getattr(h, f"wz{k}")).all()
    assert jensen(h, in_dim=6, n_pairs=64).ok


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-5, 5, allow_nan=False), min_size=1, max_size=40),
       st.floats(0.0, 0.5), st.floats(0.0, 1.0))
def test_state_stays_in_range_for_any_gradients(grads, resist, deplete):
    p = torch.nn.Parameter(torch.zeros(3))
    opt = ViscoElastic([p], lr=0.05, resist=resist, deplete=deplete, cool=0.2)
    opt.crystallize(p, 2)
    for g in grads:
        p.grad = torch.tensor([g, -g, g])
        opt.step()
    s = opt.state[p]
    assert (s["res_up"] >= 0).all() and (s["res_down"] >= 0).all()
    t = opt.temperature(p)
    assert ((t >= CONSTANTS["t_min"][0] - 1e-7) & (t <= 1)).all()
    assert abs(p[2].item()) <= 0.05 * len(grads) * 2 / CONSTANTS["chrysalis"][0]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="deplete"):
        ViscoElastic([torch.nn.Parameter(torch.zeros(1))], deplete=2.0)


SPEC = """
spec tiny_convex
heads = 2
d = 16
model {
  tok: embed(vocab = 256, dim = d)
  pos: pos_embed(ctx = 16)
  lanes: partition(lanes = heads) {
    blocks: repeat(1) {
      residual { ln1: layernorm
                 attn: attention(heads = heads) }
      residual { ln2: layernorm
                 convex mlp: hull(petals = 3, width = 8, pool = max) }
    }
    ln_f: layernorm
  }
  head: unembed(vocab = 256, tie = tok)
}
data { source = "stories" tokenizer = "bytes" max_docs = 300 }
train {
  steps = 60
  batch = 8
  ctx = 16
  lr = 3e-3
  eval_every = 20
  eval_batches = 2
  sample_tokens = 0
  threads = 1
  optimizer = "visco_elastic"
  optimizer_crystal_every = 5
  optimizer_blend_steps = 10
  optimizer_crystal_cold = 0.4
}
"""
GROW = "grow { frozen(share = 0.8) -> add_petals(lanes.blocks.*.mlp, n = 2) }\n"


def test_the_optimizer_is_usable_by_name_and_its_state_follows_growth():
    m = morphdsl.compile(SPEC)
    cfg = TrainConfig(steps=10, batch=8, ctx=16, lr=3e-3, optimizer="visco_elastic")
    opt = make_optimizer(m, cfg)
    assert isinstance(opt, ViscoElastic)
    x = torch.randint(0, 256, (4, 16))
    for _ in range(3):
        loss = m(x).float().logsumexp(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    h = m.get_submodule("lanes.blocks.0.mlp")
    for _, p in h.named_parameters():
        opt.crystallize(p, (1, 2))
    old = {k: v.clone() for k, v in opt.state[h.w0].items()}
    r = GrowthTransaction(m, opt).apply("add_petals", {"target": "lanes.blocks.*.mlp", "n": 2})
    h2 = r.module.get_submodule("lanes.blocks.0.mlp")
    assert isinstance(r.optimizer, ViscoElastic)
    new = r.optimizer.state[h2.w0]
    for k, v in old.items():
        if v.dim():
            assert torch.equal(new[k][:, :3], v)                 # old petals keep their state
            assert not new[k][:, 3:].any()                        # new ones start fresh (hot)
    assert crystal_mask(h2, r.optimizer).tolist() == [[False] * 5, [False, False, True, False, False]]
    assert frozen_shares(r.module, r.optimizer)["hulls"]["lanes.blocks.0.mlp"] == pytest.approx(0.1)


class Audit:
    """After every crystallize or growth event: the static certificate and the Jensen audit."""

    def __init__(self):
        self.checked = []

    def on_event(self, engine, row):
        if row["type"] in ("crystallize", "growth"):
            m = engine.model
            static_checks(m.morph_graph)
            rep = jensen(m, region="lanes.blocks.0.mlp", n_pairs=32)
            assert rep.ok, rep
            self.checked.append((row["type"], engine.step))


def test_crystallized_petals_trigger_add_petals_exactly_and_stay_convex(tmp_path):
    audit = Audit()
    out = train_spec(SPEC + GROW, tmp_path / "run", callbacks=[audit])
    events = [json.loads(ln) for ln in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    kinds = [e["type"] for e in events]
    assert "crystallize" in kinds and "growth" in kinds
    first = kinds.index("crystallize")
    grow = next(e for e in events if e["type"] == "growth")
    assert kinds.index("growth") > first and grow["reason"].startswith("rule 0: frozen")
    assert grow["max_verify_error"] <= 1e-6
    assert grow["loss_after"] == pytest.approx(grow["loss_before"], abs=1e-6)  # the fixed batch
    assert ("growth", grow["step"]) in audit.checked and ("crystallize", events[first]["step"]) in audit.checked
    assert out["val_loss"] < 5.6
    from morphdsl.train.checkpoint import load_checkpoint

    run = load_checkpoint(tmp_path / "run")
    meta = run["module"].morph_meta
    assert any(s.crystal for s in meta.slices("lanes.blocks.0.mlp.w0"))
    h = run["module"].get_submodule("lanes.blocks.0.mlp")
    grown = sum(e["params_after"] > e["params_before"] for e in events if e["type"] == "growth")
    assert h.alpha.shape[-1] == 3 + 2 * grown and (h.alpha > 0).all()  # new petals blended in


def test_crystallize_and_thaw_by_hand_keep_optimizer_and_metadata_in_step():
    from morphdsl.growth import ParamMeta

    m = morphdsl.compile(SPEC)
    cfg = TrainConfig(steps=10, batch=8, ctx=16, lr=3e-3, optimizer="visco_elastic")
    opt = make_optimizer(m, cfg)
    m.morph_meta = ParamMeta.initial(m, opt)
    assert crystallize(m, opt, lr_ratio=1.0) == []          # hot weights: nothing is cold
    evs = crystallize(m, opt, lr_ratio=0.05)               # T * 0.05 < 0.1 everywhere
    assert {e["hull"] for e in evs} == {"lanes.blocks.0.mlp"}
    assert frozen_shares(m, opt)["lanes"] == {0: 1.0, 1: 1.0}
    assert all(s.crystal for s in m.morph_meta.slices("lanes.blocks.0.mlp.b0"))
    got = thaw(m, opt, "lanes.blocks.0.mlp", petals=[(0, 1)])
    assert got == [(0, 1)]
    h = m.get_submodule("lanes.blocks.0.mlp")
    assert not crystal_mask(h, opt)[0, 1] and crystal_mask(h, opt).sum() == 5
    assert not next(s for s in m.morph_meta.slices("lanes.blocks.0.mlp.b0")
                    if s.index[:2] == ((0, 1), (1, 2))).crystal
    with pytest.raises(ValueError, match="not a hull"):
        thaw(m, opt, "lanes.blocks.0.ln1")


@pytest.mark.parametrize("rule,msg", [("frozen(share = 2)", "share must be in"),
                                      ('frozen(per = "petal")', "per must be")])
def test_bad_frozen_rules_are_errors_at_the_rule(tmp_path, rule, msg):
    with pytest.raises(MorphError, match=msg) as e:
        train_spec(SPEC + f"grow {{\n  {rule} -> add_petals(lanes.blocks.*.mlp, n = 1)\n}}\n",
                   tmp_path / "bad")
    assert e.value.span is not None and e.value.span.line >= 30


def test_resume_continues_crystallization_and_expansion_exactly(tmp_path):
    from morphdsl.train import resume

    spec = SPEC.replace("eval_every = 20", "eval_every = 20\n  checkpoint_every = 30") + GROW
    full = train_spec(spec, tmp_path / "a")
    train_spec(spec, tmp_path / "b", overrides={"stop_at": 30})
    part = resume(tmp_path / "b")
    assert part["val_loss"] == full["val_loss"]
    ev = lambda d: [{k: v for k, v in json.loads(ln).items() if k != "seconds"}  # noqa: E731
                    for ln in (d / "events.jsonl").read_text().splitlines()]
    assert ev(tmp_path / "b") == ev(tmp_path / "a")


def test_every_constant_has_a_line_in_the_docs():
    from pathlib import Path

    doc = (Path(__file__).parent.parent / "docs" / "continual.md").read_text()
    for name in CONSTANTS:
        assert f"| `{name}` |" in doc, name


def test_crystal_host_crystallizes_the_other_tensors_per_row():
    from morphdsl.growth import ParamMeta

    m = morphdsl.compile(SPEC)
    cfg = TrainConfig(steps=10, batch=8, ctx=16, lr=3e-3, optimizer="visco_elastic",
                      optimizer_args={"crystal_host": True})
    opt = make_optimizer(m, cfg)
    x = torch.randint(0, 256, (4, 16))
    m(x).float().logsumexp(-1).mean().backward()
    opt.step()
    m.morph_meta = ParamMeta.initial(m, opt)
    st = opt.state[m.tok.weight]
    st["chill"][:5] = 0.99  # five cold token rows
    evs = crystallize(m, opt, lr_ratio=1.0)
    assert {"type": "crystallize", "tensor": "tok.weight", "rows": 5, "of": 256} in evs
    assert st["crystal"][:5].all() and not st["crystal"][5:].any()
    assert [s.crystal for s in m.morph_meta.slices("tok.weight")] == [True, False]


def test_frozen_trigger_reads_the_shares_keeps_its_cooldown_and_survives_a_new_run():
    from morphdsl.train.growth import ControlState, FrozenTrigger

    def s(step, hull=0.0, lane=0.0, event="step"):
        return ControlState(step, event, 0, 0, frozen={"hulls": {"h": hull}, "lanes": {0: lane}})

    t = FrozenTrigger(share=0.8, cooldown=50)
    assert not t.fires(s(10, hull=0.79)) and not t.fires(s(10, hull=0.9, event="eval"))
    assert t.fires(s(10, hull=0.8))
    assert not t.fires(s(59, hull=1.0)) and t.fires(s(60, hull=1.0))  # the cooldown
    assert t.fires(s(5, hull=1.0))  # a new run (steps from 0 again) that carries the rule
    lane = FrozenTrigger(share=1.0, per="lane")
    assert not lane.fires(s(10, hull=1.0, lane=0.5)) and lane.fires(s(10, lane=1.0))
    assert not FrozenTrigger().fires(ControlState(10, "step", 0, 0))  # AdamW: no shares


def _reference_step(p, st, g, lr=1e-2, b1=0.9, b2=0.95, eps=1e-8, wd=0.1, resist=0.05,
                    deplete=0.5, decay=0.99, cool=0.01, heat_ref=0.1, t_min=1e-3, chrysalis=1e7):
    """The update rule of docs/continual.md written out per weight (an independent check)."""
    st["step"] += 1
    t = st["step"]
    st["m"] = b1 * st["m"] + (1 - b1) * g
    st["v"] = b2 * st["v"] + (1 - b2) * g * g
    uh = (st["m"] / (1 - b1 ** t)) / ((st["v"] / (1 - b2 ** t)).sqrt() + eps)
    heat = (uh.abs() / heat_ref).clamp(max=1.0)
    u = uh + wd * p
    up = u < 0
    against = torch.where(up, st["ru"], st["rd"])
    T = 1 - st["chill"]
    p = p - lr * T * u / ((1 + against) * (1 + st["crystal"] * (chrysalis - 1)))
    moved = deplete * against
    ru = torch.where(up, st["ru"] - moved, st["ru"] + moved + resist)
    rd = torch.where(up, st["rd"] + moved + resist, st["rd"] - moved)
    st["ru"], st["rd"] = ru * decay, rd * decay
    st["chill"] = 1 - (T + cool * (heat - T)).clamp(t_min, 1.0)
    return p


def test_the_step_matches_the_rule_written_out():
    torch.manual_seed(0)
    ps = [torch.nn.Parameter(torch.randn(5, 3)), torch.nn.Parameter(torch.randn(4))]
    opt = ViscoElastic(ps, lr=1e-2, weight_decay=0.1)
    opt.crystallize(ps[0], (1, slice(None)))
    ref = [p.detach().clone().double() for p in ps]
    rst = [dict(step=0, m=0, v=0, ru=torch.zeros_like(r), rd=torch.zeros_like(r),
                chill=torch.zeros_like(r), crystal=torch.zeros_like(r)) for r in ref]
    rst[0]["crystal"][1] = 1
    for _ in range(30):
        gs = [torch.randn_like(p) for p in ps]
        for p, gr in zip(ps, gs):
            p.grad = gr
        opt.step()
        ref = [_reference_step(r, s, gr.double()) for r, s, gr in zip(ref, rst, gs)]
    for p, r, s in zip(ps, ref, rst):
        torch.testing.assert_close(p.detach().double(), r, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(opt.state[p]["res_up"].double(), s["ru"], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(opt.temperature(p).double(), 1 - s["chill"], rtol=1e-5, atol=1e-6)


def test_a_bad_constant_in_the_spec_is_an_error_at_its_line(tmp_path):
    spec = SPEC.replace("  optimizer_crystal_every = 5", "  optimizer_crystal_every = 5\n  optimizer_deplete = 2")
    with pytest.raises(MorphError, match="deplete") as e:
        train_spec(spec, tmp_path / "bad")
    assert e.value.span is not None and "optimizer_deplete" in spec.splitlines()[e.value.span.line - 1]
