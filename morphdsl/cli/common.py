"""Helpers shared by morphc commands: reading specs, building graphs, printing tables."""
from __future__ import annotations

import sys


class UsageError(Exception):
    """The command line is wrong (e.g. a file that does not exist): exit code 2."""


def read_text(path: str) -> str:
    """The text of a spec file; a missing or unreadable file is a usage error."""
    from ..syntax.source import SourceError, read_source

    try:
        return read_source(path)
    except SourceError as e:
        if e.message.startswith("cannot find"):
            raise UsageError(f"no such file: {path}") from None
        raise UsageError(e.message + (f" ({e.hint})" if e.hint else "")) from None


def load_graph(path: str):
    """Parse, elaborate and statically check a spec file into a `MorphGraph`.
    Spec errors are raised as `MorphError` (with the source attached for rendering)."""
    from .. import api

    text = read_text(path)
    module = api.parse(text, path)
    return api.build(module)


def console():
    """A rich console on the *current* sys.stdout (so tests capturing stdout see the output)."""
    from rich.console import Console

    return Console(file=sys.stdout, width=None if sys.stdout.isatty() else 120)


def fmt_int(n: int) -> str:
    """12345 -> '12,345'."""
    return f"{n:,}"


def prod(shape) -> int:
    n = 1
    for x in shape:
        n *= x
    return n


def region_kind(region) -> str:
    """A short description of a region: `block Name`, `pyramid`, `repeat(4)`, `partition(4)`..."""
    kids = region.children
    if region.kind == "group" and len(kids) == 1 and getattr(kids[0], "attrs", {}).get("block"):
        region = kids[0]  # `blocks.0` wraps one block instance
    a = region.attrs
    if a.get("block"):
        kind = f"block {a['block'][0]}"
    elif a.get("pyramid"):
        kind = "pyramid"
    elif a.get("repeat"):
        kind = f"repeat({a['repeat']})"
    elif region.kind == "partition":
        kind = f"partition({a['lanes']})"
    elif region.kind == "seed":
        kind = f"seed({a['stage']}" + (f", alpha = {a['alpha']})" if a["stage"] == "blending" else ")")
    elif region.kind == "parallel":
        kind = f"parallel({a.get('join', 'concat')})"
    else:
        kind = region.kind
    return ("convex " if region.convex else "") + kind
