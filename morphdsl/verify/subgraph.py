"""Run part of a compiled model: the fx nodes between a region's input and output node.

`region_function(module, path)` gives the sub-function x -> region(x) of a compiled model, where
x is the value entering the region (e.g. for the Jensen audit of a convex region deep inside a
model). Nodes are found by their IR path (`node.meta["morph_path"]`).
"""
from __future__ import annotations

import copy

import torch
import torch.fx as fx

from ..errors import VerifyError
from .dcp import find_region


def _fx_nodes(module) -> dict[str, fx.Node]:
    out = {}
    for n in module.graph.nodes:
        if n.op == "placeholder":
            out["input"] = n
        elif "morph_path" in n.meta:
            out[n.meta["morph_path"]] = n
    return out


def _ancestors(n: fx.Node, stop: fx.Node | None = None) -> set:
    seen, todo = set(), [n]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        if m is not stop:
            todo.extend(m.all_input_nodes)
    return seen


class SubFunction:
    """x -> value of fx node `out` when fx node `inp` holds x (a callable, like a module)."""

    def __init__(self, module, inp: str, out: str):
        nodes = _fx_nodes(module)
        self.module, self.inp, self.out = module, nodes[inp], nodes[out]
        need = _ancestors(self.out, stop=self.inp)
        self.order = [n for n in module.graph.nodes if n in need and n is not self.inp]
        for n in self.order:
            if n.op == "placeholder":
                raise VerifyError(f"`{out}` does not depend on `{inp}` alone")
        self.interp = fx.Interpreter(module)

    def __call__(self, x):
        env = {self.inp: x}
        for n in self.order:
            args = fx.node.map_arg(n.args, lambda a: env[a])
            kwargs = fx.node.map_arg(n.kwargs, lambda a: env[a])
            env[n] = getattr(self.interp, n.op)(n.target, args, kwargs)
        return env[self.out]


def subfunction(module, inp: str, out: str, dtype=None) -> SubFunction:
    """The sub-function between two IR nodes; with `dtype`, on a converted copy of the module."""
    if dtype is not None:
        module = copy.deepcopy(module).to(dtype)
    module.eval()
    return SubFunction(module, inp, out)


def region_function(module, path: str, dtype=torch.float64) -> SubFunction:
    """The function a region (or op) at `path` computes of the value entering it."""
    g = module.morph_graph
    rio = find_region(g, path)
    if rio is None:
        raise VerifyError(f"no region or op `{path}` in the model")
    if rio.input is None:
        raise VerifyError(f"`{path}` has more than one input")
    f = subfunction(module, rio.input, rio.output, dtype)
    f.in_dim = g.dag.nodes[rio.input]["type"].channels
    return f
