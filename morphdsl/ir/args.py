"""Arguments: binding a block's parameters and validating an op's arguments (pydantic schema).

Errors point at the argument that is wrong, with the names that would be accepted as a hint.
"""
from __future__ import annotations

from typing import get_args

from pydantic import ValidationError

from ..errors import SpecError, did_you_mean
from ..syntax import ast as A
from .evaluate import Dotted, Inexact, Symbol, evaluate, has_division


def bind_params(bdef: A.BlockDef, pos, kw, spans, s, genv) -> dict:
    names = [p.name for p in bdef.params]
    if len(pos) > len(names):
        raise SpecError(f"block `{bdef.name}` takes {len(names)} arguments, got {len(pos)}",
                        pos[len(names)][1].span, hint=f"parameters: {', '.join(names) or 'none'}")
    bound = {n: v for n, (v, _) in zip(names, pos)}
    for k, v in kw.items():
        if k not in names:
            raise SpecError(f"block `{bdef.name}` has no parameter `{k}`", spans[k].span,
                            hint=did_you_mean(k, names) or f"parameters: {', '.join(names)}")
        if k in bound:
            raise SpecError(f"parameter `{k}` given twice", spans[k].span)
        bound[k] = v
    for p in bdef.params:
        if p.name not in bound:
            if p.default is None:
                raise SpecError(f"block `{bdef.name}` needs parameter `{p.name}`", s.span,
                                hint=f"e.g. `{bdef.name}({p.name} = ...)`")
            bound[p.name] = evaluate(p.default, {**genv, **bound})
    return bound


def validate_args(op, kw: dict, spans: dict, s) -> dict:
    """Validate op arguments against the op's pydantic schema; errors point at the argument."""
    fields = op.Args.model_fields
    for k, v in kw.items():
        if k not in fields:
            raise SpecError(f"`{op.name}` has no argument `{k}`", spans[k].span,
                            hint=did_you_mean(k, fields) or
                            (f"arguments: {', '.join(fields)}" if fields else f"`{op.name}` takes no arguments"))
        if isinstance(v, Inexact) and fields[k].annotation is not float:
            raise SpecError(f"`{k}` needs an integer but the division gives {float(v):g}", spans[k].value.span,
                            hint="use a width that divides evenly, or `//` to round down")
    clean = {k: (str(v) if isinstance(v, (Symbol, Dotted)) else v) for k, v in kw.items()}
    try:
        model = op.Args.model_validate(clean)
    except ValidationError as e:
        err = e.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else None
        where = spans[key].span if key in spans else s.span
        if err["type"] == "missing":
            raise SpecError(f"`{op.name}` needs argument `{key}`", s.span,
                            hint=f"e.g. `{op.name}({key} = ...)`") from None
        got = kw.get(key)
        msg = err["msg"].replace("Input should be", "should be")
        hint = None
        options = [str(o) for o in get_args(fields[key].annotation)] if key in fields else []
        if isinstance(got, Symbol) and err["type"] == "literal_error":
            hint = did_you_mean(got, options) or f"one of: {', '.join(options)}"
        elif isinstance(got, Symbol):
            hint = f"`{got}` is not a defined parameter"
        if isinstance(got, float) and has_division(spans[key].value) if key in spans else False:
            hint = "the division is not exact"
        raise SpecError(f"`{op.name}` argument `{key}` {msg} (got {got!r})", where, hint=hint) from None
    return {k: getattr(model, k) for k in clean}
