"""AST → region tree: parameters, imports, blocks, repeats, pyramids, argument validation."""
from __future__ import annotations

from pathlib import Path as FsPath
from ..errors import Span, SpecError, did_you_mean
from ..limits import MAX_NESTING, MAX_NODES, MAX_PYRAMID_LEVELS, fmt_count
from ..ops import REGISTRY, get_op, user_ops
from ..syntax import ast as A
from ..syntax.parser import parse_file
from .args import bind_params, validate_args
from .evaluate import Symbol, evaluate
from .graph import OpInst, Region

CONSTRUCTS = {"residual", "parallel", "partition", "repeat", "pyramid", "seed"}
SECTIONS = {"model", "data", "train", "grow", "evolve"}
JOINS = {"concat", "add", "mean", "max", "mul", "sub", "div"}


class Spec:
    """A parsed, imported and evaluated spec, ready to build into a graph."""

    def __init__(self, module: A.Module):
        self.module = module
        self.filename = module.filename
        self.name = FsPath(module.filename).stem if module.filename else "spec"
        self.params: dict = {}
        self.blocks: dict[str, tuple[A.BlockDef, dict]] = {}
        self.sections: dict[str, A.Stmt] = {}


def load_spec(module: A.Module, _stack: tuple = ()) -> Spec:
    spec = Spec(module)
    base = FsPath(module.filename).parent if module.filename else FsPath(".")
    for it in module.items:
        if isinstance(it, A.Use):
            path = _use_path(base, it)
            here = str(FsPath(module.filename or "").resolve())
            if str(path) in _stack or (module.filename and str(path) == here):
                chain = " -> ".join(FsPath(p).name for p in (*_stack, here, str(path)))
                raise SpecError(f"import cycle: {chain}", it.span, hint="remove one of the `use` lines")
            if not path.exists():
                raise SpecError(f"cannot find `{it.path}`", it.span,
                                hint=f"paths are relative to {base}")
            sub = load_spec(parse_file(path, it.span, it.path), _stack + (here,))
            spec.blocks.update(sub.blocks)
        elif isinstance(it, A.SpecName):
            spec.name = it.name
        elif isinstance(it, A.Entry):
            if it.key in spec.params:
                raise SpecError(f"parameter `{it.key}` is defined twice", it.span,
                                hint="parameters cannot be reassigned; use another name")
            spec.params[it.key] = evaluate(it.value, spec.params)
        elif isinstance(it, A.BlockDef):
            if it.name in spec.blocks and spec.blocks[it.name][0].span != it.span:
                raise SpecError(f"block `{it.name}` is defined twice", it.span,
                                hint="rename one of the two definitions")
            if it.name in REGISTRY or it.name in CONSTRUCTS:
                raise SpecError(f"block `{it.name}` has the name of a built-in op", it.span,
                                hint="choose another name (blocks are usually Capitalised)")
            spec.blocks[it.name] = (it, spec.params)
        elif isinstance(it, A.Stmt):
            if it.name not in SECTIONS or it.body is None or it.label:
                hint = did_you_mean(it.name, SECTIONS) or "layers belong inside `model { }`"
                raise SpecError(f"unexpected `{it.name}` at top level", it.name_span or it.span, hint=hint)
            if it.name in spec.sections:
                raise SpecError(f"section `{it.name}` appears twice", it.span)
            spec.sections[it.name] = it
        elif isinstance(it, A.Rule):
            raise SpecError("growth rules belong inside `grow { }`", it.span,
                            hint="e.g. `grow { step(200) -> add_head(blocks.0.attn, n = 1) }`")
    if "model" not in spec.sections and not _stack:
        raise SpecError("no `model { }` section", Span(module.filename, 1, 1, 1, 1),
                        hint="add `model { ... }` with the layers")
    return spec


def _use_path(base: FsPath, it: A.Use) -> FsPath:
    """The resolved path of a `use`, or a located error for a path that cannot name a file."""
    if "\x00" in it.path or not it.path.strip():
        raise SpecError("`use` needs a file name" if not it.path.strip() else
                        "the `use` path holds a NUL byte", it.span,
                        hint='e.g. `use "blocks.morph"` (relative to this file)')
    try:
        path = (base / it.path).resolve()
        path.exists()
    except (OSError, ValueError, RuntimeError) as e:  # too long, a symlink loop, ...
        raise SpecError(f"cannot use `{it.path[:80]}`: {getattr(e, 'strerror', None) or e}", it.span,
                        hint="paths are relative to the file that has the `use`") from None
    return path


def settings(stmt: A.Stmt | None, env: dict, spans: dict | None = None) -> dict:
    """The `key = value` entries of a data/train section, evaluated (their spans into `spans`)."""
    out = {}
    if stmt is None:
        return out
    for it in stmt.body:
        if not isinstance(it, A.Entry):
            hint = "growth rules belong in `grow { }`" if isinstance(it, A.Rule) else None
            raise SpecError(f"`{stmt.name}` holds settings (`key = value`)", it.span, hint=hint)
        v = evaluate(it.value, env)
        out[it.key] = str(v) if isinstance(v, Symbol) else v
        if spans is not None:
            spans[it.key] = it.span
    return out


class Elaborator:
    def __init__(self, spec: Spec):
        self.spec = spec
        self.nodes = 0      # ops and regions made so far (MAX_NODES)
        self.depth = 0      # statements being elaborated, one inside another (MAX_NESTING)
        self.active: list[str] = []  # block instances being elaborated, outermost first

    def count(self, n: int, span) -> None:
        """Account for `n` more ops/regions; refuse a model past MAX_NODES before it is built."""
        self.nodes += n
        if self.nodes > MAX_NODES:
            raise SpecError(f"the model has more than {fmt_count(MAX_NODES)} ops and regions", span,
                            hint="check the counts of `repeat` and `pyramid(levels)`; "
                                 f"models are limited to {fmt_count(MAX_NODES)} elaborated nodes")

    # ------------------------------------------------------------------ bodies
    def body(self, items, env, names: set) -> list:
        out = []
        for it in items:
            if isinstance(it, A.Entry):
                v = it.value
                op = v.func if isinstance(v, A.FunCall) else (v.dotted if isinstance(v, A.Path) else None)
                hint = (f"name a layer with `{it.key}: {op}(...)`" if op in REGISTRY or op in self.spec.blocks
                        else "parameters belong at the top of the file or in a block's parameter list")
                raise SpecError(f"`{it.key} = ...` defines a parameter, not a layer", it.span, hint=hint)
            if not isinstance(it, A.Stmt):
                raise SpecError("only layers and regions may appear here", it.span)
            node = self.stmt(it, env, names)
            if node is not None:
                out.append(node)
        return out

    def _claim(self, name, names, span):
        if name in names:
            raise SpecError(f"`{name}` is already used in this scope", span,
                            hint="names within one block must be unique")
        names.add(name)

    def stmt(self, s: A.Stmt, env, names: set):
        if self.depth >= MAX_NESTING:
            raise SpecError(f"layers nested more than {MAX_NESTING} deep (through blocks and regions)",
                            s.span, hint="flatten the model: fewer regions inside regions")
        self.depth += 1
        try:
            node = self._stmt(s, env, names)
        finally:
            self.depth -= 1
        self.count(1, s.span)
        return node

    def _stmt(self, s: A.Stmt, env, names: set):
        convex = "convex" in s.modifiers
        if s.name in CONSTRUCTS:
            return getattr(self, "c_" + s.name)(s, env, names, convex)
        if s.name in self.spec.blocks:
            return self.instance(s, env, names, convex)
        op = get_op(s.name)
        if op is not None and not op.internal:
            if s.body is not None:
                raise SpecError(f"op `{s.name}` takes no `{{ }}` body", s.span,
                                hint="remove the `{ ... }`, or put the layers in a `residual { }` or a "
                                     "named group `name { }`")
            name = s.label or self._auto(s.name, names)
            if s.label:
                self._claim(name, names, s.span)
            return OpInst(name, s.name, self.op_args(op, s, env), s.span, convex)
        if s.body is not None and s.args is None and s.label is None:
            self._claim(s.name, names, s.name_span)
            return Region("group", self.body(s.body, env, set()), name=s.name, span=s.span, convex=convex)
        known = set(user_ops()) | CONSTRUCTS | set(self.spec.blocks)
        raise SpecError(f"unknown op or block `{s.name}`", s.name_span or s.span,
                        hint=did_you_mean(s.name, known) or "see `morphc ops` for the op list")

    @staticmethod
    def _auto(base, names):
        name, i = base, 1
        while name in names:
            name, i = f"{base}_{i}", i + 1
        names.add(name)
        return name

    # ------------------------------------------------------------------ arguments
    def eval_args(self, s: A.Stmt | A.Call, env) -> tuple[list, dict, dict]:
        pos, kw, spans = [], {}, {}
        for a in s.args or []:
            v = evaluate(a.value, env)
            if a.name is None:
                if kw:
                    raise SpecError("positional argument after a keyword argument", a.span)
                pos.append((v, a))
            else:
                if a.name in kw:
                    raise SpecError(f"argument `{a.name}` given twice", a.span)
                kw[a.name], spans[a.name] = v, a
        return pos, kw, spans

    def op_args(self, op, s, env) -> dict:
        pos, kw, spans = self.eval_args(s, env)
        if pos:
            raise SpecError(f"`{s.name}` takes keyword arguments only (`key = value`)", pos[0][1].span,
                            hint=f"arguments: {', '.join(op.Args.model_fields)}")
        return validate_args(op, kw, spans, s)

    # ------------------------------------------------------------------ constructs
    def c_residual(self, s, env, names, convex):
        if s.body is None or s.args:
            raise SpecError("write a residual as `residual { ... }`", s.span)
        if s.label:
            self._claim(s.label, names, s.span)
            inner = self.body(s.body, env, set())
        else:
            inner = self.body(s.body, env, names)
        return Region("residual", inner, name=s.label, span=s.span, convex=convex)

    def c_parallel(self, s, env, names, convex):
        pos, kw, spans = self.eval_args(s, env)
        extra = set(kw) - {"join", "split"}
        if extra or pos:
            bad = sorted(extra)[0] if extra else None
            raise SpecError(f"parallel takes `join` and `split`, not `{bad}`" if bad else
                            "parallel takes keyword arguments `join` and `split`",
                            (spans[bad] if bad else pos[0][1]).span)
        join = str(kw.get("join", "concat"))
        if join not in JOINS:
            raise SpecError(f"unknown join `{join}`", spans["join"].span,
                            hint=did_you_mean(join, JOINS) or f"joins: {', '.join(sorted(JOINS))}")
        if not s.body:
            raise SpecError("parallel needs at least one branch in `{ }`", s.span)
        if s.label:
            self._claim(s.label, names, s.span)
        bnames: set = set() if s.label else names
        branches = []
        for b in s.body:
            node = self.stmt(b, env, bnames)
            branches.append(node if isinstance(node, Region) and node.kind == "group"
                            else Region("group", [node], span=b.span))
        split = kw.get("split")
        if split is not None and (not isinstance(split, int) or split != len(branches)):
            raise SpecError(f"split = {split} but there are {len(branches)} branches",
                            spans["split"].span, hint="split must equal the number of branches")
        return Region("parallel", branches, name=s.label, span=s.span, convex=convex,
                      attrs={"join": join, "split": bool(split)})

    def c_partition(self, s, env, names, convex):
        pos, kw, spans = self.eval_args(s, env)
        lanes = kw.get("lanes", pos[0][0] if pos else None)
        if not isinstance(lanes, int) or isinstance(lanes, bool) or lanes < 1 or set(kw) - {"lanes"}:
            raise SpecError("write a partition as `partition(lanes = H) { ... }`", s.span)
        if s.body is None:
            raise SpecError("partition needs a body `{ ... }`", s.span)
        if s.label:
            self._claim(s.label, names, s.span)
        inner = self.body(s.body, env, set() if s.label else names)
        return Region("partition", inner, name=s.label, span=s.span, convex=convex, attrs={"lanes": lanes})

    def c_seed(self, s, env, names, convex):
        """`name: seed(stage = training|blending|holding, alpha = a) { body }` (ops/seed.py)."""
        from ..ops.seed import seed_state

        pos, kw, spans = self.eval_args(s, env)
        example = "e.g. `s: seed(stage = blending, alpha = 0.5) { mlp: mlp(hidden = 64) }`"
        extra = sorted(set(kw) - {"stage", "alpha"})
        if pos or extra:
            at = spans[extra[0]] if extra else pos[0][1]
            raise SpecError(f"seed takes `stage` and `alpha`, not `{extra[0]}`" if extra else
                            "seed takes keyword arguments `stage` and `alpha`", at.span,
                            hint=(did_you_mean(extra[0], ("stage", "alpha")) if extra else None) or example)
        if not s.label:
            raise SpecError("a seed needs a name: `s: seed(stage = training) { ... }`", s.span,
                            hint="seed_stage, fossilize and prune find a seed by its path")
        if not s.body:
            raise SpecError("a seed needs a body `{ ... }` (the growth on probation)", s.span, hint=example)
        stage = kw.get("stage", "training")
        try:
            stage, alpha = seed_state(stage, kw.get("alpha"))
        except ValueError as e:
            at = spans["alpha"] if "alpha" in spans and not str(e.args[0]).startswith("unknown") \
                else spans.get("stage", s)
            raise SpecError(e.args[0], at.span, hint=e.args[1]) from None
        self._claim(s.label, names, s.span)
        inner = self.body(s.body, env, set())
        return Region("seed", inner, name=s.label, span=s.span, convex=convex,
                      attrs={"stage": stage, "alpha": alpha})

    def c_repeat(self, s, env, names, convex):
        pos, kw, _ = self.eval_args(s, env)
        n = pos[0][0] if pos else kw.get("n")
        if not s.label:
            raise SpecError("a repeat needs a name: `blocks: repeat(4) { ... }`", s.span)
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise SpecError("repeat needs a positive count: `repeat(4) { ... }`", s.span)
        if s.body is None:
            raise SpecError("repeat needs a body `{ ... }`", s.span)
        self._claim(s.label, names, s.span)
        if n > MAX_NODES:
            raise SpecError(f"repeat({fmt_count(n)}) passes the limit of {fmt_count(MAX_NODES)} ops and regions",
                            s.span, hint="models are limited to "
                                         f"{fmt_count(MAX_NODES)} elaborated nodes; use fewer copies")
        self.count(n, s.span)  # the copies' groups
        kids = [Region("group", self.body(s.body, env, set()), name=str(i), span=s.span) for i in range(n)]
        return Region("group", kids, name=s.label, span=s.span, convex=convex, attrs={"repeat": n})

    def c_pyramid(self, s, env, names, convex):
        from .pyramid import expand_pyramid

        pos, kw, spans = self.eval_args(s, env)
        if not s.label:
            raise SpecError("a pyramid needs a name: `p: pyramid(block = B, width = 64)`", s.span)
        block = kw.get("block")
        if block not in self.spec.blocks:
            sp = spans.get("block", s).span
            raise SpecError(f"pyramid needs `block = Name` of a defined block, got `{block}`", sp,
                            hint=did_you_mean(str(block), self.spec.blocks) or
                            "define it with `block Name(w) { ... }`; its first parameter is the width")
        levels, width = kw.get("levels", 1), kw.get("width")
        if not isinstance(levels, int) or levels < 1 or not isinstance(width, int) or width < 1:
            raise SpecError("pyramid needs `width = W` and `levels = k` (positive integers)", s.span)
        if levels > MAX_PYRAMID_LEVELS:
            raise SpecError(f"pyramid(levels = {levels}) would have 2^{levels} leaf blocks", spans["levels"].span,
                            hint=f"levels are limited to {MAX_PYRAMID_LEVELS}")
        self.count(2 ** (levels + 1), s.span)  # its blocks, before any is made
        self._claim(s.label, names, s.span)
        return expand_pyramid(self, s.label, str(block), width, levels, s.span, convex)

    def instance(self, s, env, names, convex, bound=None):
        bdef, genv = self.spec.blocks[s.name]
        if s.body is not None:
            raise SpecError(f"block `{s.name}` is used without a `{{ }}` body", s.span)
        if s.name in self.active:
            chain = " -> ".join([*self.active[self.active.index(s.name):], s.name])
            raise SpecError(f"block `{s.name}` contains itself ({chain})", s.span,
                            hint="a block cannot be used inside its own definition; "
                                 "for copies use `repeat(n) { ... }`")
        self.active.append(s.name)
        try:
            return self._instance(s, bdef, genv, env, names, convex, bound)
        finally:
            self.active.pop()

    def _instance(self, s, bdef, genv, env, names, convex, bound):
        benv = dict(genv)
        if bound is None:
            pos, kw, spans = self.eval_args(s, env)
            bound = bind_params(bdef, pos, kw, spans, s, genv)
        benv.update(bound)
        if s.label:
            self._claim(s.label, names, s.span)
        kids = self.body(bdef.body, benv, set() if s.label else names)
        return Region("group", kids, name=s.label, span=s.span,
                      convex=convex or "convex" in bdef.modifiers,
                      attrs={"block": (s.name, dict(bound))})
