"""`emit` keeps grown specs readable, and is total.

- golden growths (tests/golden/emit/CASE.before.morph + CASE.op -> CASE.after.morph): the
  emitted text is the expected one, keeps `block` definitions, calls and `repeat` where the
  copies are alike (the `# expect:` lines of CASE.op), rebuilds the grown model (same names,
  shapes and logits) and is a fixed point;
- an unchanged spec emits as its formatted source (comments kept) under one header line;
- the case that used to raise (a multi-op unnamed block as a parallel branch), names the
  language cannot write, the fallback, imported blocks, a changed source file, and the growth
  history in the header.

Regenerate the golden outputs for review with `python tests/test_emit.py --regen`.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import morphdsl  # noqa: E402
from morphdsl import grow_model  # noqa: E402
from morphdsl.ir import emit as E  # noqa: E402
from morphdsl.rewrites.parse_op import parse_op  # noqa: E402
from morphdsl.syntax.printer import format_text  # noqa: E402

GOLDEN = ROOT / "tests" / "golden" / "emit"
CASES = sorted(p.name[: -len(".op")] for p in GOLDEN.glob("*.op"))


def _ops(case):
    lines = (GOLDEN / f"{case}.op").read_text().splitlines()
    ops = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    expect = [ln.split("# expect:", 1)[1].strip() for ln in lines if ln.lstrip().startswith("# expect:")]
    return ops, expect


def grown(case):
    """The compiled model of CASE.before.morph after the ops of CASE.op (seeded weights)."""
    torch.manual_seed(0)
    m = morphdsl.compile(str(GOLDEN / f"{case}.before.morph"))
    for text in _ops(case)[0]:
        name, kw, _ = parse_op(text, m.morph_graph.params)
        m = grow_model(m, name, verify=False, **kw).module
    return m


def logits(m, x):
    m = m.double().eval()
    with torch.no_grad():
        return m(x)


@pytest.mark.parametrize("case", CASES)
def test_golden_growth(case, tmp_path):
    m = grown(case)
    g = m.morph_graph
    readable = E.emit(g, fallback=False)
    assert E.check(g, readable) is None, "the readable text must rebuild the graph by itself"
    text = morphdsl.emit(g)
    assert text == readable
    assert text == (GOLDEN / f"{case}.after.morph").read_text(), f"regenerate: python {__file__} --regen"
    for want in _ops(case)[1]:
        assert want in text, f"{case}: `{want}` is not in the emitted spec"
    f = tmp_path / f"{case}.morph"
    f.write_text(text)
    back = morphdsl.compile(str(f))
    assert back.morph_graph.param_shapes() == g.param_shapes()
    back.load_state_dict(m.state_dict(), strict=True)
    x = torch.randint(0, 256, (2, 12))
    torch.testing.assert_close(logits(back, x), logits(m, x), rtol=0, atol=1e-9)
    assert morphdsl.emit(back.morph_graph) == text  # a checkpoint's spec.morph emits as itself


SPECS = sorted((ROOT / "specs").glob("*.morph"))


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_unchanged_spec_emits_as_its_formatted_source(path):
    text = morphdsl.emit(morphdsl.build(path))
    first, rest = text.split("\n", 1)
    assert first == f"# {morphdsl.build(path).name}: emitted by morphdsl"
    assert rest == format_text(path.read_text())


BRANCH = """
block B(w) {
  l1: linear(out = w)
  relu
}
model(features = 4) {
  parallel(join = add) { B(w = 4)  identity }
  p: parallel(join = max) { convex B(w = 4)  identity }
}
"""


def test_unnamed_multi_op_block_as_a_branch_emits():
    g = morphdsl.build(BRANCH)
    text = morphdsl.emit(g)
    assert "B(w = 4)" in text and "convex B(w = 4)" in text
    assert E.check(g, text) is None
    flat = E.emit_text(g, readable=False)  # even fully inlined, a branch is one statement
    assert "block B_1()" in flat and E.check(g, flat) is None
    a, b = morphdsl.compile(g), morphdsl.compile(text)
    b.load_state_dict(a.state_dict(), strict=True)
    x = torch.randn(2, 5, 4, dtype=torch.float64)
    torch.testing.assert_close(logits(b, x), logits(a, x))


def test_unreadable_text_falls_back_to_the_inlined_one(monkeypatch):
    g = morphdsl.build(BRANCH)
    real = E.emit_text
    monkeypatch.setattr(E, "emit_text", lambda g, readable=True: real(g, readable).replace("w = 4", "w = 3")
                        if readable else real(g, readable))
    assert morphdsl.emit(g) == real(g, readable=False)


def test_imported_blocks_are_defined_in_the_emitted_spec(tmp_path):
    (tmp_path / "lib.morph").write_text("k = 3\nblock Lin(w) {\n  lin: linear(out = w)\n}\n"
                                        "block Wide(w) {\n  lin: linear(out = k * w)\n}\n")
    main = tmp_path / "main.morph"
    main.write_text('use "lib.morph"\n# the model\nmodel(features = 4) {\n  a: Lin(w = 4)\n'
                    '  b: Wide(w = 4)\n}\n')
    g = morphdsl.build(main)
    text = morphdsl.emit(g)
    assert "use " not in text and "block Lin(w)" in text and "a: Lin(w = 4)" in text
    assert "lin: linear(out = 3 * w)" in text and "b: Wide(w = 4)" in text  # `k` is lib.morph's
    assert "# the model" in text and E.check(g, text) is None


def test_a_changed_source_file_is_not_used(tmp_path):
    """The graph keeps the source it was built from: editing the file afterwards changes nothing."""
    f = tmp_path / "s.morph"
    f.write_text("# header\nd = 4\nmodel(features = 4) {\n  l: linear(out = d)  # width\n}\n")
    g = morphdsl.build(f)
    assert "# width" in morphdsl.emit(g) and "out = d)" in morphdsl.emit(g)
    f.write_text("# other\nd = 5\nmodel(features = 4) {\n  l: linear(out = d)\n}\n")
    text = morphdsl.emit(g)
    assert "# other" not in text and "# header" in text and "# width" in text
    assert "d = 4" in text and E.check(g, text) is None


def test_a_spec_built_from_text_keeps_its_comments():
    g = morphdsl.build("# header\nd = 4\nmodel(features = 4) {\n  l: linear(out = d)  # width\n}\n")
    text = morphdsl.emit(g)
    assert "# header" in text and "# width" in text and "out = d)" in text


def test_names_the_language_cannot_write_still_emit(tmp_path):
    from morphdsl.ir.build import relower
    from morphdsl.ir.graph import OpInst, Region

    f = tmp_path / "my-model.morph"  # the spec's name is the file's: not a `spec` name
    f.write_text("model(features = 4) {\n  l: linear(out = 4)\n}\n")
    g = morphdsl.build(f)
    # a rewrite may make a group whose name is an op's: `linear { }` would be the op
    g.root.children.append(Region("group", [OpInst("act", "relu", {})], name="linear"))
    relower(g)
    text = E.emit(g, fallback=False)
    assert "spec my_model" in text and "linear: Group_1" in text and "block Group_1()" in text
    assert E.check(g, text) is None


def test_history_accumulates_across_checkpoints(tmp_path):
    g = morphdsl.build(ROOT / "specs" / "gpt_tiny.morph")
    g1 = morphdsl.grow(g, "widen_mlp", target="blocks.*.mlp", by=8).graph
    f = tmp_path / "step1.morph"
    f.write_text(morphdsl.emit(g1))
    g2 = morphdsl.grow(morphdsl.build(f), "insert_block", target="blocks").graph
    text = morphdsl.emit(g2)
    assert text.startswith("# gpt_tiny: emitted by morphdsl after widen_mlp(blocks.*.mlp, by = 8), "
                           "insert_block(blocks, at = 2)\n")
    assert "mlp: mlp(hidden = 4 * d + 8)" in text and "repeat(layers + 1)" in text
    assert text.count("emitted by morphdsl") == 1


def regen() -> None:
    for case in CASES:
        text = morphdsl.emit(grown(case).morph_graph)
        (GOLDEN / f"{case}.after.morph").write_text(text)
        print(f"wrote {case}.after.morph")


if __name__ == "__main__":
    if "--regen" in sys.argv:
        regen()
    else:
        sys.exit(pytest.main([__file__, "-q"]))
