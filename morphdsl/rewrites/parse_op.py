"""Growth ops written as .morph calls: `add_head(blocks.1.attn, n = 2)` -> (name, kwargs).

The text is parsed with the spec grammar (as the action of a rule `now -> OP`); positional
arguments bind to the rewrite's parameters in order (the first is the target).
"""
from __future__ import annotations

import dataclasses
import inspect

from ..errors import GrowthError, MorphError, Span
from .registry import get_rewrite

_PREFIX = "now -> "


def _shift(span: Span | None, label: str) -> Span | None:
    if span is None:
        return None
    n = len(_PREFIX)
    return dataclasses.replace(span, filename=label, column=max(1, span.column - n),
                               end_column=max(1, span.end_column - n))


def parse_op(text: str, env: dict | None = None, label: str = "<--op>"):
    """(op name, kwargs, span) from one op call; MorphError (pointing into `text`) if bad."""
    from ..ir.build import call_args
    from ..syntax import ast as A
    from ..syntax.parser import parse

    src = text.strip()
    try:
        mod = parse(_PREFIX + src + "\n", label)
        rules = [it for it in mod.items if isinstance(it, A.Rule)]
        if len(rules) != 1 or len(rules[0].actions) != 1 or len(mod.items) != 1:
            raise GrowthError("write exactly one growth op per --op",
                              hint='e.g. --op "add_head(blocks.1.attn, n = 2)"')
        call = rules[0].actions[0]
        c = call_args(call, env or {})
    except MorphError as e:
        e.span, e.source = _shift(e.span, label), src
        raise e from None
    span = _shift(call.span, label)
    try:
        kw = bind_args(c["name"], c["args"], c["kwargs"])
    except MorphError as e:
        e.span = e.span or span
        raise e.with_source(src) from None
    return c["name"], kw, span


def bind_args(name: str, pos: list, kw: dict) -> dict:
    """Keyword arguments for rewrite `name` from positional + keyword values (e.g. a spec's
    `grow { step(150) -> widen_mlp(blocks.*.mlp, by = 64) }` action: g.sections['grow'])."""
    rd = get_rewrite(name)
    params = [p for p in inspect.signature(rd.fn).parameters if p not in ("graph", "state")]
    if len(pos) > len(params):
        raise GrowthError(f"`{name}` takes at most {len(params)} positional arguments",
                          hint=f"arguments: {', '.join(params)}")
    out = dict(zip(params, pos))
    for k, v in kw.items():
        if k not in params:
            raise GrowthError(f"`{name}` has no argument `{k}`", hint=f"arguments: {', '.join(params)}")
        out[k] = v
    return out
