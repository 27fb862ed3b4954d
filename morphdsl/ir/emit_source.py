"""The spec a graph was built from, for `emit`: its statements, expressions and comments.

A graph keeps its block definitions (AST) but not the rest of its source. When `g.filename`
still holds the spec the graph was built from — same parameters, same block definitions, the
model section at the same place — `recover` parses it again, so emission can reuse the user's
parameter entries, section settings, call arguments and comments. Anything else emits from the
graph alone (no comments).

Comments are kept by anchoring: each comment belongs to the statement on its line (a trailing
comment), the statement whose closing brace is on its line, or the next statement of its body
(an own-line comment; at the end of a body, the body's owner). A comment is kept when its anchor
is printed with its source span. `place_spans` first drops spans that would print out of source
order (a block copied by a rewrite, a definition from another file), so every kept comment
prints next to its statement.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..syntax import ast as A
from .emit_values import same

EMITTED = re.compile(r"^# (?P<name>\S+): emitted by morphdsl(?: after (?P<after>.*))?$")
_END = object()


@dataclass
class Source:
    module: A.Module
    stmts: dict = field(default_factory=dict)     # span -> Stmt of the model section (any depth)
    sections: dict = field(default_factory=dict)  # name -> top-level Stmt (model, data, ...)


def recover(g) -> Source | None:
    """The parsed spec file of `g`, if it is still the one `g` was built from."""
    from ..syntax.parser import parse_file
    from .elaborate import load_spec

    mod = g.source_module  # the parsed source kept by build (no disk read)
    if mod is None and (not g.filename or not Path(g.filename).is_file()):
        return None
    try:
        mod = mod if mod is not None else parse_file(g.filename)
        spec = load_spec(mod)
    except Exception:  # unreadable or no longer valid: emit from the graph alone
        return None
    model = spec.sections.get("model")
    if model is None or model.span != g.root.span or set(spec.params) != set(g.params) or \
            not all(same(spec.params[k], g.params[k]) for k in g.params) or \
            {n: b for n, (b, _) in spec.blocks.items()} != g.blocks:
        return None
    src = Source(mod, sections=dict(spec.sections))

    def walk(items):
        for s in items or []:
            if isinstance(s, A.Stmt):
                if s.span is not None:
                    src.stmts[s.span] = s
                walk(s.body)

    walk(model.body)
    return src


def _body(it):
    return it.body if isinstance(it, (A.Stmt, A.BlockDef)) else None


def strip_spans(items) -> None:
    for it in items:
        if hasattr(it, "span"):
            it.span = None
        if _body(it):
            strip_spans(_body(it))


def place_spans(items, filename) -> set:
    """Drop spans of another file, repeated spans and spans that would print before a span
    already printed; return the spans left."""
    used: set = set()
    last = [0]

    def visit(nodes):
        for it in nodes:
            sp = getattr(it, "span", None)
            if sp is not None:
                if sp.filename != filename or sp.line < last[0] or sp in used:
                    it.span = None
                else:
                    used.add(sp)
                    last[0] = sp.line
            if _body(it):
                visit(_body(it))
            if it.span is not None:
                last[0] = max(last[0], it.span.end_line)

    visit(items)
    return used


def _anchor(items, owner, line):
    for it in items:
        if it.span is not None and it.span.line == line:
            return it
    for it in items:
        sp = it.span
        if sp is not None and sp.line < line <= sp.end_line:
            if _body(it) is not None and line < sp.end_line:
                return _anchor(_body(it), it, line)
            return it
    nxt = [it for it in items if it.span is not None and it.span.line > line]
    if nxt:
        return min(nxt, key=lambda it: it.span.line)
    return owner if owner is not None else _END


def kept_comments(module: A.Module, used: set) -> list[A.Comment]:
    """The comments of `module` whose anchors print with their spans (see the module doc)."""
    out = []
    for c in module.comments:
        a = _anchor(module.items, None, c.span.line)
        if a is _END or a.span in used:
            out.append(c)
    return out
