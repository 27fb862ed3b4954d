"""Region tree -> statements. Every statement is checked to elaborate back to its region.

- a block-instance region that its (possibly edited) definition still makes, in that scope,
  is written as the call `[label:] B(args)` (`emit_match`); one that diverged is inlined;
- a pyramid that `pyramid(block, width, levels)` still expands to is written as that;
- a group of copies `0..n-1` whose bodies print the same is `label: repeat(n) { body }`,
  otherwise the copies are written one by one as numbered groups `0 { } 1 { }`;
- an unnamed group (an unnamed block instance, a branch wrapper) is transparent: its layers are
  written in the enclosing scope. Where one statement is needed (a parallel branch, a `convex`
  instance) or a group's name cannot be written as `name { }` (an op or block name), a
  parameterless block is defined for it (`block Block_1() { ... }`, `Block_1` at the use).
Labels are written unless the elaborator's auto-name gives the same name in that scope.
Expressions come from the spec where they still give the value (emit_values.expr_for).
"""
from __future__ import annotations

import copy

from ..ops import get_op
from ..syntax import ast as A
from ..syntax.printer import format_module
from .elaborate import CONSTRUCTS
from .emit_blocks import Blocks, body_stmts, call_args, kwarg
from .emit_match import alike, claimed, rebind
from .emit_source import strip_spans
from .emit_values import expr_for, literal, same, value_of
from .graph import OpInst, Region

_RESERVED = {"use", "spec", "block", "convex"}


def _canon(body) -> str:
    body = copy.deepcopy(body)
    strip_spans(body)
    return format_module(A.Module(items=body)) if body else ""


class TreeEmitter:
    def __init__(self, blocks: Blocks, env: dict, source=None, calls: bool = True):
        self.blocks, self.env, self.calls = blocks, env, calls
        self.src = source.stmts if source is not None else {}
        self.def_stmts = {}
        for d in blocks.defs.values():
            self.def_stmts.update(body_stmts(d))
        self.new_defs: list[A.BlockDef] = []
        self._synth: dict = {}

    # ------------------------------------------------------------------ helpers
    def _src(self, it, ok) -> A.Stmt | None:
        s = self.src.get(it.span) if it.span is not None else None
        return s if s is not None and ok(s) else None

    def _mods(self, convex) -> list[str]:
        return ["convex"] if convex else []

    def _taken(self, name) -> bool:
        return (name in self.blocks.defs or name in self._synth.values() or name in CONSTRUCTS
                or get_op(name) is not None or name in _RESERVED)

    def group_name_ok(self, name: str) -> bool:
        """`name { }` elaborates to a group named `name` (not an op, block or construct)."""
        return name.isdigit() or (name.isidentifier() and not self._taken(name))

    # ------------------------------------------------------------------ sequences
    def seq(self, children, names: set) -> list:
        out = []
        for it in children:
            if isinstance(it, Region) and it.kind == "group" and it.name is None and not it.convex:
                s = self._call(it, names)
                if s is not None:
                    out.append(s)
                else:
                    out.extend(self.seq(it.children, names))  # transparent: layers in this scope
            else:
                out.append(self.one(it, names))
            names |= claimed(it)
        return out

    def one(self, it, names: set) -> A.Stmt:
        """One statement that elaborates to `it` in a scope holding `names`."""
        if isinstance(it, OpInst):
            return self.op(it, names)
        mods = self._mods(it.convex)
        if it.kind == "group":
            return self.group(it, names)
        inner = set() if it.name else names
        src = self._src(it, lambda s: s.label == it.name and s.name == it.kind)
        span = src.span if src is not None else None
        if it.kind == "residual":
            return A.Stmt(label=it.name, name="residual", body=self.seq(it.children, inner), modifiers=mods,
                          span=span)
        if it.kind == "partition":
            e = expr_for(it.attrs["lanes"], self.env, (src.args[0].value if src and src.args else None))
            return A.Stmt(label=it.name, name="partition", args=[A.Arg(name="lanes", value=e)],
                          body=self.seq(it.children, inner), modifiers=mods, span=span)
        if it.kind == "seed":
            args = [A.Arg(name="stage", value=literal(it.attrs["stage"], self.env))]
            if it.attrs["stage"] == "blending":
                args.append(A.Arg(name="alpha", value=expr_for(float(it.attrs["alpha"]), self.env)))
            return A.Stmt(label=it.name, name="seed", args=args, body=self.seq(it.children, set()),
                          modifiers=mods, span=span)
        if it.kind == "parallel":
            args = [A.Arg(name="join", value=literal(it.attrs["join"], self.env))]
            if it.attrs.get("split"):
                args.append(A.Arg(name="split", value=expr_for(len(it.children), self.env)))
            body = []
            for br in it.children:
                body.append(self.one(br, inner))
                inner |= claimed(br)
            return A.Stmt(label=it.name, name="parallel", args=args, body=body, modifiers=mods, span=span)
        raise ValueError(f"cannot emit region kind {it.kind}")

    # ------------------------------------------------------------------ ops
    def op(self, it: OpInst, names) -> A.Stmt:
        src = self._src(it, lambda s: s.name == it.op and s.label in (None, it.name) and s.body is None)
        here = src or self.def_stmts.get(it.span)
        auto = it.name == it.op and it.op not in names  # `op` alone is auto-named `it.name` here
        label = None if auto and not (here is not None and here.label == it.name) else it.name
        args = []
        for k, v in it.args.items():
            a = kwarg(here, k)
            e = a.value if a is not None else None
            if e is not None and src is None and not self._same_value(e, v):
                e = None  # a definition's expression is only reused where it gives the value
            args.append(A.Arg(name=k, value=expr_for(v, self.env, e, key=k)))
        return A.Stmt(label=label, name=it.op, args=args or None, modifiers=self._mods(it.convex),
                      span=src.span if src is not None else None)

    def _same_value(self, e, v) -> bool:
        return same(value_of(e, self.env), v)

    # ------------------------------------------------------------------ groups
    def group(self, it: Region, names) -> A.Stmt:
        s = self._call(it, names)
        if s is None and self.calls and "pyramid" in it.attrs:
            s = self.pyramid(it)
        if s is not None:
            return s
        if it.name is None:
            if len(it.children) == 1 and not it.convex:
                return self.one(it.children[0], names)
            return self.synthetic(it, names)
        kids = it.children
        if kids and all(isinstance(k, Region) and k.kind == "group" and k.name == str(i)
                        for i, k in enumerate(kids)):
            return self.repeat(it)
        return self.named(it, self.seq(kids, set()))

    def named(self, it: Region, body) -> A.Stmt:
        if not self.group_name_ok(it.name):
            return self.synthetic(it, set(), body)
        src = self._src(it, lambda s: s.label == it.name or (s.label is None and s.name == it.name))
        return A.Stmt(name=it.name, body=body, modifiers=self._mods(it.convex), span=src.span if src else None)

    def synthetic(self, it: Region, names, body=None) -> A.Stmt:
        """`[label:] Name` with a new parameterless block `Name` holding the region's layers."""
        if body is None:
            body = self.seq(it.children, set() if it.name else set(names))
        base = it.attrs["block"][0] if "block" in it.attrs else "Group"
        key = (base, _canon(body))
        if key not in self._synth:
            i = 1
            while self._taken(f"{base}_{i}") or f"{base}_{i}" in self.env:
                i += 1
            self._synth[key] = f"{base}_{i}"
            self.new_defs.append(A.BlockDef(name=self._synth[key], params=[], body=body))
        return A.Stmt(label=it.name, name=self._synth[key], modifiers=self._mods(it.convex))

    def repeat(self, it: Region) -> A.Stmt:
        bodies = [self.copy_body(c) for c in it.children]
        texts = {(_canon(b), cv) for b, cv in bodies}
        if len(texts) == 1 and not bodies[0][1] and bodies[0][0] and it.name.isidentifier() \
                and it.name not in _RESERVED:
            src = self._src(it, lambda s: s.label == it.name and s.name == "repeat")
            e = src.args[0].value if src is not None and src.args and src.args[0].name in (None, "n") else None
            return A.Stmt(label=it.name, name="repeat", args=[A.Arg(value=expr_for(len(bodies), self.env, e))],
                          body=bodies[0][0], modifiers=self._mods(it.convex), span=src.span if src else None)
        body = [A.Stmt(name=c.name, body=b, modifiers=self._mods(cv)) for c, (b, cv) in zip(it.children, bodies)]
        return self.named(it, body)

    def copy_body(self, c: Region):
        """(statements, convex) of one copy `i { ... }` of a repeat."""
        if "block" in c.attrs:  # the copy is itself an instance (insert_block(block = B))
            view = Region("group", c.children, name=None, attrs=c.attrs, convex=c.convex, span=c.span)
            s = self._call(view, set())
            if s is not None:
                return [s], False
        return self.seq(c.children, set()), bool(c.convex)

    # ------------------------------------------------------------------ calls
    def _call(self, it: Region, names) -> A.Stmt | None:
        """`[label:] B(args)` if block B still elaborates to `it` here (see emit_match)."""
        if not self.calls or "block" not in it.attrs:
            return None
        name, bound = it.attrs["block"]
        if not self.blocks.callable(name):
            return None
        res = rebind(self.blocks, name, bound, it, names, it.name)
        if res is None or res[1]:
            return None
        bdef = self.blocks.defs[name]
        src = self._src(it, lambda s: s.name == name and s.label == it.name and s.body is None)
        args = call_args(bdef, res[0], self.blocks.genv[name], self.env, src)
        mods = self._mods(it.convex and "convex" not in bdef.modifiers)
        return A.Stmt(label=it.name, name=name, args=args or None, modifiers=mods, span=src.span if src else None)

    def pyramid(self, it: Region) -> A.Stmt | None:
        info = it.attrs["pyramid"]
        block, w, k = info["block"], info["width"], info["levels"]
        if not self.blocks.callable(block) or not alike(self.blocks.pyramid(it.name, block, w, k, it.convex), it):
            return None
        src = self._src(it, lambda s: s.label == it.name and s.name == "pyramid")
        args = [A.Arg(name="block", value=literal(block, self.env))]
        for key, v in (("width", w), ("levels", k)):
            a = kwarg(src, key)
            args.append(A.Arg(name=key, value=expr_for(v, self.env, a.value if a else None)))
        return A.Stmt(label=it.name, name="pyramid", args=args, modifiers=self._mods(it.convex),
                      span=src.span if src else None)
