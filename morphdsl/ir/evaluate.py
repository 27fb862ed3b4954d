"""Evaluation of spec expressions: integer arithmetic with exact division, names, symbols."""
from __future__ import annotations

import math

from ..errors import SpecError, did_you_mean
from ..limits import MAX_INT
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
FUNCS, CONSTS = _FUNCS, _CONSTS  # the expression functions and constants (e.g. for highlighters)


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
            return _bounded(f(*vals), e)
        except (TypeError, ValueError, OverflowError) as ex:
            raise SpecError(f"`{e.func}`: {ex}", e.span) from None
    if isinstance(e, A.BinOp):
        l = _num(evaluate(e.left, env), e.left, env)
        r = _num(evaluate(e.right, env), e.right, env)
        try:
            return _bounded(_binop(e.op, l, r, e), e)
        except ZeroDivisionError:
            raise SpecError("division by zero", e.span) from None
        except OverflowError:
            raise SpecError(f"`{e.op}` overflows", e.span, hint=_BIG_HINT) from None
    raise SpecError(f"cannot evaluate {type(e).__name__}", getattr(e, "span", None))


_BIG_HINT = "integers are 64-bit (at most 2**63 - 1) and numbers 64-bit floats; check the arithmetic"


def _binop(op, l, r, e):
    if op == "+":
        return l + r
    if op == "-":
        return l - r
    if op == "*":
        return l * r
    if op == "**":
        return _pow(l, r, e)
    if op == "/":
        if isinstance(l, int) and isinstance(r, int) and r != 0 and l % r == 0:
            return l // r
        return Inexact(l / r)
    if op == "//":
        return l // r
    if op == "%":
        return l % r
    raise SpecError(f"unknown operator `{op}`", e.span)


def _pow(l, r, e):
    """`l ** r`, refused *before* computing when the result would pass the limits (no hang)."""
    if l == 0 and r < 0:
        raise ZeroDivisionError
    if abs(l) > 1 and r > 0 and r * math.log2(abs(l)) > 1100:  # past both 2**63 and float range
        raise SpecError(f"`{_show(l)} ** {_show(r)}` is too large", e.span, hint=_BIG_HINT)
    if l < 0 and isinstance(r, float) and not r.is_integer():
        raise SpecError(f"`{_show(l)} ** {_show(r)}` is not a real number", e.span,
                        hint="a negative number has no real fractional power")
    return l ** r


def _show(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _bounded(v, e):
    """`v`, if it is a 64-bit integer or a finite float; else a located error."""
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and abs(v) > MAX_INT:
        raise SpecError("the result is too large for a 64-bit integer", e.span, hint=_BIG_HINT)
    if isinstance(v, float) and not math.isfinite(v):
        raise SpecError("the result is not a finite number", e.span, hint=_BIG_HINT)
    if isinstance(v, complex):
        raise SpecError("the result is not a real number", e.span)
    return v


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
