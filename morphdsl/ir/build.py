"""Spec → MorphGraph: elaborate the model, lower it to a DAG, collect data/train/grow sections."""
from __future__ import annotations

from ..errors import SpecError
from ..syntax import ast as A
from .elaborate import Elaborator, Spec, load_spec, settings
from .evaluate import Dotted, Symbol, evaluate
from .graph import MorphGraph, Region, TensorType
from .lower import lower


def model_input(spec: Spec, el: Elaborator) -> TensorType:
    s = spec.sections["model"]
    pos, kw, spans = el.eval_args(s, spec.params)
    if pos or set(kw) - {"features"}:
        raise SpecError("`model` takes only `features = N` (for a model on real vectors)", s.span)
    f = kw.get("features")
    if f is not None and (not isinstance(f, int) or f < 1):
        raise SpecError("`features` must be a positive integer", spans["features"].span)
    return TensorType(f)


def grow_rules(stmt: A.Stmt | None, env: dict) -> list[dict]:
    rules = []
    if stmt is None:
        return rules
    for it in stmt.body:
        if isinstance(it, A.Stmt) and it.body is None and it.label is None and not it.modifiers:
            # a controller declaration: `heuristic(...)`, `policy("p.zip")`, `seeds(...)` (garden/)
            rules.append({"controller": call_args(it, env), "span": it.span})
            continue
        if not isinstance(it, A.Rule):
            raise SpecError("`grow` holds rules `trigger(...) -> op(...)` and controllers `name(...)`",
                            it.span, hint="e.g. `step(200) -> add_head(blocks.0.attn, n = 1)` or "
                                          "`heuristic(patience = 3)`")
        rules.append({"trigger": call_args(it.trigger, env), "actions": [call_args(a, env) for a in it.actions],
                      "span": it.span})
    return rules


def call_args(c: A.Call, env) -> dict:
    """A growth call `name(args)` evaluated: {name, args (positional), kwargs, span}."""
    pos, kw = [], {}
    for a in c.args or []:
        v = evaluate(a.value, env)
        v = str(v) if isinstance(v, (Symbol, Dotted)) else v
        if a.name is None:
            pos.append(v)
        else:
            kw[a.name] = v
    return {"name": c.name, "args": pos, "kwargs": kw, "span": c.span}


def build_spec(spec: Spec) -> MorphGraph:
    el = Elaborator(spec)
    model = spec.sections["model"]
    root = Region("group", el.body(model.body or [], spec.params, set()), span=model.span)
    itype = model_input(spec, el)
    dag, out = lower(root, itype)
    env = spec.params
    spans: dict = {}  # setting -> its span, so a bad value is reported at its line
    sections = {"data": settings(spec.sections.get("data"), env, spans),
                "train": settings(spec.sections.get("train"), env, spans),
                "grow": grow_rules(spec.sections.get("grow"), env)}
    if "evolve" in spec.sections:  # a population's settings (morphdsl/evolve)
        from ..evolve.config import parse_section

        sections["evolve"] = parse_section(spec.sections["evolve"], env)
    blocks = {name: bdef for name, (bdef, _) in spec.blocks.items()}
    g = MorphGraph(spec.name, root, dag, itype, out, sections, blocks, dict(spec.params), spec.filename)
    g.block_env = {name: genv for name, (_, genv) in spec.blocks.items()}
    g.setting_spans = spans
    g.source_module = spec.module  # the parsed source: emit reuses its expressions and comments
    return g


def build(module: A.Module) -> MorphGraph:
    """Elaborate a parsed module into its IR graph (shapes inferred, nothing allocated)."""
    return build_spec(load_spec(module))


def relower(g: MorphGraph) -> MorphGraph:
    """Recompute the DAG of a graph whose region tree was edited (by a rewrite)."""
    g.dag, g.output = lower(g.root, g.input_type)
    return g
