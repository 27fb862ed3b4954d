"""IR data structures.

A `MorphGraph` holds the model as a *region tree* — sequences, residuals, parallel branches,
partitions, named groups, with `OpInst` leaves — and its lowering to a networkx DAG (a node per
op instance, keyed by its dotted path, with resolved arguments, shapes and source span; edges are
tensors). Rewrites edit the tree and re-lower; verifiers, shape inference and the fx compiler
read the DAG.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from ..errors import Span
from ..ops.types import TensorType  # noqa: F401  (re-exported: the IR's tensor type)


class Node(dict):
    """The attributes of one DAG node, typed: `d.op`, `d.resolved`, ... (still a dict, so
    `d["op"]` reads the same). Written by the lowering (ir/lower.py) for every node:

    kind          "input" | "op"
    op            the op's registry name ("attention", "add" for a residual add, ...)
    inputs        DAG keys of its inputs, in order
    args          the user's arguments as written (evaluated)
    resolved      the arguments after shape inference (inferred widths, defaults)
    type          the output TensorType; in_types: the input TensorTypes
    param_shapes  parameter name -> shape; buffer_shapes likewise
    span          where the spec says it (None for the input)
    lanes         the lane count of the innermost partition around it (None outside)
    regions       the (region, path) pairs around it, outermost first
    owner         for a part of a composite op (`attn.qkv` of `attn: attention`): the
                  composite's key; None otherwise (see `MorphGraph.units`)
    """

    __slots__ = ()

    def _get(name):  # noqa: N805 - a property factory used in the class body
        return property(lambda self: self.get(name), doc=f"`{name}` (see the class docstring)")

    kind = _get("kind")
    op = _get("op")
    inputs = _get("inputs")
    args = _get("args")
    resolved = _get("resolved")
    type = _get("type")
    in_types = _get("in_types")
    param_shapes = _get("param_shapes")
    buffer_shapes = _get("buffer_shapes")
    span = _get("span")
    lanes = _get("lanes")
    regions = _get("regions")
    owner = _get("owner")
    parts = _get("parts")    # a composite's unit: its part keys, in order
    output = _get("output")  # a composite's unit: the key of its last part
    del _get


class IRGraph(nx.DiGraph):
    """A networkx DiGraph whose node attributes are `Node`s."""

    node_attr_dict_factory = Node


@dataclass
class OpInst:
    """One op instance: `name: op(args)` in the spec."""

    name: str
    op: str
    args: dict
    span: Span | None = None
    convex: bool = False


@dataclass
class Region:
    """A structured region. kind: group | residual | parallel | partition | seed.

    - group: a sequence; if `name` is set it is a path component (a submodule).
    - residual: out = x + body(x).
    - parallel: `children` are branches (each a group); attrs: join, split.
    - partition: a sequence whose ops run per lane; attrs: lanes.
    - seed: a growth on probation, out = gate(body(x)); attrs: stage, alpha (ops/seed.py).
    `attrs["block"]` / `attrs["pyramid"]` record where a group came from, for emission.
    """

    kind: str
    children: list = field(default_factory=list)
    name: str | None = None
    attrs: dict = field(default_factory=dict)
    span: Span | None = None
    convex: bool = False


@dataclass
class MorphGraph:
    """The IR of a model: the region tree, its DAG, and the spec's other sections."""

    name: str
    root: Region
    dag: nx.DiGraph
    input_type: TensorType
    output: str                                   # DAG key of the output node
    sections: dict = field(default_factory=dict)  # data / train settings, grow rules (AST)
    blocks: dict = field(default_factory=dict)    # block definitions (AST) by name
    params: dict = field(default_factory=dict)    # top-level spec parameters (evaluated)
    filename: str | None = None
    history: list = field(default_factory=list)   # rewrites applied, in order
    setting_spans: dict = field(default_factory=dict)  # data/train setting -> its span
    source_module: Any = None  # the parsed spec it was built from (emit keeps its comments)

    # --- queries
    def nodes(self):
        """(key, attrs) of every DAG node in topological order."""
        return [(k, self.dag.nodes[k]) for k in self.order]

    @property
    def order(self) -> list[str]:
        return self.dag.graph["order"]

    def units(self):
        """(key, attrs) of every op *as written*, in order: a composite op (attention) appears
        once, in place of its parts, with their parameters (`qkv.weight`, ...), its resolved
        args and its input; inputs that are a composite's output name the composite. This is
        the view growth works on: a rewrite resizes `attn`'s heads, not its parts."""
        comp = self.dag.graph.get("units", {})
        alias = {u.output: k for k, u in comp.items()}
        out, seen = [], set()
        for k in self.order:
            d = self.dag.nodes[k]
            if d.owner is not None:
                if d.owner not in seen:
                    seen.add(d.owner)
                    out.append((d.owner, comp[d.owner]))
                continue
            if any(i in alias for i in d.inputs):
                d = Node({**d, "inputs": [alias.get(i, i) for i in d.inputs]})
            out.append((k, d))
        return out

    def unit(self, key: str) -> Node | None:
        """The attrs of op `key` as written: a composite's unit, else its DAG node (None if
        there is neither)."""
        comp = self.dag.graph.get("units", {})
        if key in comp:
            return comp[key]  # its inputs name ops as written (the lowering stores them so)
        return self.dag.nodes[key] if key in self.dag else None

    def written(self, key: str) -> str:
        """The key of the op as the spec writes it: a part's composite (`attn` for `attn.sdpa`),
        else `key` itself. Verifier findings name this."""
        d = self.dag.nodes[key] if key in self.dag else None
        return d.owner if d is not None and d.owner else key

    def op_nodes(self, op: str | None = None):
        """(key, attrs) of the ops as written (`units`), all or those of one op: `attention`
        finds `blocks.0.attn`; its parts are in `nodes()`."""
        return [(k, d) for k, d in self.units() if d.kind == "op" and (op is None or d.op == op)]

    def param_shapes(self) -> dict[str, tuple]:
        """Every parameter's full name and shape, as in the compiled module's state dict."""
        out = {}
        for k, d in self.nodes():
            for pn, shp in d.get("param_shapes", {}).items():
                out[f"{k}.{pn}"] = tuple(shp)
        return out

    def n_params(self) -> int:
        n = 0
        for shp in self.param_shapes().values():
            p = 1
            for x in shp:
                p *= x
            n += p
        return n

    def copy(self) -> "MorphGraph":
        return copy.deepcopy(self)

    def find_region(self, path: str):
        """The region or OpInst at a dotted path (None if absent), with its parent list."""
        from .lower import find

        return find(self.root, path)

    @property
    def ctx(self) -> int | None:
        """The longest sequence the model takes: its (shortest) position table; None without one
        (rotary or no positions: any length)."""
        ctx = [d.resolved["ctx"] for _, d in self.op_nodes("pos_embed")]
        return min(ctx) if ctx else None

    @property
    def width(self) -> int | None:
        """The residual width: the channels of the first op's output (the embedding's dim)."""
        first = next((d for _, d in self.nodes() if d.kind == "op" and d.op != "input"), None)
        return first.type.channels if first is not None else None

    @property
    def vocab(self) -> int | None:
        out = self.dag.nodes[self.output].type
        return out.channels
