"""Block definitions as `emit` uses them: their environments, binding, and call arguments.

`Blocks` holds the definitions the emitted spec will have — the graph's, with edited copies
replacing originals (emit_defs) — and re-elaborates instances and pyramids with them. An
imported definition whose free names would mean something else in the emitted file (its own
file's parameters) is `localize`d: those names are replaced by their values, so it can be
defined and called there. `call_args` writes the arguments of a call.
"""
from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

from ..syntax import ast as A
from .args import bind_params
from .elaborate import Elaborator
from .emit_values import MISSING, expr_for, literal, same, value_of
from .pyramid import expand_pyramid

_NOSPAN = SimpleNamespace(span=None)


class Blocks:
    """The definitions `emit` may call, their environments, and re-elaboration."""

    def __init__(self, g):
        self.params = dict(g.params)
        envs = getattr(g, "block_env", {}) or {}
        self.defs: dict[str, A.BlockDef] = {}
        self.genv: dict[str, dict] = {}
        for n, d in g.blocks.items():
            env = envs.get(n, self.params)
            if not all((k in env) == (k in self.params) and (k not in env or same(env[k], self.params[k]))
                       for k in free_names(d)):
                d, env = localize(d, env, self.params), self.params
            self.defs[n], self.genv[n] = d, env
        self.edited: set[str] = set()

    def callable(self, name) -> bool:
        return name in self.defs

    def _elab(self):
        blocks = {n: (d, self.genv[n]) for n, d in self.defs.items()}
        return Elaborator(SimpleNamespace(blocks=blocks, params=self.params))

    def complete(self, name, bound: dict):
        """`bound` with the defaults filled in (a rewrite may record only the given arguments)."""
        bdef = self.defs[name]
        if all(p.name in bound for p in bdef.params):
            return dict(bound)
        return bind(bdef, bound, self.genv[name])

    def instance(self, name, bound, label, names, convex):
        """What `[label:] name(bound)` elaborates to in a scope already holding `names`."""
        try:
            stmt = A.Stmt(name=name, label=label)
            return self._elab().instance(stmt, {}, set(names), convex, bound=dict(bound))
        except Exception:  # any failure (bad values, a missing parameter): not this block
            return None

    def pyramid(self, label, block, width, levels, convex):
        if block not in self.defs:
            return None
        try:
            return expand_pyramid(self._elab(), label, block, width, levels, None, convex)
        except Exception:
            return None


def free_names(bdef: A.BlockDef) -> set:
    """Names a definition's expressions use that are not its parameters."""
    out: set = set()

    def expr(e):
        if isinstance(e, A.Path) and len(e.parts) == 1:
            out.add(e.parts[0])
        for sub in (getattr(e, "left", None), getattr(e, "right", None), getattr(e, "operand", None)):
            if sub is not None:
                expr(sub)
        for x in getattr(e, "items", None) or []:
            expr(x)
        for a in getattr(e, "args", None) or []:
            expr(a.value)

    def walk(items):
        for s in items or []:
            if isinstance(s, A.Stmt):
                for a in s.args or []:
                    expr(a.value)
                walk(s.body)

    for p in bdef.params:
        if p.default is not None:
            expr(p.default)
    walk(bdef.body)
    return out - {p.name for p in bdef.params}


def localize(bdef: A.BlockDef, genv: dict, params: dict) -> A.BlockDef:
    """A copy of `bdef` whose free names are replaced by their values in `genv` (a symbol that
    would be captured by a parameter of `params` becomes a string)."""
    own = {p.name for p in bdef.params}

    def sub(e):
        if isinstance(e, A.Path) and len(e.parts) == 1 and e.parts[0] not in own:
            n = e.parts[0]
            if n in genv:
                return literal(genv[n], params)
            return A.Str(value=n) if n in params else e
        if isinstance(e, A.BinOp):
            return e.model_copy(update={"left": sub(e.left), "right": sub(e.right)})
        if isinstance(e, A.Neg):
            return e.model_copy(update={"operand": sub(e.operand)})
        if isinstance(e, A.ListExpr):
            return e.model_copy(update={"items": [sub(x) for x in e.items]})
        if isinstance(e, A.FunCall):
            return e.model_copy(update={"args": [a.model_copy(update={"value": sub(a.value)}) for a in e.args]})
        return e

    def walk(items):
        for s in items or []:
            if isinstance(s, A.Stmt):
                s.args = [a.model_copy(update={"value": sub(a.value)}) for a in s.args] if s.args else s.args
                walk(s.body)

    new = bdef.model_copy(deep=True)
    for p in new.params:
        if p.default is not None:
            p.default = sub(p.default)
    walk(new.body)
    return new


def bind(bdef: A.BlockDef, kw: dict, genv: dict):
    """The full binding of keyword arguments `kw` (defaults evaluated), or None if it fails."""
    try:
        return bind_params(bdef, [], dict(kw), defaultdict(lambda: _NOSPAN), _NOSPAN, genv)
    except Exception:
        return None


def body_stmts(bdef: A.BlockDef) -> dict:
    """Every statement of a block body, at any depth, by its span."""
    out = {}

    def walk(items):
        for s in items or []:
            if isinstance(s, A.Stmt):
                if s.span is not None:
                    out[s.span] = s
                walk(s.body)

    walk(bdef.body)
    return out


def kwarg(stmt: A.Stmt | None, key: str):
    for a in (stmt.args or []) if stmt is not None else []:
        if a.name == key:
            return a
    return None


def call_args(bdef: A.BlockDef, bound: dict, genv: dict, env: dict, src: A.Stmt | None = None) -> list:
    """Arguments of a call of `bdef` that bind to exactly `bound` when evaluated in `env`: the
    spec's own arguments if they still do, else the fewest keyword arguments (a parameter whose
    default gives its value is left out), each written with `expr_for`."""
    names = [p.name for p in bdef.params]
    given = {}
    if src is not None:
        for i, a in enumerate(src.args or []):
            k = a.name if a.name is not None else (names[i] if i < len(names) else None)
            if k is not None:
                given[k] = a.value
        vals = {k: value_of(e, env) for k, e in given.items()}
        full = bind(bdef, vals, genv) if all(v is not MISSING for v in vals.values()) else None
        if full is not None and all(same(full.get(k, MISSING), bound[k]) for k in names):
            return [a.model_copy(deep=True) for a in src.args or []]
    explicit = {p.name: bound[p.name] for p in bdef.params if p.default is None}
    for _ in range(len(names) + 1):
        full = bind(bdef, explicit, genv)
        wrong = [k for k in names if full is None or not same(full.get(k, MISSING), bound[k])]
        if not wrong:
            break
        explicit[wrong[0]] = bound[wrong[0]]
    return [A.Arg(name=k, value=expr_for(bound[k], env, given.get(k), key=k)) for k in names if k in explicit]
