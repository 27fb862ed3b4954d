"""Crossover of two parents: exchange whole blocks of a repeat group at aligned positions.

    child = crossover(mod_a, mod_b, random.Random(0), opt_a, opt_b, group="blocks", p=0.5)
    child.module, child.spec_text, child.taken, child.opt_state, child.notes

Parent A is the base: its embedding, head, final norm and every block not taken from B stay.
Position i of `group` is *aligned* when both parents have a child i there and the value entering
and leaving it has the same type in both (the residual width, and lanes); the blocks may differ
inside (B's block 1 may have a wider MLP: the child then has B's structure there). Each aligned
position takes B's block with probability `p`, at least one from B and, with two or more, at
least one from A. The child's graph (a copy of A's with B's regions swapped in) is emitted, the
text rebuilt and compiled (so the child is exactly what its spec says), and each parameter,
buffer, optimizer state and metadata slice comes from the parent whose block owns its name.
No aligned position (other widths, no such group): CrossoverError saying why (the caller
mutates instead).
"""
from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field

import torch

from ..errors import GrowthError, MorphError
from ..ir.build import relower
from ..ir.graph import MorphGraph, Region
from ..rewrites.registry import is_repeat

__all__ = ["crossover", "aligned_positions", "CrossoverError", "Child"]


class CrossoverError(GrowthError):
    """Two parents have no aligned block to exchange (fall back to mutation)."""


@dataclass
class Child:
    module: object                  # the compiled child (weights loaded)
    spec_text: str                  # its emitted .morph text
    taken: dict                     # aligned position -> "a" | "b"
    opt_state: dict | None = None   # name -> optimizer state (state_by_name format)
    notes: list = field(default_factory=list)


def _repeat(g: MorphGraph, group: str, who: str) -> Region:
    it = g.find_region(group)
    if not isinstance(it, Region):
        raise CrossoverError(f"parent {who} has no repeat group `{group}`",
                             hint="crossover exchanges the blocks of a `repeat(n) { ... }` group")
    if not is_repeat(it):
        raise CrossoverError(f"`{group}` of parent {who} is not a repeat group")
    return it


def _interface(g: MorphGraph, path: str):
    """(type entering, type leaving) the region at `path`; None where it has several inputs."""
    from ..verify import find_region

    r = find_region(g, path)
    if r is None or r.input is None:
        return None
    t_in, t_out = g.dag.nodes[r.input].type, g.dag.nodes[r.output].type
    return (t_in.channels, t_in.lanes), (t_out.channels, t_out.lanes)


def _alignment(ga: MorphGraph, gb: MorphGraph, group: str):
    """(aligned positions, a note per position that is not aligned)."""
    na, nb = len(_repeat(ga, group, "A").children), len(_repeat(gb, group, "B").children)
    out, why = [], []
    for i in range(min(na, nb)):
        fa, fb = _interface(ga, f"{group}.{i}"), _interface(gb, f"{group}.{i}")
        if fa is None or fb is None:
            why.append(f"{group}.{i}: not a one-input region in {'A' if fa is None else 'B'}")
        elif fa != fb:
            why.append(f"{group}.{i}: residual widths differ (A {fa[0][0]} -> {fa[1][0]}, "
                       f"B {fb[0][0]} -> {fb[1][0]})")
        else:
            out.append(i)
    return out, why


def aligned_positions(graph_a: MorphGraph, graph_b: MorphGraph, group: str = "blocks") -> list[int]:
    """The positions of `group` whose blocks the two graphs can exchange (see the module doc);
    CrossoverError when either graph has no repeat group `group`."""
    return _alignment(graph_a, graph_b, group)[0]


def _choose(aligned: list[int], rng: random.Random, p: float) -> dict:
    if len(aligned) == 1:
        return {aligned[0]: "b"}
    taken = {i: "b" if rng.random() < p else "a" for i in aligned}
    if "b" not in taken.values():
        taken[rng.choice(aligned)] = "b"
    elif "a" not in taken.values():
        taken[rng.choice(aligned)] = "a"
    return taken


def _owner(name: str, group: str, from_b: set) -> str:
    pre = f"{group}."
    if name.startswith(pre) and name[len(pre):].split(".", 1)[0] in from_b:
        return "b"
    return "a"


def _tensors(m) -> dict:
    return {**dict(m.named_parameters()), **dict(m.named_buffers())}


def crossover(mod_a, mod_b, rng: random.Random, opt_a=None, opt_b=None, group: str = "blocks",
              p: float = 0.5) -> Child:
    """The child of compiled parents `mod_a` (the base) and `mod_b` (see the module doc)."""
    import morphdsl

    from ..verify import static_checks

    ga, gb = mod_a.morph_graph, mod_b.morph_graph
    if ga.width != gb.width:
        raise CrossoverError(f"no aligned blocks: the residual widths differ (parent A {ga.width}, "
                             f"parent B {gb.width})", hint="mutate instead")
    aligned, why = _alignment(ga, gb, group)
    if not aligned:
        raise CrossoverError(f"no aligned position in `{group}`: " + ("; ".join(why) or "no position in common"),
                             hint="mutate instead")
    taken = _choose(aligned, rng, p)
    from_b = {str(i) for i, s in taken.items() if s == "b"}
    notes = [f"aligned positions of `{group}`: {aligned}", *why]

    g = ga.copy()
    kids = _repeat(g, group, "A").children
    kb = _repeat(gb, group, "B").children
    for i in sorted(int(s) for s in from_b):
        new = copy.deepcopy(kb[i])
        new.name = str(i)
        kids[i] = new
        same = {k: v for k, v in ga.param_shapes().items() if _owner(k, group, {str(i)}) == "b"} == \
            {k: v for k, v in gb.param_shapes().items() if _owner(k, group, {str(i)}) == "b"}
        notes.append(f"{group}.{i}: B's block" + ("" if same else " (its structure differs from A's)"))
    for name, bdef in gb.blocks.items():  # definitions B's blocks may be calls of
        if name not in g.blocks:
            g.blocks[name] = bdef
            if hasattr(gb, "block_env"):
                g.block_env = {**getattr(g, "block_env", {}), name: gb.block_env.get(name, dict(gb.params))}
    g.history.append({"op": "crossover", "args": {"target": group, "from_b": sorted(int(s) for s in from_b)}})
    relower(g)
    try:
        static_checks(g)
        text = morphdsl.emit(g)
        with torch.random.fork_rng(devices=[]):  # the fresh weights are overwritten: keep the caller's RNG
            module = morphdsl.compile(morphdsl.build(text))
    except MorphError as e:
        raise CrossoverError(f"the child of the crossover does not build: {e.message}", hint=e.hint) from None

    ref = next(iter(mod_a.parameters()), None)
    if ref is not None:
        module.to(device=ref.device, dtype=ref.dtype if ref.is_floating_point() else None)
    src = {"a": _tensors(mod_a), "b": _tensors(mod_b)}
    with torch.no_grad():
        for name, t in _tensors(module).items():
            who = _owner(name, group, from_b)
            s = src[who].get(name)
            if s is None or s.shape != t.shape:
                got = "none" if s is None else tuple(s.shape)
                raise CrossoverError(f"child tensor `{name}` {tuple(t.shape)} has no match in parent "
                                     f"{who.upper()} (it has {got})")
            t.copy_(s)

    opt_state = None
    if opt_a is not None or opt_b is not None:
        from ..train.optim import state_by_name

        states = {"a": state_by_name(mod_a, opt_a) if opt_a is not None else {},
                  "b": state_by_name(mod_b, opt_b) if opt_b is not None else {}}
        opt_state = {}
        for name, _ in module.named_parameters():
            st = states[_owner(name, group, from_b)].get(name)
            if st:
                opt_state[name] = st

    metas = getattr(mod_a, "morph_meta", None), getattr(mod_b, "morph_meta", None)
    if any(m is not None for m in metas):
        module.morph_meta = _meta(module, mod_a, mod_b, metas, group, from_b)
    notes.append(f"child: {sum(t.numel() for t in module.parameters())} parameters, "
                 f"{len(from_b)} of {len(aligned)} aligned blocks from B")
    return Child(module, text, dict(sorted(taken.items())), opt_state, notes)


def _meta(module, mod_a, mod_b, metas, group, from_b):
    """Each name's slices from its parent; every tensor `init` if they do not tile the child's."""
    from ..growth.metadata import ParamMeta

    ma, mb = (m if m is not None else ParamMeta.initial(mod)
              for m, mod in zip(metas, (mod_a, mod_b)))
    by = {"a": ma.params, "b": mb.params}
    shapes = {n: tuple(t.shape) for n, t in module.named_parameters()}
    try:
        meta = ParamMeta({n: list(by[_owner(n, group, from_b)][n]) for n in shapes})
        meta.check(shapes)
        return meta
    except (KeyError, GrowthError):
        return ParamMeta.initial(module)
