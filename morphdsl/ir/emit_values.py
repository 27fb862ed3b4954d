"""Values back to expressions, for `emit`: literals, strict value equality, and reuse of the
spec's own expressions (`dim = d`, `hidden = 4 * d + 64`, `repeat(layers + 1)`).

An expression from the spec is reused only where evaluating it, in the environment the emitted
text will be evaluated in, gives exactly the value the graph holds (`same`). A grown integer is
written as the old expression plus the change (`4 * d` grown by 64 is `4 * d + 64`), so the
growth stays visible and the dependence on the spec's parameters is kept.
"""
from __future__ import annotations

from ..syntax import ast as A
from .evaluate import evaluate

MISSING = object()  # an argument that is absent (not written), as opposed to `none`
_CONSTS = {"true", "false", "none"}
_KEYWORDS = {"use", "spec", "block", "convex"}  # lexed as keywords, never as names


def same(a, b) -> bool:
    """Strict equality of spec values: 2, 2.0 and True are three different values."""
    if a is MISSING or b is MISSING:
        return a is b
    if a is None or b is None:
        return a is b
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    if isinstance(a, float) and isinstance(b, float):
        return a == b
    if isinstance(a, str) and isinstance(b, str):
        return str(a) == str(b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return False


def literal(v, env: dict | None = None) -> A.Node:
    """An expression that evaluates to `v` in `env` (a name in `env` is never used for a string)."""
    env = env or {}
    if isinstance(v, bool):
        return A.Path(parts=["true" if v else "false"])
    if v is None:
        return A.Path(parts=["none"])
    if isinstance(v, int):
        return A.Num(value=v, text=str(v)) if v >= 0 else A.Neg(operand=literal(-v))
    if isinstance(v, float):
        if v < 0 or (v == 0 and str(v).startswith("-")):
            return A.Neg(operand=literal(-v))
        return A.Num(value=float(v), text=repr(float(v)))
    if isinstance(v, (list, tuple)):
        return A.ListExpr(items=[literal(x, env) for x in v])
    s = str(v)
    parts = s.split(".")
    if parts[0].isidentifier() and not _KEYWORDS & set(parts) and \
            all(p.isidentifier() or p.isdigit() or p == "*" for p in parts):
        if len(parts) > 1 or (s not in env and s not in _CONSTS and s.isidentifier()):
            return A.Path(parts=parts)
    return A.Str(value=s)


def value_of(e, env):
    """`e` evaluated in `env`, or MISSING when it does not evaluate there."""
    try:
        return evaluate(e, env)
    except Exception:  # an unknown name, a bad operand: the expression does not fit here
        return MISSING


def fold(e, c: int) -> A.Node:
    """`e + c` for an integer change `c`, merging into a trailing `+ k` / `- k` of `e`."""
    r = e.right if isinstance(e, A.BinOp) and e.op in ("+", "-") else None
    if isinstance(r, A.Num) and isinstance(r.value, int) and not isinstance(r.value, bool):
        k = e.right.value if e.op == "+" else -e.right.value
        return fold(e.left, k + c) if k + c else e.left
    if c == 0:
        return e
    return A.BinOp(op="+" if c > 0 else "-", left=e, right=A.Num(value=abs(c), text=str(abs(c))))


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def expr_for(v, env: dict, src=None, key: str | None = None) -> A.Node:
    """The expression to write for value `v`: the spec's own `src` if it still gives `v`, else
    `src` plus the integer change, else the parameter named `key` if it holds `v`, else a literal."""
    if src is not None:
        old = value_of(src, env)
        if same(old, v):
            return src
        if _int(old) and _int(v) and not isinstance(src, (A.Num, A.Neg)):
            e = fold(src, v - old)
            if same(value_of(e, env), v):
                return e
    if key is not None and key in env and same(env[key], v):
        return A.Path(parts=[key])
    return literal(v, env)
