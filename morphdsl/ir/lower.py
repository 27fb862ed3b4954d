"""Region tree → networkx DAG, with shape inference (no weights are allocated).

Node keys are dotted paths (`blocks.0.attn`); structural nodes (residual adds, joins, slices)
get `scope#kindN` keys. Each node records op, user args, resolved args, input/output types,
parameter shapes, span, and the lane count in force.
"""
from __future__ import annotations

import math

from ..errors import ShapeError, did_you_mean
from ..limits import MAX_PARAMS, MAX_TENSOR, fmt_count
from ..ops import get_op
from ..ops.registry import Part
from .graph import IRGraph, Node, OpInst, Region, TensorType


class Lowering:
    def __init__(self):
        self.g = IRGraph()
        self.order: list[str] = []
        self.counters: dict[str, int] = {}
        self.n_params = 0

    def node(self, key, inputs, **attrs):
        self.g.add_node(key, inputs=list(inputs), **attrs)
        for i in inputs:
            self.g.add_edge(i, key)
        self.order.append(key)
        return key

    def struct_key(self, scope, kind):
        c = self.counters.get((scope, kind), 0)
        self.counters[(scope, kind)] = c + 1
        return f"{scope}#{kind}{c}" if scope else f"#{kind}{c}"

    # ------------------------------------------------------------------
    def seq(self, items, x, t, scope, lanes, regions):
        for it in items:
            x, t = self.lower(it, x, t, scope, lanes, regions)
        return x, t

    def lower(self, it, x, t, scope, lanes, regions):
        if isinstance(it, OpInst):
            return self.op(it, x, t, scope, lanes, regions)
        sc = join_path(scope, it.name)
        regs = regions + ([(it, sc)] if (it.convex or it.kind in ("partition",) or it.name) else [])
        if it.kind == "group":
            return self.seq(it.children, x, t, sc, lanes, regs)
        if it.kind == "partition":
            L = it.attrs["lanes"]
            if t.channels is None or t.channels % L:
                raise ShapeError(f"{t} does not split into {L} lanes", it.span,
                                 hint="the width must be a multiple of the lane count")
            y, u = self.seq(it.children, x, TensorType(t.channels, L), sc, L, regs)
            return y, TensorType(u.channels, None)
        if it.kind == "residual":
            y, u = self.seq(it.children, x, t, sc, lanes, regs)
            if u.channels != t.channels:
                raise ShapeError(f"residual body changes the width from {t.channels} to {u.channels}",
                                 it.span, hint="the body of a residual must keep the width")
            k = self.struct_key(sc, "add")
            self.node(k, [x, y], kind="op", op="add", args={}, resolved={"n": 2}, type=t,
                      in_types=[t, u], span=it.span, lanes=lanes, regions=regs, param_shapes={},
                      buffer_shapes={}, residual=True)
            return k, t
        if it.kind == "parallel":
            return self.parallel(it, x, t, sc, lanes, regs)
        if it.kind == "seed":
            return self.seed(it, x, t, sc, lanes, regs)
        raise ValueError(f"unknown region kind {it.kind}")

    def seed(self, it, x, t, sc, lanes, regs):
        """A seed: its body, then a `seed_gate` node `s#gate0` holding the stage (ops/seed.py)."""
        y, u = self.seq(it.children, x, t, sc, lanes, regs)
        if u.channels != t.channels:
            raise ShapeError(f"seed `{sc}` changes the width from {t.channels} to {u.channels}", it.span,
                             node=sc, hint="a seed's output is added to the host's: its body must keep the width")
        r = {"stage": it.attrs["stage"], "alpha": it.attrs["alpha"]}
        k = self.struct_key(sc, "gate")
        self.node(k, [y], kind="op", op="seed_gate", args=dict(r), resolved=r, type=u, in_types=[u],
                  span=it.span, lanes=lanes, regions=regs, param_shapes={}, buffer_shapes={}, seed=sc)
        return k, u

    def parallel(self, it, x, t, sc, lanes, regs):
        n = len(it.children)
        outs, types = [], []
        for i, br in enumerate(it.children):
            bx, bt = x, t
            if it.attrs.get("split"):
                if t.channels is None or t.channels % n:
                    raise ShapeError(f"{t} does not split into {n} equal parts", it.span,
                                     hint="the width must be a multiple of the number of branches")
                w = t.channels // n
                k = self.struct_key(sc, "slice")
                r = {"start": i * w, "stop": (i + 1) * w}
                bt = TensorType(w, None)
                bx = self.node(k, [x], kind="op", op="slice", args=r, resolved=r, type=bt, in_types=[t],
                               span=it.span, lanes=lanes, regions=regs, param_shapes={}, buffer_shapes={})
            y, u = self.lower(br, bx, bt, sc, lanes, regs)
            outs.append(y)
            types.append(u)
        join = it.attrs["join"]
        op = get_op(join)
        try:
            r, ot = op.infer({"n": n}, types, lanes)
        except ValueError as e:
            msg, hint = _msg_hint(e, join)
            raise ShapeError(msg, it.span, hint=hint) from None
        k = self.struct_key(sc, join)
        self.node(k, outs, kind="op", op=join, args={}, resolved={**r, "n": n}, type=ot, in_types=types,
                  span=it.span, lanes=lanes, regions=regs, param_shapes={}, buffer_shapes={})
        return k, ot

    def op(self, it: OpInst, x, t, scope, lanes, regions):
        op = get_op(it.op)
        key = f"{scope}.{it.name}" if scope else it.name
        defaults = {k: f.default for k, f in op.Args.model_fields.items() if not f.is_required()}
        try:
            r, ot = op.infer({**defaults, **it.args}, [t], lanes)
        except ValueError as e:
            msg, hint = _msg_hint(e, it.op)
            raise ShapeError(msg, it.span, hint=hint, node=key) from None
        if it.op == "unembed" and r.get("tie"):
            self.check_tie(r, t, it.span, key)
        shapes = op.param_shapes(r)
        buffers = op.buffer_shapes(r)
        self.check_sizes(it, key, shapes, buffers)
        if lanes and not op.lanes_ok:
            raise ShapeError(f"`{it.op}` cannot run inside a partition", it.span, node=key,
                             hint="move it outside `partition { }`")
        regs = regions + ([(it, key)] if it.convex else [])
        parts = op.parts(r)
        if parts is not None:
            return self.composite(it, key, parts, x, t, lanes, regs,
                                  Node(kind="op", op=it.op, args=dict(it.args), resolved=r, type=ot,
                                       in_types=[t], span=it.span, lanes=lanes, regions=regs,
                                       param_shapes=shapes, buffer_shapes=buffers, convex=it.convex,
                                       inputs=[self.g.nodes[x].get("owner") or x]))  # as written
        return self.node(key, [x], kind="op", op=it.op, args=dict(it.args), resolved=r, type=ot,
                         in_types=[t], span=it.span, lanes=lanes, regions=regs,
                         param_shapes=shapes, buffer_shapes=buffers,
                         convex=it.convex), ot

    def composite(self, it: OpInst, key, parts, x, t, lanes, regs, unit: Node):
        """Lower a composite op's parts in its scope (`attn.qkv`, `attn.sdpa`, ...); each part
        node names its `owner`, and the composite is kept as a *unit* (MorphGraph.units)."""
        def inst(p):
            return OpInst(p.name, p.op, dict(p.args), it.span, False)

        body = [inst(p) if isinstance(p, Part) else
                Region("parallel", [Region("group", [inst(b)]) for b in p.branches],
                       attrs={"join": p.join, "split": False}, span=it.span) for p in parts]
        first = len(self.order)
        y, u = self.seq(body, x, t, key, lanes, regs)
        if u != unit.type:
            raise ShapeError(f"`{it.op}` expands to parts that give {u}, not {unit.type}", it.span,
                             node=key, hint="a bug in the op's `parts` rule")
        keys = self.order[first:]
        for k in keys:
            self.g.nodes[k]["owner"] = key
        self.g.graph.setdefault("units", {})[key] = Node(unit, parts=keys, output=y)
        return y, u

    def check_sizes(self, it: OpInst, key: str, shapes: dict, buffers: dict) -> None:
        """One tensor past MAX_TENSOR, or all parameters past MAX_PARAMS: an error at the op."""
        for pname, shape in {**shapes, **buffers}.items():
            n = math.prod(shape)
            if n > MAX_TENSOR:
                dims = " x ".join(fmt_count(x) for x in shape)
                raise ShapeError(f"`{it.op}` would need a {dims} `{pname}` ({fmt_count(n)} numbers)",
                                 it.span, node=key,
                                 hint=f"a single tensor is limited to {fmt_count(MAX_TENSOR)} numbers; "
                                      "check the arithmetic of its arguments")
            if pname in shapes:
                self.n_params += n
        if self.n_params > MAX_PARAMS:
            raise ShapeError(f"the model passes {fmt_count(MAX_PARAMS)} parameters at `{key}`", it.span,
                             node=key, hint="check the widths and counts: models are limited to "
                                            f"{fmt_count(MAX_PARAMS)} parameters")

    def check_tie(self, r, t, span, key):
        """`unembed(tie = name)` must name an earlier embed of the same vocab and width."""
        tie = r["tie"]
        d = self.g.nodes[tie] if tie in self.g else None
        if d is None or d.get("kind") != "op":
            embeds = [k for k, v in self.g.nodes(data=True) if v.get("op") == "embed"]
            raise ShapeError(f"`tie = {tie}`: there is no layer `{tie}` before this unembed", span,
                             node=key, hint=did_you_mean(tie, embeds) or
                             "`tie` names an `embed` layer by its path, e.g. `tie = tok`")
        if d.op != "embed":
            raise ShapeError(f"`tie = {tie}` names a `{d['op']}`, not an `embed`", span, node=key,
                             hint="only an embedding's weight can be shared with the unembedding")
        ev, ed = d.resolved["vocab"], d.resolved["dim"]
        if (ev, ed) != (r["vocab"], t.channels):
            raise ShapeError(f"tied unembed maps {t.channels} -> {r['vocab']} but `{tie}` embeds "
                             f"{ev} tokens in {ed} channels", span, node=key,
                             hint=f"use vocab = {ev} on width {ed}, or drop `tie`")


def _msg_hint(e: ValueError, op: str) -> tuple[str, str | None]:
    """An op's shape rule raises ValueError(message[, hint]); prefix the op name once."""
    msg = str(e.args[0]) if e.args else str(e)
    hint = e.args[1] if len(e.args) > 1 else None
    if not msg.startswith((op, f"`{op}`")):
        msg = f"{op}: {msg}"
    return msg, hint


def lower(root: Region, input_type: TensorType):
    lw = Lowering()
    x = lw.node("input", [], kind="input", op="input", type=input_type, span=None, lanes=None,
                regions=[], param_shapes={}, buffer_shapes={}, resolved={}, args={}, in_types=[])
    out, _ = lw.seq(root.children, x, input_type, "", None, [])
    lw.g.graph["order"] = lw.order
    return lw.g, out


def join_path(scope: str, name: str | None) -> str:
    """The dotted path of `name` inside `scope` (an unnamed region adds no component)."""
    return f"{scope}.{name}" if (scope and name) else (name or scope)


def region_paths(root: Region) -> list[tuple[str, Region]]:
    """Every region under `root` with its dotted scope path, in pre-order."""
    out = []

    def walk(items, scope):
        for it in items:
            if isinstance(it, Region):
                sc = join_path(scope, it.name)
                out.append((sc, it))
                walk(it.children, sc)

    walk(root.children, "")
    return out


def find(root: Region, path: str):
    """The region or op at a dotted path, or None."""
    parts = path.split(".") if path else []

    def walk(items, parts):
        if not parts:
            return None
        for it in items:
            if isinstance(it, OpInst):
                if it.name == parts[0] and len(parts) == 1:
                    return it
                continue
            if it.name is None:
                hit = walk(it.children, parts)
                if hit is not None:
                    return hit
            elif it.name == parts[0]:
                return it if len(parts) == 1 else walk(it.children, parts[1:])
        return None

    return walk(root.children, parts)
