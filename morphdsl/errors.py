"""User-facing errors. Every error a user can cause is a `MorphError` with a location.

`str(err)` is one line, `FILE:LINE:COL: error: message`; `err.render()` adds the source line,
a caret under the offending text and a hint, like a compiler.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """A region of source text (1-based lines and columns, end exclusive)."""

    filename: str | None
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.filename or '<spec>'}:{self.line}:{self.column}"


class MorphError(Exception):
    """Base of all user errors: a message, a source location and an optional hint."""

    kind = "error"

    def __init__(self, message: str, span: Span | None = None, hint: str | None = None,
                 source: str | None = None, node: str | None = None):
        super().__init__(message)
        self.message = message
        self.span = span
        self.hint = hint
        self.source = source
        self.node = node  # IR node path at fault, when the error is about a graph node

    @property
    def filename(self) -> str | None:
        return self.span.filename if self.span else None

    @property
    def line(self) -> int | None:
        return self.span.line if self.span else None

    @property
    def column(self) -> int | None:
        return self.span.column if self.span else None

    def __str__(self) -> str:
        where = f"{self.span}: " if self.span else ""
        node = f" [at {self.node}]" if self.node else ""
        return f"{where}{self.kind}: {self.message}{node}"

    def render(self) -> str:
        """The full diagnostic: location line, source line, caret, hint."""
        lines = [str(self)]
        text = self.source
        if text is None and self.span and self.span.filename:
            try:
                with open(self.span.filename, encoding="utf-8") as f:
                    text = f.read()
            except OSError:
                text = None
        if text is not None and self.span:
            src_lines = text.splitlines()
            if 1 <= self.span.line <= len(src_lines):
                src = src_lines[self.span.line - 1]
                width = 1
                if self.span.end_line == self.span.line:
                    width = max(1, self.span.end_column - self.span.column)
                width = min(width, max(1, len(src) - self.span.column + 1))
                lines.append(f"  {self.span.line:>4} | {src}")
                lines.append("       | " + " " * (self.span.column - 1) + "^" * width)
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)

    def with_source(self, source: str) -> "MorphError":
        if self.source is None:
            self.source = source
        return self


class SyntaxError_(MorphError):
    """The text does not parse."""


class SpecError(MorphError):
    """The text parses but does not describe a valid model (names, arguments, arithmetic)."""


class ShapeError(MorphError):
    """Shapes do not fit together."""


class GrowthError(MorphError):
    """A growth rewrite cannot be applied where it was asked for."""


class VerifyError(MorphError):
    """A verifier found a property violated (convexity, causality, isolation, identity)."""


def did_you_mean(word: str, options) -> str | None:
    """A 'did you mean' hint from close matches, or None."""
    import difflib

    close = difflib.get_close_matches(word, sorted(options), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None
