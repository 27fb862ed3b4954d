"""The mutation menu: each entry picks a concrete change for a member's graph.

    MUTATIONS["widen_mlp"](graph, rng, {"by": 32})  ->  {"op": "widen_mlp",
                                                         "args": {"target": "blocks.1.mlp", "by": 32}}

A mutation is a growth rewrite (exact: widen_mlp, add_head, insert_block), an inverse one (not
exact, its output change is measured when applied: prune_units, prune_heads, remove_block;
`widen_embed` doubles the residual width, exactly), or a
hyperparameter perturbation (`lr`: x0.8 or x1.2, as in population-based training). A chooser
returns None where it cannot apply (no block to remove, a single head, ...); `choose` then
draws another from the menu. Choices depend only on the graph and `rng`, so selection
replays exactly from the seed. A new mutation is a function and a line in MUTATIONS.
"""
from __future__ import annotations

import random

from ..errors import GrowthError, MorphError


def _sites(g, axis: str, what: str, chains: bool = False) -> list:
    from ..rewrites.axes import find_sites

    try:
        return find_sites(g, None, axis, what, chains=chains)
    except GrowthError:
        return []


def repeat_group(g, kw) -> tuple[str, int] | None:
    """(path, children) of the repeat group a block mutation edits (`target`, default blocks)."""
    from ..ir.lower import find
    from ..rewrites.registry import is_repeat

    target = str(kw.get("target", "blocks"))
    try:
        grp = find(g.root, target)
    except MorphError:
        return None
    if not is_repeat(grp):
        return None
    return target, len(grp.children)


def widen_mlp(g, rng: random.Random, kw: dict):
    sites = _sites(g, "hidden", "mlp", chains=True)
    if not sites:
        return None
    s = rng.choice(sites)
    by = int(kw.get("by", max(8, s.size // 4)))
    return {"op": "widen_mlp", "args": {"target": s.path, "by": by}}


def prune_units(g, rng, kw):
    sites = [s for s in _sites(g, "hidden", "mlp", chains=True) if not s.lanes and s.size >= 8]
    if not sites:
        return None
    s = rng.choice(sites)
    k = int(kw.get("k", max(1, s.size // 4)))
    if not 0 < k < s.size:
        return None
    return {"op": "prune_units", "args": {"target": s.path, "k": k}}


def add_head(g, rng, kw):
    sites = _sites(g, "heads", "attention layer")
    if not sites:
        return None
    return {"op": "add_head", "args": {"target": rng.choice(sites).path, "n": int(kw.get("n", 1))}}


def prune_heads(g, rng, kw):
    sites = [s for s in _sites(g, "heads", "attention layer") if not s.lanes and s.size >= 2]
    if not sites:
        return None
    s = rng.choice(sites)
    k = int(kw.get("k", 1))
    if not 0 < k < s.size:
        return None
    return {"op": "prune_heads", "args": {"target": s.path, "k": k}}


def insert_block(g, rng, kw):
    grp = repeat_group(g, kw)
    if grp is None or grp[1] >= int(kw.get("max_blocks", 12)):
        return None
    path, n = grp
    return {"op": "insert_block", "args": {"target": path, "at": rng.randint(1, n)}}


def remove_block(g, rng, kw):
    grp = repeat_group(g, kw)
    if grp is None or grp[1] < 2:
        return None
    path, n = grp
    return {"op": "remove_block", "args": {"target": path, "at": rng.randrange(n)}}


def widen_embed(g, rng, kw):
    dims = [d.resolved["dim"] for _, d in g.nodes() if d.get("op") == "embed"]
    if not dims or dims[0] * 2 > int(kw.get("max_dim", 512)):
        return None
    return {"op": "widen_embed", "args": {"factor": 2}}


def lr(g, rng, kw):
    return {"op": None, "lr_factor": float(rng.choice(kw.get("factors", [0.8, 1.2])))}


MUTATIONS = {"widen_mlp": widen_mlp, "prune_units": prune_units, "add_head": add_head,
             "prune_heads": prune_heads, "insert_block": insert_block,
             "remove_block": remove_block, "widen_embed": widen_embed, "lr": lr}
STRUCTURAL = tuple(n for n in MUTATIONS if n != "lr")
# the arguments each mutation reads: "int" (a positive integer), "path", "factors"
ARGS = {"widen_mlp": {"by": "int"}, "prune_units": {"k": "int"}, "add_head": {"n": "int"},
        "prune_heads": {"k": "int"}, "insert_block": {"target": "path", "max_blocks": "int"},
        "remove_block": {"target": "path"}, "widen_embed": {"max_dim": "int"},
        "lr": {"factors": "factors"}}
assert set(ARGS) == set(MUTATIONS)


def check_args(name: str, kwargs: dict) -> str | None:
    """What is wrong with a mutation's arguments (None: nothing)."""
    for k, v in kwargs.items():
        kind = ARGS[name].get(k)
        if kind is None:
            known = ", ".join(ARGS[name]) or "none"
            return f"mutation '{name}' takes no argument '{k}' (its arguments: {known})"
        ok = {"int": lambda x: isinstance(x, int) and not isinstance(x, bool) and x > 0,
              "path": lambda x: isinstance(x, str) and bool(x),
              "factors": lambda x: isinstance(x, list) and bool(x) and all(
                  isinstance(f, (int, float)) and not isinstance(f, bool) and f > 0 for f in x)}[kind]
        if not ok(v):
            want = {"int": "a positive integer", "path": "a path like blocks",
                    "factors": "a list of positive numbers"}[kind]
            return f"mutation '{name}': '{k}' must be {want}, got {v!r}"
    return None


def choose(g, menu, rng: random.Random, only=None) -> dict:
    """One applicable mutation drawn from `menu` (Mutation entries) by weight; `only`
    restricts the draw to those names (e.g. STRUCTURAL for a random architecture)."""
    pool = [m for m in menu if m.weight > 0 and (only is None or m.name in only)]
    while pool:
        m = rng.choices(pool, weights=[x.weight for x in pool])[0]
        out = MUTATIONS[m.name](g, rng, m.kwargs)
        if out is not None:
            return {"name": m.name, "args": {}, "lr_factor": 1.0, **out}
        pool = [x for x in pool if x is not m]
    raise GrowthError("no mutation in the menu applies to this member",
                      hint="add one that does, e.g. `mutate(widen_mlp, weight = 1)`")


def describe(m: dict | None) -> str:
    if not m:
        return "-"
    if m.get("op") is None:
        return f"lr x{m['lr_factor']:g}"
    args = ", ".join(f"{k}={v}" for k, v in m["args"].items())
    return f"{m['op']}({args})"


def describe_arch(g) -> str:
    """`d 32 | 3 blocks: h2 m64, h2 m96, h3 m64` (width, then heads and MLP hidden per block)."""
    dims = [d.resolved["dim"] for _, d in g.nodes() if d.get("op") == "embed"]
    per: dict = {}
    for key, d in g.units():
        if d.kind != "op" or d.op not in ("attention", "mlp"):
            continue
        blk = key.rsplit(".", 1)[0]
        per.setdefault(blk, []).append(f"h{d.resolved['heads']}" if d.op == "attention"
                                       else f"m{d.resolved['hidden']}")
    head = f"d {dims[0]}" if dims else "model"
    return f"{head} | {len(per)} blocks: " + ", ".join(" ".join(v) for v in per.values())
