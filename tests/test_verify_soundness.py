"""The verifiers never issue a false certificate, checked against independent computations:

- lane isolation: random partition bodies (nested partitions, mixers, norms, linears, attention,
  hulls, elementwise ops); whenever the static check and `morphc verify` accept, the full Jacobian
  of the compiled model (torch.autograd.functional.jacobian, every mixer set to the identity so
  that only mixer-free paths remain) has zero cross-lane blocks;
- convexity: random convex-marked programs; whenever the composition rule certifies one, midpoint
  convexity holds on the compiled module in float64 (also around softplus' old kink at 20);
- the ops certified are the ops computed (softplus is smooth, not torch's thresholded one), and
  the cases the rule used to miss (leaky_relu slopes, x + c x) are certified.
"""
from __future__ import annotations

import copy
import itertools

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import morphdsl
from morphdsl import verify as V
from morphdsl.cli.verify import verify_graph
from morphdsl.errors import ShapeError, VerifyError
from morphdsl.ops.modules import LaneMixer, softplus


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: threads only contend (20x slower on a busy 2-core machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ----------------------------------------------------------------------------- lanes
C, T = 16, 3
LANE_OPS = ["layernorm", "rmsnorm", "layernorm(lanes = 1)", "layernorm(lanes = 8)", "linear(out = 16)",
            "linear(out = 16, lanes = 1)", "linear(out = 16, lanes = 2)", "attention(heads = 8)",
            "attention(heads = 8, lanes = 1)", "mlp(hidden = 16)", "hull(petals = 2, width = 4)",
            "relu", "gelu", "softplus", "tanh", "scale(by = -0.5)", "mix", "mix", "mix"]


@st.composite
def lane_body(draw, depth=2):
    """A random partition body (a list of statements, as .morph text)."""
    kinds = ["op"] * 3 + (["residual", "parallel", "partition", "partition"] if depth else [])
    items = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(kinds))
        if kind == "op":
            items.append(draw(st.sampled_from(LANE_OPS)))
        elif kind == "residual":
            items.append("residual { " + " ".join(draw(lane_body(depth - 1))) + " }")
        elif kind == "parallel":
            join = draw(st.sampled_from(["add", "max", "mul"]))
            a, b = (draw(st.sampled_from(LANE_OPS)) for _ in range(2))
            items.append(f"parallel(join = {join}) {{ {a}  {b} }}")
        else:
            n = draw(st.sampled_from([1, 2, 4, 8]))
            items.append(f"partition(lanes = {n}) {{ " + " ".join(draw(lane_body(depth - 1))) + " }")
    return items


def lane_spec(L: int, body: list[str]) -> str:
    return f"spec s\nmodel(features = {C}) {{\n  p: partition(lanes = {L}) {{\n    " \
           + "\n    ".join(body) + "\n  }\n}\n"


def accepted(text: str) -> bool | None:
    """True: `morphc check` and `morphc verify` accept; False: a verifier rejects; None: the spec
    is malformed (a shape error), so there is nothing to certify."""
    try:
        g = morphdsl.build(text)
    except ShapeError:
        return None
    except VerifyError:
        return False
    return verify_graph(g)["ok"]


def cross_lane_blocks(text: str, L: int, seed: int = 0) -> torch.Tensor:
    """The (L, L) lane block maxima of the model's full Jacobian, with every mixer the identity
    (independent of the verifier: plain module, plain autograd)."""
    torch.manual_seed(seed)
    m = copy.deepcopy(morphdsl.compile(text, check=False)).double().eval()
    for mod in m.modules():
        if isinstance(mod, LaneMixer):  # sinkhorn of these logits is exactly the identity
            eye = torch.eye(mod.lanes, dtype=torch.bool)
            mod.logits.data = torch.zeros_like(mod.logits).masked_fill(~eye, float("-inf"))
    x = torch.randn(T, C, dtype=torch.float64)
    J = torch.autograd.functional.jacobian(lambda v: m(v[None])[0], x)  # (T, C, T, C)
    return J.abs().view(T, L, C // L, T, L, C // L).amax(dim=(0, 2, 3, 5))


def off_diagonal(B: torch.Tensor) -> float:
    return float(B.masked_fill(torch.eye(len(B), dtype=torch.bool), 0).max())


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(L=st.sampled_from([2, 4]), body=lane_body(), seed=st.integers(0, 2**16))
def test_accepted_partitions_have_no_cross_lane_dependence(L, body, seed):
    text = lane_spec(L, body)
    verdict = accepted(text)
    nested = any("partition(" in b for b in body)
    event(f"{'accepted' if verdict else 'rejected' if verdict is False else 'malformed'}"
          f"{' (nested)' if nested else ''}")
    if not verdict:
        return
    B = cross_lane_blocks(text, L, seed)
    assert off_diagonal(B) <= 1e-9 * max(float(B.max()), 1.0), (text, B)


@pytest.mark.parametrize("L, body, ok, leaks", [
    (4, ["mix(kind = sinkhorn)", "inner: partition(lanes = 1) { ln: layernorm }"], False, True),  # the issue
    (4, ["inner: partition(lanes = 1) { relu }"], False, False),  # merges lanes, though relu cannot leak
    (4, ["mix", "partition(lanes = 8) { ln: layernorm  attention(heads = 8) }", "mix", "ln2: layernorm"],
     True, False),
    (2, ["residual { mix }", "partition(lanes = 4) { linear(out = 16) }"], True, False),
    (4, ["partition(lanes = 8) { mix }", "layernorm"], True, False),  # a mixer is declared at any depth
    (4, ["residual { mix  linear(out = 16, lanes = 2) }"], False, True),
    (4, ["partition(lanes = 4) { partition(lanes = 2) { layernorm } }"], False, True),
])
def test_lane_verdicts_agree_with_the_jacobian(L, body, ok, leaks):
    text = lane_spec(L, body)
    assert accepted(text) is ok
    leak = off_diagonal(cross_lane_blocks(text, L))
    assert leak > 1e-6 if leaks else leak <= 1e-9


def test_the_generator_reaches_nested_leaks_and_accepts_nested_partitions():
    """The property above is only as strong as its generator: it must produce nested partitions
    that leak (the issue's case) and nested partitions that are accepted."""
    leaky = lane_spec(4, ["mix", "partition(lanes = 1) { layernorm }"])
    fine = lane_spec(4, ["mix", "partition(lanes = 8) { layernorm }"])
    assert off_diagonal(cross_lane_blocks(leaky, 4)) > 1e-3 and accepted(leaky) is False
    assert off_diagonal(cross_lane_blocks(fine, 4)) == 0 and accepted(fine) is True
    assert "layernorm" in LANE_OPS and "mix" in LANE_OPS


# ----------------------------------------------------------------------------- softplus
def midpoint_gap(f, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """f((a + b) / 2) - (f(a) + f(b)) / 2: > 0 violates convexity."""
    return f((a + b) / 2) - (f(a) + f(b)) / 2


def kink_pairs(n: int = 4000, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    a = 20 - torch.rand(n, generator=gen, dtype=torch.float64) * 0.7
    b = 20 + torch.rand(n, generator=gen, dtype=torch.float64) * 0.7
    return a, b


def test_softplus_is_convex_across_torchs_threshold_in_float64():
    a, b = kink_pairs()
    new = float(midpoint_gap(softplus, a, b).max())
    old = float(midpoint_gap(F.softplus, a, b).max())
    assert new <= 1e-13        # rounding only
    assert old > 5e-10         # the audit sees torch's jump of e^-20 at x = 20
    # the compiled op and a hull with softplus petals run the same smooth function
    m = morphdsl.compile("spec s\nmodel(features = 1) { convex f: softplus }\n").double()
    f = lambda v: m(v.view(-1, 1, 1)).view(-1)  # noqa: E731
    assert float(midpoint_gap(f, a, b).max()) <= 1e-13
    x = torch.tensor([20.5], dtype=torch.float64)
    assert float(f(x)) == pytest.approx(20.5 + torch.exp(-x).item(), abs=1e-15)


def test_softplus_is_stable_for_large_inputs_in_float32_and_float64():
    for dt in (torch.float32, torch.float64):
        x = torch.tensor([-1e4, -100.0, -20.0, 0.0, 20.0, 100.0, 1e4], dtype=dt, requires_grad=True)
        y = softplus(x)
        (g,) = torch.autograd.grad(y.sum(), x)
        y = y.detach()
        assert torch.isfinite(y).all() and y.dtype == dt
        assert y[0] == 0 and y[-1] == 1e4 and float(y[3]) == pytest.approx(0.6931471805599453)
        torch.testing.assert_close(y, F.softplus(x.detach()), rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(g, torch.sigmoid(x.detach()))


def test_hull_with_softplus_petals_is_convex_across_the_kink():
    torch.manual_seed(0)
    m = morphdsl.compile("spec s\nmodel(features = 1) {\n"
                         "  convex h: hull(petals = 2, width = 4, act = softplus, out = 1)\n}\n").double()
    for p in m.parameters():  # make the first layer's pre-activation sit right at 20 +- 0.7
        p.data.zero_()
    m.h.w0.data.fill_(1.0)
    a, b = kink_pairs(1000)
    f = lambda v: m(v.view(-1, 1, 1)).view(-1)  # noqa: E731
    with torch.no_grad():
        assert float(midpoint_gap(f, a, b).max()) <= 1e-12


# ----------------------------------------------------------------------------- DCP completeness
def curvature(body: str) -> str:
    g = morphdsl.build(f"spec s\nmodel(features = 4) {{ g {{ {body} }} }}\n")
    return next(r for r in V.curvatures(g) if r.path == "g").curvature


@pytest.mark.parametrize("body, want", [
    ("leaky_relu(slope = -0.5)", "convex"),            # max(x, -0.5 x)
    ("leaky_relu(slope = 0.5)", "convex"),
    ("leaky_relu(slope = 1)", "affine"),
    ("leaky_relu(slope = 2)", "concave"),               # min(x, 2 x)
    ("leaky_relu(slope = 0)  square", "convex"),        # relu: nonneg, so square is increasing
    ("leaky_relu(slope = -0.5)  square", "convex"),     # nonneg too
    ("linear(out = 4)  leaky_relu(slope = 1)  abs", "convex"),  # abs of an affine map
    ("leaky_relu(slope = 2)  neg", "convex"),
    ("softplus  residual { scale(by = -0.5) }", "convex"),      # 0.5 softplus
    ("softplus  residual { scale(by = -1) }", "constant"),      # exactly 0
    ("softplus  residual { scale(by = -1.5) }", "concave"),     # -0.5 softplus
    ("relu  parallel(join = sub) { scale(by = 3)  identity }", "convex"),  # 2 relu
    ("exp  parallel(join = mean) { neg  scale(by = 3) }", "convex"),      # exp
    ("softplus  residual { scale(by = -0.5)  shift(by = 1) }  square", "convex"),  # 0.5 s + 1 >= 0
    ("leaky_relu(slope = -1)  residual { neg }", "constant"),  # |x| - |x|
])
def test_rule_certifies_what_it_used_to_miss(body, want):
    assert curvature(body) == want


@pytest.mark.parametrize("body, why", [
    ("parallel(join = sub) { square  abs }", "sub gives convex minus convex"),
    ("softplus  residual { square  neg }", "add gives convex minus convex"),
    ("parallel(join = add) { exp  log }", "add of a convex and a concave term"),
    ("square  shift(by = -1)  leaky_relu(slope = -0.5)", "not monotone"),  # sign of x^2 - 1 unknown
])
def test_mixed_sums_say_what_they_are(body, why):
    with pytest.raises(VerifyError, match=why):
        morphdsl.build(f"spec s\nmodel(features = 4) {{ convex g {{ {body} }} }}\n")


def test_jensen_on_a_whole_model_needs_no_region():
    m = morphdsl.compile("spec s\nmodel(features = 4) {\n  convex h: hull(petals = 2, width = 4)\n}\n")
    rep = V.jensen(m, n_pairs=64)
    assert rep.ok and rep.n_checks == 64 * 3 * 4
    bad = morphdsl.compile("spec s\nmodel(features = 4) { sigmoid }\n", check=False)
    assert not V.jensen(bad, n_pairs=64, scale=3.0).ok
    with pytest.raises(VerifyError, match="takes token ids"):
        V.jensen(morphdsl.compile("specs/gpt_tiny.morph"))


# ----------------------------------------------------------------------------- DCP soundness
CONVEX_OPS = ["relu", "softplus", "exp", "square", "abs", "neg", "identity", "log",
              "scale(by = 0.5)", "scale(by = -0.5)", "scale(by = -1.5)", "shift(by = -1.0)",
              "leaky_relu(slope = -0.5)", "leaky_relu(slope = 0)", "leaky_relu(slope = 0.3)",
              "leaky_relu(slope = 1)", "leaky_relu(slope = 2)", "linear(out = 4)",
              "linear(out = 4, nonneg = true)", "hull(petals = 2, width = 4)", "sigmoid"]


_names = itertools.count()


@st.composite
def convex_body(draw, depth=2):
    items = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["op", "op", "residual", "parallel"] if depth else ["op"]))
        if kind == "op":
            items.append(draw(st.sampled_from(CONVEX_OPS)))
        elif kind == "residual":
            items.append("residual { " + " ".join(draw(convex_body(depth - 1))) + " }")
        else:
            join = draw(st.sampled_from(["add", "sub", "mean", "max"]))
            a, b = (" ".join(draw(convex_body(depth - 1))) for _ in range(2))
            i = next(_names)  # branch groups are path components: keep them unique
            items.append(f"parallel(join = {join}) {{ a{i} {{ {a} }}  b{i} {{ {b} }} }}")
    return items


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=convex_body(), seed=st.integers(0, 2**16))
def test_certified_convex_programs_pass_midpoint_convexity(body, seed):
    text = "spec s\nmodel(features = 4) {\n  convex g {\n    " + "\n    ".join(body) + "\n  }\n}\n"
    try:
        morphdsl.build(text)
    except VerifyError:
        event("rejected")
        return
    event("certified")
    torch.manual_seed(seed)
    m = copy.deepcopy(morphdsl.compile(text)).double().eval()
    gen = torch.Generator().manual_seed(seed)
    for scale in (0.5, 3.0, 20.0):
        a = torch.randn(256, 1, 4, generator=gen, dtype=torch.float64) * scale
        b = torch.randn(256, 1, 4, generator=gen, dtype=torch.float64) * scale
        with torch.no_grad():
            fa, fb, fm = m(a), m(b), m((a + b) / 2)
        gap = fm - (fa + fb) / 2
        size = 1 + fa.abs() + fb.abs() + fm.abs()
        fine = torch.isfinite(gap) & torch.isfinite(size)  # e.g. log of a negative number, exp overflow
        assert bool((gap[fine] <= 1e-9 * size[fine]).all()), (text, scale, float((gap / size)[fine].max()))
