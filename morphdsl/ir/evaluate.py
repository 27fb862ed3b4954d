"""Evaluation of spec expressions: integer arithmetic with exact division, names, symbols."""
from __future__ import annotations

import math

from ..errors import SpecError, did_you_mean
from ..syntax import ast as A


class Symbol(str):
    """A bare name that is not a parameter (`gelu`, `concat`, `tok`): an enum value or a ref."""


class Dotted(str):
    """A dotted path such as `blocks.0.attn` (a growth target)."""


class Inexact(float):
    """The float result of a division that is not exact (an error where an int is needed)."""


_FUNCS = {"min": min, "max": max, "abs": abs, "int": int, "floor": math.floor, "ceil": math.ceil,
          "sqrt": math.sqrt, "log2": math.log2, "round": round}
_CONSTS = {"true": True, "false": False, "none": None}


def evaluate(e, env: dict):
    if isinstance(e, A.Num):
        return e.value
    if isinstance(e, A.Str):
        return e.value
    if isinstance(e, A.Path):
        if len(e.parts) == 1:
            n = e.parts[0]
            if n in env:
                return env[n]
            if n in _CONSTS:
                return _CONSTS[n]
            return Symbol(n)
        return Dotted(e.dotted)
    if isinstance(e, A.ListExpr):
        return [evaluate(x, env) for x in e.items]
    if isinstance(e, A.Neg):
        v = _num(evaluate(e.operand, env), e.operand, env)
        return -v
    if isinstance(e, A.FunCall):
        f = _FUNCS.get(e.func)
        if f is None:
            raise SpecError(f"unknown function `{e.func}`", e.span,
                            hint=did_you_mean(e.func, _FUNCS) or f"functions: {', '.join(sorted(_FUNCS))}")
        vals = [_num(evaluate(a.value, env), a.value, env) for a in e.args]
        try:
            return f(*vals)
        except (TypeError, ValueError) as ex:
            raise SpecError(f"`{e.func}`: {ex}", e.span) from None
    if isinstance(e, A.BinOp):
        l = _num(evaluate(e.left, env), e.left, env)
        r = _num(evaluate(e.right, env), e.right, env)
        try:
            if e.op == "+":
                return l + r
            if e.op == "-":
                return l - r
            if e.op == "*":
                return l * r
            if e.op == "**":
                return l ** r
            if e.op == "/":
                if isinstance(l, int) and isinstance(r, int) and r != 0 and l % r == 0:
                    return l // r
                return Inexact(l / r)
            if e.op == "//":
                return l // r
            if e.op == "%":
                return l % r
        except ZeroDivisionError:
            raise SpecError("division by zero", e.span) from None
    raise SpecError(f"cannot evaluate {type(e).__name__}", getattr(e, "span", None))


def _num(v, node, env):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        if isinstance(v, Symbol):
            raise SpecError(f"unknown name `{v}`", node.span,
                            hint=did_you_mean(v, [k for k in env if not k.startswith("_")])
                            or "define it first, e.g. `" + v + " = 64`")
        raise SpecError(f"expected a number, got {v!r}", node.span)
    return v


def has_division(e) -> bool:
    if isinstance(e, A.BinOp):
        return e.op == "/" or has_division(e.left) or has_division(e.right)
    if isinstance(e, A.Neg):
        return has_division(e.operand)
    return False
