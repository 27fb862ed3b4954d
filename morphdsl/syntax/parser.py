"""Text → AST. A lark LALR(1) parser with positions; parse errors become `MorphError`s."""
from __future__ import annotations

import functools
import json
from pathlib import Path as _FsPath

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import (UnexpectedCharacters, UnexpectedInput, UnexpectedToken,
                             VisitError)

from ..errors import MorphError, Span, SyntaxError_
from ..limits import MAX_EXPR_DEPTH, MAX_INT, MAX_NESTING, MAX_SOURCE_BYTES
from . import ast as A
from .source import SourceError, read_source

_FRIENDLY = {
    "NAME": "a name", "INT": "an integer", "FLOAT": "a number", "STRING": "a string",
    "LPAR": "`(`", "RPAR": "`)`", "LBRACE": "`{`", "RBRACE": "`}`", "LSQB": "`[`",
    "RSQB": "`]`", "COMMA": "`,`", "COLON": "`:`", "EQUAL": "`=`", "DOT": "`.`",
    "PLUS": "`+`", "MINUS": "`-`", "STAR": "`*`", "SLASH": "`/`", "PERCENT": "`%`",
    "__ANON_0": "`->`", "__ANON_1": "`//`", "__ANON_2": "`**`", "CONVEX": "`convex`",
    "$END": "end of file", "USE": "`use`", "SPEC": "`spec`", "BLOCK": "`block`",
}


def _grammar_text() -> str:
    here = _FsPath(__file__).parent
    for cand in (here / "morph.lark", here.parents[1] / "grammars" / "morph.lark"):
        if cand.exists():
            return cand.read_text(encoding="utf-8")
    raise FileNotFoundError("grammars/morph.lark not found")  # packaging bug, not user error


@functools.lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(_grammar_text(), parser="lalr", propagate_positions=True,
                maybe_placeholders=False, cache=False)


def _span(meta_or_tok, filename) -> Span:
    m = meta_or_tok
    if isinstance(m, Token):
        return Span(filename, m.line, m.column, m.end_line, m.end_column)
    if getattr(m, "empty", False):
        return Span(filename, 1, 1, 1, 1)
    return Span(filename, m.line, m.column, m.end_line, m.end_column)


class _Args(list):
    """Arguments `( ... )` of a statement (tagged so they are not confused with a body)."""


class _Body(list):
    """Items `{ ... }` of a statement or block."""


@v_args(meta=True)
class _ToAst(Transformer):
    def __init__(self, filename):
        super().__init__()
        self.filename = filename

    def sp(self, meta):
        return _span(meta, self.filename)

    # --- expressions
    def int(self, meta, c):
        text = str(c[0])
        if len(text.lstrip("0")) > 19 or int(text) > MAX_INT:
            raise SyntaxError_(f"integer `{_short(text)}` is too large", self.sp(meta),
                               hint="integers are 64-bit (at most 2**63 - 1)")
        return A.Num(value=int(text), text=text, span=self.sp(meta))

    def float(self, meta, c):
        v = float(str(c[0]))
        if v == float("inf"):
            raise SyntaxError_(f"number `{_short(str(c[0]))}` is too large", self.sp(meta),
                               hint="numbers are 64-bit floats (at most about 1.8e308)")
        return A.Num(value=v, text=str(c[0]), span=self.sp(meta))

    def string(self, meta, c):
        return A.Str(value=_string(c[0], self.sp(meta)), span=self.sp(meta))

    def path(self, meta, c):
        return A.Path(parts=[str(t) for t in c], span=self.sp(meta))

    def funcall(self, meta, c):
        return A.FunCall(func=str(c[0]), args=list(c[1]) if len(c) > 1 else [], span=self.sp(meta))

    def list(self, meta, c):
        return A.ListExpr(items=list(c), span=self.sp(meta))

    def _bin(op):
        def f(self, meta, c):
            return A.BinOp(op=op, left=c[0], right=c[1], span=self.sp(meta))
        return f

    add, sub, mul, div = _bin("+"), _bin("-"), _bin("*"), _bin("/")
    floordiv, mod, pow = _bin("//"), _bin("%"), _bin("**")

    def neg(self, meta, c):
        return A.Neg(operand=c[0], span=self.sp(meta))

    # --- arguments
    def kwarg(self, meta, c):
        return A.Arg(name=str(c[0]), value=c[1], span=self.sp(meta))

    def posarg(self, meta, c):
        return A.Arg(name=None, value=c[0], span=self.sp(meta))

    def args(self, meta, c):
        return _Args(c)

    def body(self, meta, c):
        return _Body(c)

    def modifier(self, meta, c):
        return str(c[0])

    # --- items
    def use(self, meta, c):
        return A.Use(path=_string(c[0], self.sp(meta)), span=self.sp(meta))

    def spec(self, meta, c):
        return A.SpecName(name=str(c[0]), span=self.sp(meta))

    def param(self, meta, c):
        return A.Param(name=str(c[0]), default=c[1] if len(c) > 1 else None, span=self.sp(meta))

    def params(self, meta, c):
        return list(c)

    def blockdef(self, meta, c):
        mods = [x for x in c if isinstance(x, str) and not isinstance(x, Token)]
        rest = c[len(mods):]
        return A.BlockDef(name=str(rest[0]), params=rest[1], body=list(rest[2]), modifiers=mods,
                          span=self.sp(meta))

    def entry(self, meta, c):
        return A.Entry(key=str(c[0]), value=c[1], span=self.sp(meta))

    def call(self, meta, c):
        return A.Call(name=str(c[0]), args=list(c[1]) if len(c) > 1 else None, span=self.sp(meta))

    def rule(self, meta, c):
        return A.Rule(trigger=c[0], actions=list(c[1:]), span=self.sp(meta))

    def stmt(self, meta, c):
        c = list(c)
        mods = []
        while c and isinstance(c[0], str) and not isinstance(c[0], Token):
            mods.append(c.pop(0))
        names = [x for x in c if isinstance(x, Token)]
        label = str(names[0]) if len(names) == 2 else None
        name_tok = names[-1]
        args = next((list(x) for x in c if isinstance(x, _Args)), None)
        body = next((list(x) for x in c if isinstance(x, _Body)), None)
        return A.Stmt(label=label, name=str(name_tok), args=args, body=body, modifiers=mods,
                      span=self.sp(meta), name_span=_span(name_tok, self.filename))

    def start(self, meta, c):
        return list(c)


def _short(text: str, n: int = 24) -> str:
    return text if len(text) <= n else f"{text[:n]}... ({len(text)} characters)"


def _string(tok, span) -> str:
    """A string literal's value (JSON escapes), or a located error for a bad escape."""
    try:
        return json.loads(str(tok))
    except ValueError:
        raise SyntaxError_("bad escape in a string", span,
                           hint='strings take JSON escapes: \\" \\\\ \\n \\t \\uXXXX') from None


_BODY = {"body", "params"}
_EXPR = {"add", "sub", "mul", "div", "floordiv", "mod", "pow", "neg", "funcall", "list", "args"}


def check_depth(tree, filename) -> None:
    """Refuse trees nested past the limits (before any recursive pass walks them)."""
    stack = [(tree, 0, 0)]
    while stack:
        t, nb, ne = stack.pop()
        nb += t.data in _BODY
        ne += t.data in _EXPR
        if nb > MAX_NESTING or ne > MAX_EXPR_DEPTH:
            what = ("`{ }` bodies", MAX_NESTING) if nb > MAX_NESTING else ("an expression", MAX_EXPR_DEPTH)
            hint = ("define a block for the inner part, or use `repeat`" if nb > MAX_NESTING
                    else "split the expression into named parameters")
            raise SyntaxError_(f"{what[0]} nested more than {what[1]} deep", _span(t.meta, filename),
                               hint=hint)
        stack.extend((k, nb, ne) for k in t.children if isinstance(k, Tree))


def _describe(tok) -> str:
    if tok is None or tok.type == "$END":
        return "end of file"
    return f"`{tok}`"


def _expected(exp) -> str:
    names = sorted({_FRIENDLY.get(e, f"`{e}`" if not e.startswith("__") else e) for e in exp})
    if len(names) > 6:
        names = names[:6] + ["..."]
    return ", ".join(names)


def _syntax_error(e: UnexpectedInput, text: str, filename) -> SyntaxError_:
    line, col = getattr(e, "line", 1) or 1, getattr(e, "column", 1) or 1
    if isinstance(e, UnexpectedToken):
        tok = e.token
        if tok.type == "$END":
            lines = text.splitlines() or [""]
            line, col = len(lines), len(lines[-1]) + 1
            span = Span(filename, line, col, line, col + 1)
            msg = f"unexpected end of file; expected {_expected(e.expected)}"
            hint = ("a `{` may be missing its `}`" if "RBRACE" in e.expected
                    else "the file ends in the middle of a statement")
        else:
            span = Span(filename, tok.line, tok.column, tok.end_line or tok.line,
                        tok.end_column or tok.column + 1)
            msg = f"unexpected {_describe(tok)}; expected {_expected(e.expected)}"
            hint = _hint_for(tok, e.expected, text)
    elif isinstance(e, UnexpectedCharacters):
        ch = text[e.pos_in_stream] if e.pos_in_stream < len(text) else "?"
        span = Span(filename, line, col, line, col + 1)
        msg = (f"unexpected character `{ch}`" if ch.isprintable() else
               f"unexpected character U+{ord(ch):04X} (an invisible or control character)")
        hint = {"'": "strings use double quotes", ";": "statements need no `;`; put each on its own line",
                "=": "did you mean `=` with a name before it?",
                '"': "a string is missing its closing `\"` (strings end on the same line)"}.get(ch)
    else:  # UnexpectedEOF
        lines = text.splitlines() or [""]
        span = Span(filename, len(lines), len(lines[-1]) + 1, len(lines), len(lines[-1]) + 2)
        msg = "unexpected end of file"
        hint = "a `{` may be missing its `}`"
    return SyntaxError_(msg, span, hint=hint, source=text)


def _hint_for(tok, expected, text="") -> str | None:
    exp = set(expected)
    lines = text.splitlines()
    first_on_line = 0 < tok.line <= len(lines) and not lines[tok.line - 1][:tok.column - 1].strip()
    if tok.type == "EQUAL" and "RPAR" in exp:
        return "arguments are `key = value`; the key must be a plain name"
    if tok.type in ("INT", "FLOAT", "STRING") and exp == {"NAME"}:
        return "a layer is `name: op(...)`; a parameter is `name = value`"
    if "RPAR" in exp and first_on_line and tok.type not in ("RPAR", "RBRACE"):
        return "a `(` on an earlier line may be missing its `)`"
    if tok.type == "EQUAL" and "COLON" in exp:
        return "name a layer with `name: op(...)`; `=` defines a parameter"
    if tok.type == "COLON" and "EQUAL" in exp:
        return "parameters are written `name = value`"
    if tok.type == "RBRACE" and "RPAR" in exp:
        return "a `(` is missing its `)`"
    if tok.type in ("RPAR", "RSQB", "RBRACE"):
        return f"`{tok}` has no matching opening bracket"
    if "RPAR" in exp and "COMMA" in exp:
        return "separate arguments with `,`"
    if tok.type == "EQUAL" and "RPAR" in exp:
        return "arguments are `key = value`; the key must be a plain name"
    return None


def parse(text: str, filename: str | None = None) -> A.Module:
    """Parse .morph source text into an AST `Module` (comments kept for the formatter)."""
    if len(text) > MAX_SOURCE_BYTES:
        raise SyntaxError_(f"the spec is {len(text):,} characters; a spec is limited to "
                           f"{MAX_SOURCE_BYTES // 2**10} Ki characters", Span(filename, 1, 1, 1, 2),
                           hint="split it: blocks can live in other files, imported with `use`")
    comments: list[A.Comment] = []
    try:
        tree = _parse_collecting(text, comments, filename)
    except UnexpectedInput as e:
        raise _syntax_error(e, text, filename) from None
    try:
        check_depth(tree, filename)
        items = _ToAst(filename).transform(tree)
    except VisitError as e:  # a located error raised by a transformer callback
        if isinstance(e.orig_exc, MorphError):
            raise e.orig_exc.with_source(text) from None
        raise
    except MorphError as e:
        raise e.with_source(text) from None
    return A.Module(items=items, comments=comments, filename=filename, source=text)


def _parse_collecting(text, comments, filename):
    import re

    # string literals are matched first, so a `#` inside one is not a comment
    line, pos = 1, 0  # line number at `pos`, counted forward (linear in the text)
    for m in re.finditer(r'"([^"\\\n]|\\.)*"|#[^\n]*', text):
        if m.group(0).startswith('"'):
            continue
        line += text.count("\n", pos, m.start())
        pos = m.start()
        line_start = text.rfind("\n", 0, m.start()) + 1
        col = m.start() - line_start + 1
        comments.append(A.Comment(text=m.group(0).rstrip(),
                                  span=Span(filename, line, col, line, col + len(m.group(0)))))
    return _parser().parse(text)


def parse_file(path, span: Span | None = None, shown: str | None = None) -> A.Module:
    """Read and parse a spec file; an unreadable file is an error at `span` (e.g. its `use`),
    naming the file as `shown`."""
    try:
        text = read_source(path, shown, binary_ok=False)
    except SourceError as e:
        e.span = span
        raise
    return parse(text, filename=str(path))
