"""MorphGraph -> .morph text that compiles back to the same graph (same names, shapes, function).

Emission keeps the spec readable after growth:
- the spec's parameters, block definitions, sections and (when `g.filename` is still the spec
  the graph was built from) their expressions and comments are written back (emit_source);
- a region made by `B(args)` is written as that call wherever the definition, re-elaborated
  with those arguments in that scope, still gives exactly the region (emit_match); a call may
  change pass-through arguments (`Block(d = d, heads = heads + 1)` after add_head);
- when every instance of a block grew the same way, the definition is edited instead
  (`mlp: mlp(hidden = 4 * d + 64)` after widen_mlp on all blocks; emit_defs), so the copies
  stay calls and `repeat` survives;
- copies that print alike are `repeat(n)`, pyramids that still expand alike are `pyramid(...)`;
  only what diverged is written out layer by layer (emit_tree);
- a grown integer is the old expression plus the change (`repeat(layers + 1)`; emit_values).

Why these choices: a definition edited in place keeps the spec's shape (one block, one
`repeat`, the same calls) and shows the growth where it happened, which a new block parameter
(`Block(..., mlp_hidden = 320)` on every call) would not; a copy that diverged alone (add_head on
one block) is written out, so the definition every other copy shares stays untouched.

`emit` is total: every graph emits, and the text is checked by building it again and comparing
the DAG (names, ops, arguments, shapes, convex regions) and the sections; should the readable
text ever differ, the fully inlined text (no calls, no source) is returned instead, and that is
checked too. A header line records the growth history: `# NAME: emitted by morphdsl after ...`.
"""
from __future__ import annotations

import copy
import re

from ..syntax import ast as A
from ..syntax.printer import format_module
from .emit_blocks import Blocks
from .emit_defs import edit_defs
from .emit_source import EMITTED, kept_comments, place_spans, recover, strip_spans
from .emit_tree import TreeEmitter
from .emit_values import literal, same, value_of
from .graph import MorphGraph


def emit(g: MorphGraph, fallback: bool = True) -> str:
    """The .morph text of `g` (see the module doc). `fallback=False`: the readable text only,
    unchecked (for tests of the readable path)."""
    text = emit_text(g)
    if not fallback or check(g, text) is None:
        return text
    flat = emit_text(g, readable=False)
    why = check(g, flat)
    if why is not None:
        raise ValueError(f"emit: the emitted spec does not rebuild the graph: {why}")
    return flat


def emit_text(g: MorphGraph, readable: bool = True) -> str:
    """The text of `g`, unchecked: readable (see the module doc), or fully inlined (no calls,
    pyramids or edited definitions, nothing from the source file: the fallback)."""
    src = recover(g) if readable else None
    blocks = Blocks(g)
    if readable:
        edit_defs(blocks, g.root)
    tree = TreeEmitter(blocks, g.params, src, calls=readable)
    body = tree.seq(g.root.children, set())
    items = _assemble(g, blocks, tree, body, src)
    items = copy.deepcopy(items)
    comments, old, lead = [], None, []
    if src is not None:
        used = place_spans(items, g.filename)
        for c in kept_comments(src.module, used):
            if EMITTED.match(c.text) and old is None:
                old = c.text
            elif not EMITTED.match(c.text):
                comments.append(c)
        if not any(isinstance(it, A.SpecName) for it in src.module.items):  # `spec` is new: below
            first = min((it.span.line for it in src.module.items if it.span), default=0)  # the header
            lead = [c.text for c in comments if c.span.line < first]
            comments = [c for c in comments if c.span.line >= first]
    else:
        strip_spans(items)
    return "\n".join([header(g, old), *lead, format_module(A.Module(items=items, comments=comments))])


def to_module(g: MorphGraph) -> A.Module:
    """The emitted spec, parsed (comments included)."""
    from ..syntax.parser import parse

    return parse(emit(g))


# ----------------------------------------------------------------------------- pieces
def _model(g, body, src) -> A.Stmt:
    s = src.sections.get("model") if src is not None else None
    args = None
    if g.input_type.channels is not None:
        a = s.args[0] if s is not None and s.args else None
        keep = a is not None and a.name == "features" and same(value_of(a.value, g.params), g.input_type.channels)
        args = [a if keep else A.Arg(name="features", value=literal(g.input_type.channels))]
    return A.Stmt(name="model", args=args, body=body, span=s.span if s is not None else None)


def _settings(g, sec: str, src):
    from .build import grow_rules
    from .elaborate import settings

    vals = g.sections.get(sec) or ({} if sec != "grow" else [])
    s = src.sections.get(sec) if src is not None else None
    if sec == "evolve":  # never changed by growth: the source's section, or one written anew
        from ..evolve.config import section_ast

        return s if s is not None else (section_ast(vals, g.params) if vals else None)
    if s is not None:
        try:
            if sec == "grow":
                ok = _rules(grow_rules(s, g.params)) == _rules(vals)
            else:
                ok = settings(s, g.params) == vals and all(same(settings(s, g.params)[k], vals[k]) for k in vals)
        except Exception:
            ok = False
        if ok:
            return s
    if not vals:
        return None
    if sec == "grow":
        return A.Stmt(name="grow", body=[_rule(r, g.params) for r in vals])
    return A.Stmt(name=sec, body=[A.Entry(key=k, value=A.Str(value=v) if isinstance(v, str) else literal(v))
                                  for k, v in vals.items()])


def _rules(rules):
    def call(c):
        return (c["name"], tuple(c["args"]), tuple(sorted(c["kwargs"].items())))
    return [("controller", call(r["controller"])) if "controller" in r else
            (call(r["trigger"]), tuple(call(a) for a in r["actions"])) for r in rules]


def _rule(r: dict, env) -> A.Rule:
    def call(c):
        args = [A.Arg(value=literal(v, env)) for v in c["args"]]
        args += [A.Arg(name=k, value=literal(v, env)) for k, v in c["kwargs"].items()]
        return A.Call(name=c["name"], args=args or None)

    if "controller" in r:  # a controller declaration (garden/): a bodiless statement
        c = call(r["controller"])
        return A.Stmt(name=c.name, args=c.args)
    return A.Rule(trigger=call(r["trigger"]), actions=[call(a) for a in r["actions"]])


def _params(g, src) -> list[A.Entry]:
    ents = {}
    if src is not None:
        ents = {it.key: it for it in src.module.items if isinstance(it, A.Entry)}
    out, env = [], {}
    for k, v in g.params.items():
        e = ents.get(k)
        if e is None or not same(value_of(e.value, env), v):
            e = A.Entry(key=k, value=literal(v, env))
        out.append(e)
        env[k] = v
    return out


def _assemble(g, blocks: Blocks, tree: TreeEmitter, body, src) -> list:
    """Top-level items in the source's order (spec name, parameters, blocks, model, sections);
    parameters and definitions the source does not have (new, imported) go before the model."""
    params = {e.key: e for e in _params(g, src)}
    defs = dict(blocks.defs)
    sections = {sec: _settings(g, sec, src) for sec in ("data", "train", "grow", "evolve")}
    order = [it for it in src.module.items if not isinstance(it, A.Use)] if src is not None else []
    here = {it.key if isinstance(it, A.Entry) else it.name for it in order if isinstance(it, (A.Entry, A.BlockDef))}
    spec = next((it for it in order if isinstance(it, A.SpecName)), None)
    span = spec.span if spec is not None and spec.name == g.name else None
    out: list = [A.SpecName(name=spec_name(g), span=span)]
    model = None

    def before_model():
        new = [*(e for k, e in params.items() if k not in here), *(d for n, d in defs.items() if n not in here)]
        return [*new, *tree.new_defs, _model(g, body, src)]

    for it in order:
        if isinstance(it, A.Entry) and it.key in params:
            out.append(params.pop(it.key))
        elif isinstance(it, A.BlockDef) and it.name in defs:
            out.append(defs.pop(it.name))
        elif isinstance(it, A.Stmt) and it.name == "model":
            out.extend(model := before_model())
        elif isinstance(it, A.Stmt) and sections.get(it.name) is not None:
            out.append(sections.pop(it.name))
    if model is None:
        out.extend(before_model())
    out.extend(s for s in sections.values() if s is not None)
    return out


def spec_name(g: MorphGraph) -> str:
    """`g.name` as a `spec` name can be written (a file `my-model.morph` is `spec my_model`)."""
    name = re.sub(r"\W", "_", g.name, flags=re.ASCII) or "spec"
    if name in ("use", "spec", "block", "convex"):
        return name + "_"
    return "_" + name if name[0].isdigit() else name


def header(g: MorphGraph, old: str | None = None) -> str:
    """`# NAME: emitted by morphdsl [after op(args), ...]`, continuing the history in `old`."""
    done = [_op_text(h) for h in g.history]
    if old is not None:
        m = EMITTED.match(old)
        if not done:
            return old
        if m.group("after"):
            done = [m.group("after")] + done
    return f"# {g.name}: emitted by morphdsl" + (" after " + ", ".join(done) if done else "")


def _op_text(h) -> str:
    from ..syntax.printer import expr

    if isinstance(h, str):
        return h
    args = {k: v for k, v in (h.get("args") or {}).items() if v is not None}
    parts = []
    if isinstance(args.get("target"), str):
        parts.append(expr(literal(args.pop("target"))))
    parts += [f"{k} = {expr(literal(v))}" for k, v in args.items()]
    return f"{h.get('op', '?')}({', '.join(parts)})"


# ----------------------------------------------------------------------------- the check
def _dag(g) -> list:
    out = []
    for k, d in g.nodes():
        regs = sorted({(sc, getattr(r, "kind", "op"), getattr(r, "attrs", {}).get("lanes"))
                       for r, sc in d.get("regions", [])
                       if getattr(r, "convex", False) or getattr(r, "kind", None) == "partition"})
        out.append((k, d.op, tuple(d.inputs), repr(sorted(d.get("args", {}).items())),
                    repr(sorted(d.get("resolved", {}).items())), repr(d.get("param_shapes")),
                    repr(d.get("buffer_shapes")), str(d.get("type")), d.get("lanes"),
                    bool(d.get("convex")), tuple(regs)))
    return out


def check(g: MorphGraph, text: str) -> str | None:
    """None if `text` builds into a graph equal to `g`, else what differs first."""
    from ..syntax.parser import parse
    from .build import build

    try:
        h = build(parse(text))
    except Exception as e:  # noqa: BLE001 - any failure is a difference
        return f"it does not build: {e}"
    if (h.name, h.input_type, h.output) != (spec_name(g), g.input_type, g.output):
        return "name, input or output differ"
    a, b = _dag(g), _dag(h)
    for x, y in zip(a, b):
        if x != y:
            return f"node {x[0]} differs: {x} != {y}"
    if len(a) != len(b):
        return f"{len(a)} nodes != {len(b)}"
    for sec in ("data", "train"):
        if h.sections.get(sec) != g.sections.get(sec):
            return f"section {sec} differs"
    if _rules(h.sections.get("grow") or []) != _rules(g.sections.get("grow") or []):
        return "grow rules differ"
    return None
