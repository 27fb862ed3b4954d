"""AST → canonical .morph text. Used by `morphc fmt` and by `emit`.

Canonical form: two-space indents, one statement per line, `key = value` with the `=` of a run
of settings aligned, empty argument lists dropped, minimal parentheses. Comments are kept
(own-line before the item they precede, trailing after it), and so is a single blank line
where the source had one. Printing is idempotent: fmt(fmt(x)) == fmt(x).
"""
from __future__ import annotations

import json

from . import ast as A

_PREC = {"+": 1, "-": 1, "*": 2, "/": 2, "//": 2, "%": 2, "**": 4}


def expr(e, parent_prec: int = 0, right: bool = False) -> str:
    if isinstance(e, A.Num):
        return e.text
    if isinstance(e, A.Str):
        return json.dumps(e.value, ensure_ascii=False)  # escapes quotes, backslashes, newlines
    if isinstance(e, A.Path):
        return e.dotted
    if isinstance(e, A.Neg):
        s = "-" + expr(e.operand, 3)
        return f"({s})" if parent_prec > 3 else s
    if isinstance(e, A.ListExpr):
        return "[" + ", ".join(expr(x) for x in e.items) + "]"
    if isinstance(e, A.FunCall):
        return f"{e.func}({args(e.args)})"
    if isinstance(e, A.BinOp):
        p = _PREC[e.op]
        if e.op == "**":  # right-associative
            s = f"{expr(e.left, p + 1)} ** {expr(e.right, p)}"
        else:
            s = f"{expr(e.left, p)} {e.op} {expr(e.right, p, right=True)}"
        need = p < parent_prec or (p == parent_prec and right)
        return f"({s})" if need else s
    raise TypeError(f"not an expression: {e!r}")


def args(items) -> str:
    return ", ".join((f"{a.name} = {expr(a.value)}" if a.name else expr(a.value)) for a in items)


def call(c: A.Call) -> str:
    return c.name + (f"({args(c.args)})" if c.args else "")


class _Printer:
    def __init__(self, comments):
        self.pending = sorted(comments, key=lambda c: (c.span.line, c.span.column))
        self.out: list[str] = []

    # --- comments
    def _take(self, pred):
        taken = [c for c in self.pending if pred(c)]
        self.pending = [c for c in self.pending if not pred(c)]
        return taken

    def flush_before(self, line: int, ind: str):
        for c in self._take(lambda c: c.span.line < line):
            self.out.append(ind + c.text)

    def trailing(self, line: int) -> str:
        t = self._take(lambda c: c.span.line == line)
        return ("  " + " ".join(c.text for c in t)) if t else ""

    # --- items
    def items(self, items, depth: int, end_line: int | None, top: bool = False):
        ind = "  " * depth
        prev = None
        align = _align_widths(items)
        for it in items:
            line = it.span.line if it.span else None
            if prev is not None and self._blank_between(prev, it, top):
                self.out.append("")
            if line is not None:
                self.flush_before(line, ind)
            self.item(it, depth, align.get(id(it)))
            prev = it
        if end_line is not None:
            self.flush_before(end_line, ind)

    def _blank_between(self, prev, it, top) -> bool:
        if prev.span and it.span:
            first = min([it.span.line] + [c.span.line for c in self.pending
                                          if prev.span.end_line < c.span.line < it.span.line])
            return first - prev.span.end_line > 1
        if not top:
            return False
        multi = lambda x: isinstance(x, (A.BlockDef,)) or (isinstance(x, A.Stmt) and x.body is not None)
        return multi(prev) or multi(it) or type(prev) is not type(it)

    def item(self, it, depth: int, key_width: int | None = None):
        ind = "  " * depth
        line = it.span.line if it.span else -1
        if isinstance(it, A.Entry):
            key = it.key.ljust(key_width or len(it.key))
            self.out.append(f"{ind}{key} = {expr(it.value)}" + self.trailing(line))
        elif isinstance(it, A.Use):
            self.out.append(f'{ind}use "{it.path}"' + self.trailing(line))
        elif isinstance(it, A.SpecName):
            self.out.append(f"{ind}spec {it.name}" + self.trailing(line))
        elif isinstance(it, A.Rule):
            acts = ", ".join(call(a) for a in it.actions)
            self.out.append(f"{ind}{call(it.trigger)} -> {acts}" + self.trailing(line))
        elif isinstance(it, A.BlockDef):
            mods = "".join(m + " " for m in it.modifiers)
            ps = ", ".join(p.name + (f" = {expr(p.default)}" if p.default is not None else "")
                           for p in it.params)
            self.body(f"{ind}{mods}block {it.name}({ps})", it.body, depth, it)
        elif isinstance(it, A.Stmt):
            mods = "".join(m + " " for m in it.modifiers)
            label = f"{it.label}: " if it.label else ""
            a = f"({args(it.args)})" if it.args else ""
            head = f"{ind}{mods}{label}{it.name}{a}"
            if it.body is None:
                self.out.append(head + self.trailing(line))
            else:
                self.body(head, it.body, depth, it)
        else:
            raise TypeError(f"cannot print {it!r}")

    def body(self, head: str, body, depth: int, node):
        line = node.span.line if node.span else -1
        end = node.span.end_line if node.span else None
        if not body and not any(end is not None and line < c.span.line < end for c in self.pending):
            self.out.append(head + " {}" + self.trailing(line))
            return
        self.out.append(head + " {" + self.trailing(line))
        self.items(body, depth + 1, end)
        self.out.append("  " * depth + "}" + (self.trailing(end) if end is not None else ""))


def _align_widths(items) -> dict:
    """Width of the key column for each run of consecutive entries (runs end at blank lines)."""
    out, run = {}, []

    def close():
        w = max((len(e.key) for e in run), default=0)
        for e in run:
            out[id(e)] = w
        run.clear()

    prev = None
    for it in items:
        if isinstance(it, A.Entry):
            if run and prev is not None and prev.span and it.span and it.span.line - prev.span.end_line > 1:
                close()
            run.append(it)
        else:
            close()
        prev = it
    close()
    return out


def format_module(mod: A.Module) -> str:
    """Canonical text of a parsed module, comments included."""
    p = _Printer(mod.comments)
    p.items(mod.items, 0, None, top=True)
    p.flush_before(10**9, "")
    return "\n".join(p.out).rstrip() + "\n"


def format_text(text: str, filename: str | None = None) -> str:
    from .parser import parse

    return format_module(parse(text, filename))
