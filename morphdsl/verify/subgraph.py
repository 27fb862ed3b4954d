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


def _ancestors(n: fx.Node, stop=()) -> set:
    """`n` and every fx node it reads, not looking past the nodes in `stop`."""
    stop = {stop} if isinstance(stop, fx.Node) else set(stop)
    seen, todo = set(), [n]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        if m not in stop:
            todo.extend(m.all_input_nodes)
    return seen


class CutFunction:
    """(x_1..x_k) -> values of the fx nodes `outs` when the nodes `ins` hold x_1..x_k.

    The value of an `ins` node is taken as given even where the model computes it from other
    nodes: a *cut*. With the partition input and every mixer output as `ins`, the outputs depend
    on each input only through paths that cross no mixer (the lane probe's segments)."""

    def __init__(self, module, ins: list[str], outs: list[str]):
        nodes = _fx_nodes(module)
        missing = [k for k in [*ins, *outs] if k not in nodes]
        if missing:
            raise VerifyError(f"no node `{missing[0]}` in the compiled model")
        self.module = module
        self.ins, self.outs = [nodes[k] for k in ins], [nodes[k] for k in outs]
        need = set().union(*(_ancestors(o, stop=self.ins) for o in self.outs))
        self.order = [n for n in module.graph.nodes if n in need and n not in self.ins]
        for n in self.order:
            if n.op == "placeholder":
                raise VerifyError(f"`{outs[0]}` does not depend on {', '.join(f'`{k}`' for k in ins)} alone")
        self.interp = fx.Interpreter(module)

    def __call__(self, *xs):
        env = dict(zip(self.ins, xs))
        for n in self.order:
            args = fx.node.map_arg(n.args, lambda a: env[a])
            kwargs = fx.node.map_arg(n.kwargs, lambda a: env[a])
            env[n] = getattr(self.interp, n.op)(n.target, args, kwargs)
        return [env[o] for o in self.outs]


class SubFunction(CutFunction):
    """x -> value of fx node `out` when fx node `inp` holds x (a callable, like a module)."""

    def __init__(self, module, inp: str, out: str):
        super().__init__(module, [inp], [out])
        self.inp, self.out = self.ins[0], self.outs[0]

    def __call__(self, x):
        return super().__call__(x)[0]


def converted(module, dtype=None):
    """The module in eval mode; with `dtype`, a converted copy (the original is untouched)."""
    if dtype is not None:
        module = copy.deepcopy(module).to(dtype)
    return module.eval()


def subfunction(module, inp: str, out: str, dtype=None) -> SubFunction:
    """The sub-function between two IR nodes; with `dtype`, on a converted copy of the module."""
    return SubFunction(converted(module, dtype), inp, out)


def region_function(module, path: str, dtype=torch.float64) -> SubFunction:
    """The function a region (or op) at `path` computes of the value entering it."""
    g = module.morph_graph
    rio = find_region(g, path)
    if rio is None:
        raise VerifyError(f"no region or op `{path}` in the model")
    if rio.input is None:
        raise VerifyError(f"`{path}` has more than one input")
    f = subfunction(module, rio.input, rio.output, dtype)
    f.in_dim = g.dag.nodes[rio.input].type.channels
    return f
