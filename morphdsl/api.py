"""The Python API: parse, load, build, compile, emit (grow and verify live in their packages)."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import MorphError
from .ir.build import build as _build
from .ir.graph import MorphGraph
from .syntax import ast as A
from .syntax.parser import parse as _parse


def parse(text: str, filename: str | None = None) -> A.Module:
    """Parse .morph text into an AST. Raises MorphError with file:line:col on bad input."""
    return _parse(text, filename)


def load(path) -> A.Module:
    """Read and parse a .morph file."""
    from .syntax.source import read_source

    return _parse(read_source(path), str(path))


def build(spec) -> MorphGraph:
    """Elaborate a spec (AST, text or path) into its IR graph and run the static checks."""
    if isinstance(spec, MorphGraph):
        return spec
    if isinstance(spec, (str, os.PathLike)):
        spec = _to_module(spec)
    try:
        g = _build(spec)
    except MorphError as e:
        # an error inside a `use`d file carries that file's name; its source is read from there
        same = e.span is None or e.span.filename == spec.filename
        raise e.with_source(spec.source) if spec.source and same else e
    _static_checks(g, spec.source)
    return g


def _static_checks(g: MorphGraph, source: str | None):
    try:
        from .verify import static_checks
    except ImportError:  # verifiers not installed yet
        return
    try:
        static_checks(g)
    except MorphError as e:
        raise e.with_source(source) if source else e


def _to_module(spec) -> A.Module:
    s = str(spec)
    if "\n" not in s and (s.endswith(".morph") or _is_file(s)):
        return load(s)
    return _parse(s)


def _is_file(s: str) -> bool:
    try:
        return Path(s).exists()
    except (OSError, ValueError):  # a NUL byte, a name too long: not a path, so spec text
        return False


def compile(spec, *, check: bool = True):
    """Compile a spec (AST, MorphGraph, path or text) to a torch.fx.GraphModule.

    The module carries its IR graph as `module.morph_graph`."""
    from .compile import compile_graph

    if isinstance(spec, MorphGraph):
        g = spec
    elif check:
        g = build(spec)
    else:
        g = _build(spec if isinstance(spec, A.Module) else _to_module(spec))
    return compile_graph(g)


def emit(graph: MorphGraph) -> str:
    """IR graph → .morph text that compiles back to the same graph."""
    from .ir.emit import emit as _emit

    return _emit(graph)
