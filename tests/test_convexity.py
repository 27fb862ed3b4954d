"""Convexity by composition: golden rejections, genuine ICNNs accepted and audited, and a
hypothesis soundness check (static 'convex' => no Jensen violation, dense float64 audit)."""
from glob import glob
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import morphdsl
from morphdsl import verify as V
from morphdsl.errors import VerifyError

GOLDEN = Path(__file__).parent / "golden" / "nonconvex"


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.morph")), ids=lambda p: p.stem)
def test_golden_nonconvex_rejected_with_reason_location_node(path):
    where, node, reason = path.with_suffix(".expected").read_text().splitlines()[:3]
    with pytest.raises(VerifyError) as ei:
        morphdsl.build(str(path))
    e = ei.value
    assert f"{e.line}:{e.column}" == where
    assert e.node == node
    assert reason in e.message
    assert e.filename == str(path)
    assert "^" in e.render()  # caret under the spec line


def test_golden_set_is_complete():
    assert len(list(GOLDEN.glob("*.morph"))) >= 6


def test_compile_without_check_skips_static_checks():
    m = morphdsl.compile(str(GOLDEN / "t_softplus.morph"), check=False)
    assert m(torch.randn(2, 3, 4)).shape == (2, 3, 4)


HULLS = {
    "max": "convex h: hull(petals = 3, width = 8, layers = 2, out = 1, pool = max)",
    "logsumexp": "convex h: hull(petals = 3, width = 8, layers = 3, pool = logsumexp, act = softplus)",
    "mean": "convex h: hull(petals = 2, width = 8, pool = mean, act = leaky_relu, slope = 0.2)",
    "sum": "convex h: hull(petals = 2, width = 8, out = 2, pool = sum)",
    "petal": "convex h: petal(layers = 3, width = 8)",
    "icnn_by_hand": """convex h {
        a: linear(out = 8)
        r: relu
        b: linear(out = 8, nonneg = true)
        s: softplus
        pool: parallel(join = max) { linear(out = 8, nonneg = true)  relu }
      }""",
}


@pytest.mark.parametrize("name", sorted(HULLS))
def test_genuine_icnn_accepted_and_audited_after_training(name):
    torch.manual_seed(0)
    m = morphdsl.compile(f"spec s\nmodel(features = 4) {{\n  {HULLS[name]}\n}}\n")
    (res,) = V.check_convexity(m.morph_graph)
    assert res.curvature == "convex" and res.ok
    assert V.jensen(m, region="h", n_pairs=128).ok
    x, y = torch.randn(64, 1, 4), torch.randn(64, 1, 1)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-2)
    for _ in range(20):
        loss = (m(x).mean(-1, keepdim=True) - y).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    rep = V.jensen(m, region="h", n_pairs=128, scale=2.0)
    assert rep.ok, rep


def test_jensen_catches_a_nonconvex_region_dynamically():
    m = morphdsl.compile(str(GOLDEN / "sigmoid_gate.morph"), check=False)
    rep = V.jensen(m, region="gate", n_pairs=256, scale=3.0)
    assert not rep.ok and rep.rate > 0 and rep.worst_gap > 1e-3


def test_jensen_on_a_callable():
    assert V.jensen(lambda x: x.pow(2).sum(-1, keepdim=True), in_dim=3).ok
    assert not V.jensen(lambda x: torch.sin(3 * x), in_dim=3).ok


def test_curvature_report_of_a_gpt():
    g = morphdsl.build("specs/gpt_tiny.morph") if Path("specs/gpt_tiny.morph").exists() else None
    if g is None:
        pytest.skip("specs/gpt_tiny.morph missing")
    res = {r.path: r for r in V.curvatures(g)}
    assert res["blocks.0"].curvature == "unknown" and res["blocks.0"].node == "blocks.0.ln1"


def test_sign_aware_monotonicity():
    # |-(relu(u))| = relu(u): abs is decreasing on a nonpositive argument, so this is convex
    text = "spec s\nmodel(features = 4) { convex g { relu  neg  abs } }\n"
    assert V.check_convexity(morphdsl.build(text))[0].curvature == "convex"
    text = "spec s\nmodel(features = 4) { convex g { relu  square  scale(by = -1) } }\n"
    with pytest.raises(VerifyError, match="concave"):
        morphdsl.build(text)


@pytest.mark.parametrize("path", sorted(glob("specs/*.morph")))
def test_every_spec_passes_static_checks(path):
    morphdsl.build(path)


# ----------------------------------------------------------------------------- soundness
UNARY = ["linear(out = {w})", "linear(out = {w}, nonneg = true)", "relu", "softplus", "exp",
         "square", "abs", "neg", "scale(by = 0.5)", "scale(by = -2.0)", "scale(by = -0.5)",
         "shift(by = -1.0)", "leaky_relu(slope = 0.3)", "leaky_relu(slope = -0.5)",
         "leaky_relu(slope = 0)", "leaky_relu(slope = 1)", "leaky_relu(slope = 2)", "sigmoid",
         "layernorm", "hull(petals = 2, width = 4)",
         "petal(width = 4)", "log"]
JOINS = ["add", "max", "mean", "mul", "concat", "sub"]


@st.composite
def programs(draw, depth=2):
    """A random op sequence on width 4 (as .morph text); returns (text, width)."""
    items, w = [], 4
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["op", "op", "op", "residual", "parallel"] if depth else ["op"]))
        if kind == "op":
            items.append(draw(st.sampled_from(UNARY)).format(w=w))
        elif kind == "residual":
            body = " ".join(draw(st.sampled_from(UNARY)).format(w=w) for _ in range(draw(st.integers(1, 2))))
            items.append(f"residual {{ {body} }}")
        else:
            join = draw(st.sampled_from(JOINS))
            br = [draw(st.sampled_from(UNARY)).format(w=w) for _ in range(2)]
            items.append(f"parallel(join = {join}) {{ {br[0]}  {br[1]} }}")
            if join == "concat":
                w *= 2
    return "\n    ".join(items)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=programs(), seed=st.integers(0, 2**16))
def test_static_convex_implies_no_jensen_violation(body, seed):
    text = f"spec s\nmodel(features = 4) {{\n  convex g {{\n    {body}\n  }}\n}}\n"
    g = morphdsl.build(text) if _convex(text) else None
    if g is None:
        return
    torch.manual_seed(seed)
    m = morphdsl.compile(g)
    rep = V.jensen(m, region="g", n_pairs=64, lambdas=(0.1, 0.3, 0.5, 0.7, 0.9), scale=1.5, seed=seed)
    assert rep.ok, (text, rep)


def _convex(text) -> bool:
    try:
        morphdsl.build(text)
        return True
    except VerifyError:
        return False


def test_soundness_generator_hits_both_verdicts():
    verdicts = set()
    for body in ["relu softplus", "sigmoid", "exp neg exp", "abs linear(out = 4) relu"]:
        verdicts.add(_convex(f"spec s\nmodel(features = 4) {{ convex g {{ {body} }} }}\n"))
    assert verdicts == {True, False}


def test_morphc_verify_exit_codes(capsys, tmp_path):
    from morphdsl.cli import main

    assert main(["verify", str(GOLDEN / "t_softplus.morph"), "--static"]) == 1
    out = capsys.readouterr().out
    assert "product of two input-dependent terms [at f#mul0" in out and "FAILED" in out
    text = "spec s\nmodel(features = 4) {\n  convex h: hull(petals = 2, width = 4)\n}\n"
    p = tmp_path / "ok.morph"
    p.write_text(text)
    assert main(["verify", str(p), "--json", "--pairs", "32"]) == 0
    import json

    res = json.loads(capsys.readouterr().out)
    assert res["ok"] and res["jensen"]["h"]["ok"] and res["regions"][0]["curvature"] == "convex"
