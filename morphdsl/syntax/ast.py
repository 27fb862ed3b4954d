"""The AST of a .morph file: pydantic models, each node with its source span.

The grammar is generic (see grammars/morph.lark), so the AST is too: a `Stmt` is any
`[label:] name(args) { body }`; its meaning is decided by elaboration.
"""
from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict

from ..errors import Span


class Node(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=False)
    span: Optional[Span] = None


# ----------------------------------------------------------------------------- expressions
class Num(Node):
    value: Union[int, float]
    text: str


class Str(Node):
    value: str


class Path(Node):
    """A name (`d`) or a dotted path (`blocks.0.attn`, `blocks.*.mlp`)."""

    parts: list[str]

    @property
    def dotted(self) -> str:
        return ".".join(self.parts)


class BinOp(Node):
    op: Literal["+", "-", "*", "/", "//", "%", "**"]
    left: "Expr"
    right: "Expr"


class Neg(Node):
    operand: "Expr"


class ListExpr(Node):
    items: list["Expr"]


class FunCall(Node):
    func: str
    args: list["Arg"]


Expr = Union[Num, Str, Path, BinOp, Neg, ListExpr, FunCall]


class Arg(Node):
    name: Optional[str] = None  # None for a positional argument
    value: Expr


# ----------------------------------------------------------------------------- items
class Entry(Node):
    """`key = expr`: a spec parameter at top level, a setting inside data/train."""

    key: str
    value: Expr


class Call(Node):
    name: str
    args: Optional[list[Arg]] = None


class Rule(Node):
    """`trigger(args) -> op(args), op(args)` inside `grow { }`."""

    trigger: Call
    actions: list[Call]


class Stmt(Node):
    """`[convex] [label:] name[(args)] [{ body }]`."""

    label: Optional[str] = None
    name: str
    args: Optional[list[Arg]] = None
    body: Optional[list["Item"]] = None
    modifiers: list[str] = []
    name_span: Optional[Span] = None


class Param(Node):
    name: str
    default: Optional[Expr] = None


class BlockDef(Node):
    name: str
    params: list[Param]
    body: list["Item"]
    modifiers: list[str] = []


class Use(Node):
    path: str


class SpecName(Node):
    name: str


class Comment(Node):
    text: str


Item = Union[Use, SpecName, BlockDef, Entry, Rule, Stmt]


class Module(Node):
    """A parsed file: its items and its comments (kept for the formatter)."""

    items: list[Any]
    comments: list[Comment] = []
    filename: Optional[str] = None
    source: str = ""


for _cls in (BinOp, Neg, ListExpr, FunCall, Arg, Rule, Stmt, BlockDef, Module):
    _cls.model_rebuild()
