"""Property: every spec that builds emits, grown or not, and the emitted text recompiles to the
same model — same parameter names and shapes, and (with the old state dict loaded strictly)
the same outputs.

Specs are generated from the constructs of docs/language.md: parameters, ops, `residual`,
`parallel` with every join (and `split`), named groups, labelled and unlabelled block instances
with 1-3 layers (also as parallel branches, blocks inside blocks, positional arguments),
`repeat`, `partition`, `pyramid`, the `convex` modifier, seeds (block seeds in a residual and
seed branches, at every stage), attention with rope and grouped-query
heads, attention's parts written out (`linear`, `rope`, `sdpa`, `linear`), and comments; they are built from a file
(so the source's expressions and comments are used) and grown by zero to two random rewrites.
The readable text is checked without the fallback (`emit(g, fallback=False)`), and so is the
fully inlined text the fallback would use.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import morphdsl
from morphdsl.errors import MorphError
from morphdsl.ir import emit as E

W = 8
BLOCK_OPS = ["relu", "gelu", "layernorm", "tanh", "linear(out = w)", "mlp(hidden = k * w)",
             "attention(heads = 2)", "residual { layernorm  linear(out = w) }", "rep: repeat(2) { layernorm }"]
INNER = ["B1(w = w)", "inner: B1(w, k)"]  # B2 and B3 may use B1
LANE_OPS = ["layernorm", "relu", "mlp(hidden = 16)", "attention(heads = 2)", "attention(heads = 2, rope = true)", "mix",
            "residual { layernorm  mlp(hidden = 16) }", "Lane"]


class Gen:
    def __init__(self, draw):
        self.draw, self.n = draw, 0

    def pick(self, xs):
        return self.draw(st.sampled_from(xs))

    def label(self, p="x"):
        self.n += 1
        return f"{p}{self.n}"

    def lab(self):
        return f"{self.label()}: " if self.draw(st.booleans()) else ""

    def width(self, w):
        return self.pick(["d", str(w)]) if w == W else str(w)

    def op(self, w):
        ops = ["layernorm", "relu", "gelu", "identity", "tanh", "rmsnorm", f"linear(out = {self.width(w)})",
               f"mlp(hidden = {2 * w})", "scale(by = 0.5)"]
        if w % 2 == 0:  # attention, its modern forms, and its parts written out
            ops += ["attention(heads = h)", "attention(heads = 2, rope = true)",
                    "attention(heads = 2, kv_heads = 1, bias = false)"]
            if self.draw(st.integers(0, 3)) == 0:
                return (f"{self.label('a')} {{ qkv: linear(out = {3 * w})  rope(heads = 2)  sdpa(heads = 2)"
                        f"  proj: linear(out = {w}) }}")
        return self.lab() + self.pick(ops) + self.pick(["", "", f"  # c{self.n}"])

    def call(self, w):
        return self.lab() + self.pick([f"B1(w = {self.width(w)})", f"B2({w})", f"B3(w = {w}, k = 3)"])

    def body(self, w, depth):
        return "\n".join(self.item(w, depth) for _ in range(self.draw(st.integers(1, 3))))

    def item(self, w, depth):
        kinds = ["op", "op", "block"] + (["residual", "parallel", "parallel", "group", "repeat", "partition",
                                           "pyramid", "convex", "seed"] if depth < 3 else [])
        k = self.pick(kinds)
        if k == "op":
            return self.op(w)
        if k == "block":
            return self.call(w)
        if k == "residual":
            return f"{self.lab()}residual {{\n{self.body(w, depth + 1)}\n}}"
        if k == "group":
            return f"{self.label('g')} {{\n{self.body(w, depth + 1)}\n}}"
        if k == "seed":  # a block seed: x + gate(body(x))
            return f"{self.lab()}residual {{\n{self.seed()} {{\n{self.body(w, depth + 1)}\n}}\n}}"
        if k == "repeat":
            return f"{self.label('r')}: repeat({self.draw(st.integers(1, 3))}) {{\n{self.body(w, depth + 1)}\n}}"
        if k == "partition":
            lanes = "\n".join(self.pick(LANE_OPS) for _ in range(self.draw(st.integers(1, 3))))
            return f"{self.lab()}partition(lanes = 2) {{\n{lanes}\n}}"
        if k == "pyramid":
            return f"{self.label('p')}: pyramid(block = P, width = {w}, levels = {self.draw(st.integers(1, 2))})"
        if k == "convex":
            return self.pick([f"convex {self.label('c')} {{\nlinear(out = {w})\nrelu\n}}",
                              f"{self.lab()}C(w = {w})", f"convex {self.label()}: linear(out = {w})"])
        return self.parallel(w, depth)

    def seed(self):
        stage = self.pick(["training", "blending", "holding"])
        alpha = f", alpha = {self.pick(['0.0', '0.25', '0.4', '1.0'])}" if stage == "blending" else ""
        return f"{self.label('s')}: seed(stage = {stage}{alpha})"

    def parallel(self, w, depth):
        join = self.pick(["add", "mean", "max", "mul", "sub", "concat"])
        split = join == "concat"
        n = 2 if join == "sub" or split else self.draw(st.integers(1, 3))
        bw = w // n if split else w
        branches = [self.branch(bw, depth) for _ in range(n)]
        args = f"join = {join}" + (f", split = {n}" if split else "")
        return f"{self.lab()}parallel({args}) {{\n" + "\n".join(branches) + "\n}"

    def branch(self, w, depth):
        k = self.pick(["op", "inst", "inst", "group", "convex", "seed"])
        if k == "op":
            return self.op(w)
        if k == "seed":  # new units next to the host's branches
            return f"{self.seed()} {{\n{self.op(w)}\n}}"
        if k == "inst":  # unnamed multi-op instances as branches used to make emit raise
            return self.call(w)
        if k == "convex":
            return f"{self.lab()}C(w = {w})"
        return f"{self.label('g')} {{\n{self.body(w, depth + 1)}\n}}"


@st.composite
def specs(draw):
    gen = Gen(draw)
    blocks = []
    for i in (1, 2, 3):
        layers = [gen.pick(BLOCK_OPS + (INNER if i > 1 else [])) for _ in range(draw(st.integers(1, 3)))]
        blocks.append(f"# block {i}\nblock B{i}(w, k = 2) {{\n" + "\n".join(layers) + "\n}")
    blocks += ["block P(w) {\nresidual {\nlayernorm\nmlp(hidden = 2 * w)\n}\n}",
               "convex block C(w) {\nlinear(out = w)\nrelu\n}", "block Lane() {\nlayernorm\nmlp(hidden = 16)\n}"]
    head = f"# a generated spec\nd = {W}  # width\nh = 2\n"
    return head + "\n".join(blocks) + f"\nmodel(features = d) {{\n{gen.body(W, 0)}\n}}\n"


def grown(g, draw):
    """`g` after one rewrite drawn among those that apply (g itself if none does)."""
    from morphdsl.ir.lower import region_paths

    regions = region_paths(g.root)
    options = [("widen_mlp", {"target": k, "by": 4}) for k, _ in g.op_nodes("mlp")]
    options += [("widen_mlp", {"by": 4})] if options else []
    options += [("add_head", {"target": k, "n": 1}) for k, _ in g.op_nodes("attention")]
    options += [("insert_block", {"target": p, "at": draw(st.integers(0, len(r.children)))})
                for p, r in regions if r.attrs.get("repeat")]
    options += [("grow_pyramid", {"target": p}) for p, r in regions if r.attrs.get("pyramid")]
    seeds = [p for p, r in regions if r.kind == "seed"]
    options += [("seed_stage", {"target": p, "stage": "blending", "alpha": 0.5}) for p in seeds]
    options += [(op, {"target": p}) for p in seeds for op in ("fossilize", "prune")]
    if not options:
        return g
    op = draw(st.sampled_from(sorted({o for o, _ in options})))  # each rewrite as likely
    op, kw = draw(st.sampled_from([o for o in options if o[0] == op]))
    try:
        return morphdsl.grow(g, op, **kw).graph
    except MorphError:  # not every site can grow (an mlp in lanes by a width the lanes do not split)
        return g


@settings(max_examples=80, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
@given(text=specs(), growths=st.integers(0, 2), data=st.data())
def test_every_spec_that_builds_emits_and_recompiles_to_the_same_model(text, growths, data):
    with tempfile.TemporaryDirectory() as tmp:  # from a file, so its expressions and comments are used
        path = Path(tmp) / "gen.morph"
        path.write_text(text)
        try:
            g = morphdsl.build(path)
        except MorphError:
            assume(False)
        _check(g, growths, data)


def _check(g, growths, data):
    for _ in range(growths):
        g = grown(g, data.draw)
    readable = E.emit(g, fallback=False)
    assert E.check(g, readable) is None, readable
    assert E.check(g, E.emit_text(g, readable=False)) is None
    torch.manual_seed(0)
    a = morphdsl.compile(g).double().eval()
    b = morphdsl.compile(readable).double().eval()
    assert {k: v.shape for k, v in b.state_dict().items()} == {k: v.shape for k, v in a.state_dict().items()}
    b.load_state_dict(a.state_dict(), strict=True)
    x = torch.randn(2, 5, W, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(b(x), a(x), rtol=1e-6, atol=1e-6, equal_nan=True)
