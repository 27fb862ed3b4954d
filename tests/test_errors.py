"""Bad input gives a `MorphError` with a location and a hint, never a traceback.

1. A corpus of malformed specs (tests/errors/*.morph) with golden line, column, message and
   hint (tests/errors/expected.json). After changing a message on purpose, regenerate with
   `python tests/test_errors.py` and review the diff.
2. Random edits of the valid specs in specs/ either compile or raise a `MorphError`.
3. Random well-formed expressions and arguments round-trip through the printer.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import morphdsl  # noqa: E402
from morphdsl.syntax.parser import parse  # noqa: E402
from morphdsl.syntax.printer import format_text  # noqa: E402

ERRORS = ROOT / "tests" / "errors"
GOLDEN = json.loads((ERRORS / "expected.json").read_text()) if (ERRORS / "expected.json").exists() else {}
SPECS = sorted((ROOT / "specs").glob("*.morph"))


def golden(err: morphdsl.MorphError) -> dict:
    return {"kind": type(err).__name__, "file": Path(err.filename).name, "line": err.line,
            "column": err.column, "message": err.message, "hint": err.hint}


def compile_error(path: Path) -> morphdsl.MorphError | None:
    try:
        morphdsl.compile(str(path))
    except morphdsl.MorphError as e:
        return e
    return None


# ----------------------------------------------------------------------------- 1. corpus
def test_corpus_is_complete():
    stems = {f.stem for f in ERRORS.glob("*.morph")}
    assert len(stems) >= 35
    assert stems == set(GOLDEN), "run `python tests/test_errors.py` and review expected.json"
    kinds = {g["kind"] for g in GOLDEN.values()}
    assert {"SyntaxError_", "SpecError", "ShapeError"} <= kinds


@pytest.mark.parametrize("stem", sorted(GOLDEN))
def test_error_golden(stem, monkeypatch):
    monkeypatch.chdir(ROOT)  # messages name paths as the user wrote them: tests/errors/...
    path = (ERRORS / f"{stem}.morph").relative_to(ROOT)
    err = compile_error(path)
    assert err is not None, f"{path.name} compiled; it must fail"
    want = GOLDEN[stem]
    assert golden(err) == want
    # the rendered diagnostic: FILE:LINE:COL, the offending source line, a caret under it
    text = err.render()
    first, *rest = text.splitlines()
    path = Path(err.filename)  # the file at fault (another one for an error in a `use`d file)
    assert first.startswith(f"{path}:{err.line}:{err.column}: error: ")
    lines = path.read_text().splitlines()
    src = lines[err.line - 1] if err.line <= len(lines) else ""
    if src:
        assert f"  {err.line:>4} | {src}" in rest
        caret = next(l for l in rest if l.lstrip(" |").startswith("^"))
        assert caret.index("^") == len("       | ") + err.column - 1
    if err.hint:
        assert rest[-1] == f"  hint: {err.hint}"


# ----------------------------------------------------------------------------- 2. fuzzing
TOKEN = re.compile(r'"[^"\n]*"|[A-Za-z_][A-Za-z0-9_]*|[0-9.]+|->|//|\*\*|\S')


def _edit(text: str, data) -> str:
    lines = text.split("\n")
    kind = data.draw(st.sampled_from(["del_char", "ins_char", "rep_char", "del_tok", "dup_tok",
                                      "rep_tok", "dup_line", "swap_lines", "del_line"]))
    if kind.endswith("char"):
        i = data.draw(st.integers(0, len(text) - 1))
        ch = data.draw(st.sampled_from(list("{}()[]=:,.-+*/#\"'0123456789 \nadxz_")))
        if kind == "del_char":
            return text[:i] + text[i + 1:]
        return text[:i] + ch + text[i + (kind == "rep_char"):]
    if kind.endswith("tok"):
        toks = list(TOKEN.finditer(text))
        m = toks[data.draw(st.integers(0, len(toks) - 1))]
        if kind == "del_tok":
            new = ""
        elif kind == "dup_tok":
            new = m.group() + " " + m.group()
        else:
            new = data.draw(st.sampled_from(["model", "residual", "repeat", "embed", "d", "heads",
                                             "0", "3", "1000000", "/", "//", "**", "-", "tie", "x"]))
        return text[:m.start()] + new + text[m.end():]
    i = data.draw(st.integers(0, len(lines) - 1))
    j = data.draw(st.integers(0, len(lines) - 1))
    if kind == "dup_line":
        lines.insert(j, lines[i])
    elif kind == "swap_lines":
        lines[i], lines[j] = lines[j], lines[i]
    else:
        del lines[i]
    return "\n".join(lines)


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_edits_raise_only_morph_errors(data):
    path = data.draw(st.sampled_from(SPECS))
    text = path.read_text()
    for _ in range(data.draw(st.integers(1, 2))):
        text = _edit(text, data)
    try:
        morphdsl.compile(text)
    except morphdsl.MorphError as e:
        assert e.message
        e.render()  # must not raise either


# ----------------------------------------------------------------------------- 3. printer
KEYWORDS = {"use", "spec", "block", "convex"}
names = st.from_regex(r"[a-z_][a-z0-9_]{0,5}", fullmatch=True).filter(lambda s: s not in KEYWORDS)
leaves = st.one_of(
    st.integers(0, 10**6).map(str),
    st.sampled_from(["1.5", "0.25", "3e-4", "2.0e+3", "1e5"]),
    names,
    st.lists(names, min_size=2, max_size=3).map(".".join),
    st.sampled_from(['"stories"', '"a b"', '"q\\"uote"', '"back\\\\slash"', '"line\\nbreak"', '""']),
)


def _compound(sub):
    binop = st.tuples(sub, st.sampled_from(["+", "-", "*", "/", "//", "%", "**"]), sub)
    return st.one_of(
        binop.map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
        binop.map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        sub.map(lambda s: f"-{s}"),
        sub.map(lambda s: f"({s})"),
        st.tuples(names, st.lists(sub, max_size=3)).map(lambda t: f"{t[0]}({', '.join(t[1])})"),
        st.lists(sub, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
    )


exprs = st.recursive(leaves, _compound, max_leaves=6)


def strip(node):
    """A parsed module as plain data, without spans (positions change when text is reformatted)."""
    if isinstance(node, dict):
        out = {k: strip(v) for k, v in node.items()
               if k not in ("span", "name_span", "source", "filename", "comments")}
        if "body" in out and out.get("args") == []:
            out["args"] = None  # `op()` prints as `op`
        return out
    if isinstance(node, list):
        return [strip(x) for x in node]
    return node


@settings(max_examples=100, deadline=None)
@given(exprs, st.lists(st.tuples(st.one_of(st.none(), names), exprs), max_size=3), names)
def test_printer_roundtrip(e, args, label):
    arglist = ", ".join(f"{k} = {v}" if k else v for k, v in sorted(args, key=lambda a: a[0] is not None))
    text = f"x = {e}\nmodel {{\n  {label}: op({arglist})  # trailing note\n}}\n"
    try:
        mod = parse(text)
    except morphdsl.MorphError:
        return  # e.g. `a.b(...)`: not every generated string is in the language
    out = format_text(text)
    assert format_text(out) == out
    assert strip(parse(out).model_dump()) == strip(mod.model_dump())
    assert "# trailing note" in out


if __name__ == "__main__":  # regenerate the goldens
    import os

    os.chdir(ROOT)
    gold = {}
    for f in sorted(ERRORS.glob("*.morph")):
        err = compile_error(f.relative_to(ROOT))
        if err is None:
            raise SystemExit(f"{f.name} compiles; every file in tests/errors must fail")
        gold[f.stem] = golden(err)
    (ERRORS / "expected.json").write_text(json.dumps(gold, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(gold)} goldens written to {ERRORS / 'expected.json'}")
