"""The parser: text -> AST with spans; precedence; comments; the printer's canonical form."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from morphdsl import MorphError  # noqa: E402
from morphdsl.ir.evaluate import Inexact, evaluate  # noqa: E402
from morphdsl.syntax import ast as A  # noqa: E402
from morphdsl.syntax.parser import parse  # noqa: E402
from morphdsl.syntax.printer import expr, format_text  # noqa: E402


def value(src: str):
    """The expression of `x = src`, parsed."""
    (entry,) = parse(f"x = {src}\n").items
    return entry.value


def test_gpt_tiny_structure():
    mod = parse((ROOT / "specs" / "gpt_tiny.morph").read_text(), "gpt_tiny.morph")
    kinds = [type(it).__name__ for it in mod.items]
    assert kinds[0] == "SpecName" and kinds.count("BlockDef") == 1
    params = {it.key: it.value for it in mod.items if isinstance(it, A.Entry)}
    assert set(params) == {"vocab", "d", "heads", "layers", "ctx"}
    model = next(it for it in mod.items if isinstance(it, A.Stmt) and it.name == "model")
    tok = model.body[0]
    assert (tok.label, tok.name, [a.name for a in tok.args]) == ("tok", "embed", ["vocab", "dim"])
    blocks = model.body[2]
    assert (blocks.label, blocks.name, blocks.args[0].name) == ("blocks", "repeat", None)
    assert blocks.body[0].name == "Block" and blocks.body[0].body is None
    # spans: 1-based, pointing at the statement and at its op name
    assert tok.span.filename == "gpt_tiny.morph"
    line = mod.source.splitlines()[tok.span.line - 1]
    assert line[tok.span.column - 1:].startswith("tok: embed(")
    assert line[tok.name_span.column - 1:].startswith("embed(")
    assert any(c.text == "# shares the embedding matrix" for c in mod.comments)


@pytest.mark.parametrize("src, want", [
    ("1 + 2 * 3", 7), ("(1 + 2) * 3", 9), ("2 ** 3 ** 2", 512), ("-2 ** 2", -4),
    ("(-2) ** 2", 4), ("10 - 4 - 3", 3), ("64 / 4 / 2", 8), ("7 // 2", 3), ("7 % 4", 3),
    ("2 * -3", -6), ("max(3, 4 * 2)", 8), ("3e-4", 3e-4), ("1.5", 1.5),
])
def test_precedence_and_evaluation(src, want):
    assert evaluate(value(src), {}) == want


def test_inexact_division_is_marked():
    v = evaluate(value("d / 3"), {"d": 32})
    assert isinstance(v, Inexact) and v == pytest.approx(32 / 3)
    assert evaluate(value("d / 4"), {"d": 32}) == 8 and isinstance(evaluate(value("d / 4"), {"d": 32}), int)


@pytest.mark.parametrize("src", ["1 + 2 * 3", "(1 + 2) * 3", "2 ** 3 ** 2", "(2 ** 3) ** 2", "-2 ** 2",
                                 "(-2) ** 2", "a - (b - c)", "a / (b * c)", "-(a + b)", "f(a, k = b + 1)",
                                 "[1, 2.5, \"s\"]", "blocks.*.mlp", "blocks.0.attn"])
def test_printer_minimal_parentheses(src):
    assert expr(value(src)) == src


def test_paths_and_strings():
    p = value("blocks.*.mlp")
    assert isinstance(p, A.Path) and p.parts == ["blocks", "*", "mlp"]
    s = value('"a \\"quoted\\" # not a comment"')
    assert isinstance(s, A.Str) and s.value == 'a "quoted" # not a comment'
    assert parse('x = "a # b"  # c\n').comments[0].text == "# c"


def test_grow_rules_parse():
    mod = parse("grow {\n  step(150) -> add_head(blocks.0.attn, n = 1), widen_mlp(blocks.*.mlp, by = 64)\n}\n")
    rule = mod.items[0].body[0]
    assert isinstance(rule, A.Rule) and rule.trigger.name == "step"
    assert [a.name for a in rule.actions] == ["add_head", "widen_mlp"]
    assert rule.actions[0].args[0].value.dotted == "blocks.0.attn"


def test_convex_modifier_and_blockdef_defaults():
    mod = parse("convex block B(w, heads = 2) {\n  convex h: hull(petals = 4)\n}\n")
    b = mod.items[0]
    assert b.modifiers == ["convex"] and [p.name for p in b.params] == ["w", "heads"]
    assert b.params[0].default is None and b.params[1].default.value == 2
    assert b.body[0].modifiers == ["convex"]


def test_syntax_error_location():
    with pytest.raises(MorphError) as ei:
        parse("model {\n  a: layernorm\n  b: mlp(hidden = 4 *)\n}\n", "x.morph")
    e = ei.value
    assert (e.filename, e.line, e.column) == ("x.morph", 3, 22)
    assert str(e).startswith("x.morph:3:22: error: unexpected `)`")


def test_fmt_canonical_form():
    messy = "spec s\nd=4   # width\nlonger_name=d*2\nmodel{\n tok:embed(vocab=8,dim=d)\n\n\n ln : layernorm()\n}\n"
    out = format_text(messy)
    # settings aligned, spaces around operators, `()` dropped, runs of blank lines -> one
    assert out == ("spec s\nd           = 4  # width\nlonger_name = d * 2\nmodel {\n"
                   "  tok: embed(vocab = 8, dim = d)\n\n  ln: layernorm\n}\n")
    assert format_text(out) == out
