"""Seeds in the region tree: where they are, what stage they are in, and their place in their
parent (what the seed rewrites — seed_stage, fossilize, prune — edit).

A seed is a `Region(kind = "seed")` with attrs `stage` and `alpha` (ops/seed.py); its path is
its label inside the enclosing scope (`blocks.1.s`), its gate node is `path#gate0`.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import GrowthError, did_you_mean
from ..ops.seed import strength
from .graph import MorphGraph, Region
from .lower import join_path, region_paths


@dataclass
class SeedSite:
    path: str
    region: Region
    chain: list  # (parent region, index of the child on the way down), outermost first

    @property
    def parent(self) -> Region:
        return self.chain[-1][0]

    @property
    def index(self) -> int:
        return self.chain[-1][1]


def seed_paths(root: Region) -> list[tuple[str, Region]]:
    """(path, region) of every seed, in pre-order."""
    return [(p, r) for p, r in region_paths(root) if r.kind == "seed"]


def seed_rows(g: MorphGraph) -> list[dict]:
    """One dict per seed: path, stage, alpha (the forward strength), params (of its body)."""
    counts: dict[str, int] = {}
    for key, d in g.nodes():
        n = sum(_prod(s) for s in d.get("param_shapes", {}).values())
        for r, sc in d.get("regions", []):
            if getattr(r, "kind", None) == "seed":
                counts[sc] = counts.get(sc, 0) + n
    return [{"path": p, "stage": r.attrs["stage"], "alpha": strength(r.attrs), "params": counts.get(p, 0)}
            for p, r in seed_paths(g.root)]


def find_seed(g: MorphGraph, path) -> SeedSite:
    """The seed at `path` with its chain of parents; GrowthError (with the seeds there are) if none."""
    path = str(path) if path is not None else ""
    hit = _walk(g.root, path)
    if hit is None:
        have = [p for p, _ in seed_paths(g.root)]
        raise GrowthError(f"no seed at `{path}`", hint=did_you_mean(path, have) or
                          (f"seeds: {', '.join(have)}" if have else "the model has no seeds"))
    return hit


def _walk(root: Region, path: str) -> SeedSite | None:
    def rec(node, scope, chain):
        for i, ch in enumerate(node.children):
            if not isinstance(ch, Region):
                continue
            sc = join_path(scope, ch.name)
            here = chain + [(node, i)]
            if ch.kind == "seed" and sc == path:
                return SeedSite(sc, ch, here)
            if path == sc or path.startswith(sc + ".") or not ch.name:
                hit = rec(ch, sc, here)
                if hit is not None:
                    return hit
        return None

    return rec(root, "", [])


def _prod(s):
    n = 1
    for x in s:
        n *= x
    return n
