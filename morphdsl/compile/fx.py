"""MorphGraph → torch.fx.GraphModule, built node by node (no tracing).

Submodule paths are the IR paths, so parameter names read like the spec
(`blocks.0.attn.qkv.weight`); every fx node's meta holds its spec location and IR path.
"""
from __future__ import annotations

import functools
import operator

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from ..ir.graph import MorphGraph
from ..ops import get_op


def _attach(root: nn.Module, path: str, mod: nn.Module):
    parts = path.split(".")
    cur = root
    for p in parts[:-1]:
        if not hasattr(cur, p) or not isinstance(getattr(cur, p), nn.Module):
            cur.add_module(p, nn.Module())
        cur = getattr(cur, p)
    cur.add_module(parts[-1], mod)


def build_modules(g: MorphGraph) -> nn.Module:
    root = nn.Module()
    for key, d in g.nodes():
        if d.kind != "op":
            continue
        op = get_op(d.op)
        if op.functional:
            continue
        if d.op == "unembed" and d.resolved.get("tie") and not d.resolved.get("bias"):
            continue
        _attach(root, key, op.build(d.resolved))
    return root


def compile_graph(g: MorphGraph, modules: nn.Module | None = None) -> fx.GraphModule:
    root = modules if modules is not None else build_modules(g)
    graph = fx.Graph()
    env: dict[str, fx.Node] = {}
    for key, d in g.nodes():
        if d.kind == "input":
            env[key] = graph.placeholder("idx" if d.type.channels is None else "x")
            continue
        args = tuple(env[i] for i in d.inputs)
        op = get_op(d.op)
        r = d.resolved
        if d.op == "slice":
            n = graph.call_function(operator.getitem, (args[0], (Ellipsis, slice(r["start"], r["stop"]))))
        elif op.functional:
            fn = op.function(r)
            if isinstance(fn, functools.partial):  # fx names a call by its target's __name__
                fn.__name__, fn.__module__ = d.op, "morphdsl.ops"
            n = graph.call_function(fn, args)
        elif d.op == "unembed" and r.get("tie"):
            w = graph.get_attr(f"{r['tie']}.weight")
            b = graph.get_attr(f"{key}.bias") if r.get("bias") else None
            n = graph.call_function(F.linear, (args[0], w, b))
        else:
            n = graph.call_module(key, args)
        n.meta["morph_path"] = key
        n.meta["morph_span"] = str(d.span) if d.get("span") else None
        env[key] = n
    graph.output(env[g.output])
    gm = fx.GraphModule(root, graph, class_name=_class_name(g.name))
    gm.morph_graph = g
    return gm


def _class_name(name: str) -> str:
    s = "".join(p.capitalize() for p in name.replace("-", "_").split("_") if p)
    return s if s.isidentifier() else "MorphModel"
