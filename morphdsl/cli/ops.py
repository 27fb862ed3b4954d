"""`morphc ops [NAME] [--markdown]`: the op registry as a table (args, defaults, doc)."""
from __future__ import annotations

import typing

from ..errors import SpecError, did_you_mean
from ..ops import get_op, user_ops
from .common import console


def register(sub):
    p = sub.add_parser("ops", help="list the ops with their arguments",
                       description="List the ops a spec can use, their arguments and defaults.")
    p.add_argument("name", nargs="?", help="show one op in detail")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table (for docs)")
    p.set_defaults(func=run)


def type_name(ann) -> str:
    """A short readable name of a pydantic field annotation: int, float, bool, a | b, ..."""
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is typing.Annotated:
        base = type_name(args[0])
        return f"{base} > 0" if any("gt=0" in repr(m) for m in args[1:]) else base
    if origin is typing.Literal:
        return " | ".join(str(a) for a in args)
    if origin is typing.Union:
        names = [type_name(a) for a in args if a is not type(None)]
        return " | ".join(names)
    return getattr(ann, "__name__", str(ann))


def arg_list(op) -> list[tuple[str, str, str]]:
    """(name, type, default) for each argument of an op; default '' means required."""
    out = []
    for name, f in op.Args.model_fields.items():
        t = type_name(f.annotation)
        if t == "int" and any("gt=0" in repr(m) for m in f.metadata):
            t = "int > 0"
        default = "" if f.is_required() else _lit(f.default)
        out.append((name, t, default))
    return out


def _lit(v) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return v
    return repr(v)


def describe(op) -> str:
    """The op's one-line doc (elementwise ops without one get a generic line)."""
    if op.doc:
        return op.doc
    return f"elementwise {op.name}(x)" if op.functional else ""


def facts_line(op) -> str:
    """The op's convexity facts at its default arguments: curvature, monotonicity, sign, why."""
    r = {k: f.default for k, f in op.Args.model_fields.items() if not f.is_required()}
    try:
        f = op.facts(r)
    except (KeyError, TypeError, ValueError):  # facts that need a resolved (shape) argument
        return "depends on the arguments"
    text = f"{f.curvature}, monotone {'/'.join(f.mono)}, sign {f.sign}"
    return text + (f" ({f.why})" if f.why else "")


def signature(op) -> str:
    parts = [n if d == "" else f"{n} = {d}" for n, _, d in arg_list(op)]
    return f"{op.name}({', '.join(parts)})" if parts else op.name


def markdown() -> str:
    lines = ["| op | arguments | description |", "|---|---|---|"]
    for name in user_ops():
        op = get_op(name)
        args = ", ".join(f"`{n}`" + (f" = `{d}`" if d else "") for n, _, d in arg_list(op))
        doc = describe(op).replace("|", "\\|")
        lines.append(f"| `{name}` | {args or '—'} | {doc} |")
    return "\n".join(lines)


def run(args) -> int:
    if args.markdown:
        print(markdown())
        return 0
    from rich.table import Table

    out = console()
    if args.name:
        op = get_op(args.name)
        if op is None or op.internal:
            hint = did_you_mean(args.name, user_ops()) or "run `morphc ops` for the list"
            raise SpecError(f"unknown op `{args.name}`", hint=hint)
        out.print(f"[bold]{signature(op)}[/bold]\n  {describe(op)}")
        t = Table("argument", "type", "default")
        for n, ty, d in arg_list(op):
            t.add_row(n, ty, d or "[i]required[/i]")
        out.print(t)
        out.print(f"channels: {op.channels}   positions: {op.positions}   "
                  f"runs per lane: {'yes' if op.lanes_ok else 'no'}")
        out.print(f"convexity (default arguments): {facts_line(op)}")
        return 0
    t = Table(title="ops (`morphc ops NAME` for details)", title_justify="left")
    t.add_column("op", style="bold")
    t.add_column("arguments", overflow="fold")
    t.add_column("description", overflow="fold")
    for name in user_ops():
        op = get_op(name)
        args_text = ", ".join(n if d == "" else f"{n}={d}" for n, _, d in arg_list(op))
        t.add_row(name, args_text, describe(op))
    out.print(t)
    return 0
