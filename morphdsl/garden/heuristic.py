"""The heuristic gardener: germinate a seed on a validation plateau, at the site whose
parameters had the largest gradients; the lifecycle (lifecycle.py) then blends it in, measures
it, and prunes it when its contribution is negative or fossilizes it.

    grow { heuristic(patience = 3, min_delta = 0.01, cooldown = 200, max_params = 2000000,
                     max_seeds = 1, kinds = ["mlp"], hidden = 256) }

A plateau: the relative improvement over the best validation loss stays below `min_delta` for
`patience` evaluations. With `by = p`, a run that has planted nothing by the fraction p of its
steps (or FLOPs budget) plants as if a plateau had been seen: a loss that keeps falling never
plateaus, and that is when extra capacity can pay. A seed is planted only `cooldown` steps after
the last germination, while fewer than `max_seeds` seeds are alive, while the model has fewer
than `max_params` parameters, and, with `max_pruned = n`, until n seeds have been pruned (the
gates' `min_contribution` judged them not worth their compute: the host does not need more). Sites are the blocks of every repeat (`blocks.0`, `blocks.1`, ...); the signal is
the RMS gradient of each block's parameters at the last step (seeds excluded). Kinds are used
in turn. Every decision's reason (the plateau statistics, each site's signal) is the growth
event's `reason` in events.jsonl.
"""
from __future__ import annotations

from ..ir.graph import Region
from ..ir.seeds import seed_paths
from ..rewrites.registry import is_repeat
from ..train.growth import ControlState, GrowthAction
from .signals import grad_rms

KINDS = ("mlp", "attn")
SITES = ("grad", "last", "first")


def germinate_action(site: str, kind: str, hidden, heads, reason: str) -> GrowthAction:
    """germinate(site, kind, hidden | heads): the one way a controller plants a seed."""
    kw = {"kind": kind}
    if kind == "mlp" and hidden is not None:
        kw["hidden"] = int(hidden)
    if kind == "attn":
        kw["heads"] = int(heads)
    return GrowthAction("germinate", [site], kw, reason=reason)


def sites(graph) -> list[str]:
    """Where a seed can go: the blocks of every repeat group, as paths."""
    out = []

    def rec(region, scope):
        for ch in region.children:
            if not isinstance(ch, Region):
                continue
            sc = f"{scope}.{ch.name}" if scope and ch.name else (ch.name or scope)
            if ch.kind == "group" and ch.name and ch.children and is_repeat(ch):
                out.extend(f"{sc}.{i}" for i in range(len(ch.children)))
            elif ch.kind != "seed":
                rec(ch, sc)

    rec(graph.root, "")
    return out


class Heuristic:
    """Germinate on a validation plateau at the site with the largest gradients."""

    usage = ("heuristic(patience = 3, min_delta = 0.01, cooldown = 200, max_params = None, "
             "max_seeds = 1, kinds = [\"mlp\", \"attn\"], hidden = None, heads = 1, by = None, "
             "max_pruned = None, site = \"grad\")")

    def __init__(self, patience: int = 3, min_delta: float = 0.01, cooldown: int = 200,
                 max_params: int | None = None, max_seeds: int = 1, kinds=("mlp",),
                 hidden: int | None = None, heads: int = 1, by: float | None = None,
                 max_pruned: int | None = None, site: str = "grad"):
        kinds = [kinds] if isinstance(kinds, str) else list(kinds)
        bad = [k for k in kinds if k not in KINDS]
        if bad or not kinds:
            raise ValueError(f"heuristic(): kinds must be from {', '.join(KINDS)}, got {kinds!r}")
        ints = [("patience", patience, 1), ("cooldown", cooldown, 0), ("max_seeds", max_seeds, 1),
                ("heads", heads, 1)] + ([("max_pruned", max_pruned, 1)] if max_pruned is not None else [])
        for k, v, lo in ints:
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"heuristic(): `{k}` must be an integer >= {lo}, got {v!r}")
        if by is not None and (isinstance(by, bool) or not isinstance(by, (int, float)) or not 0 < by < 1):
            raise ValueError(f"heuristic(): `by` must be a fraction of the run in (0, 1), got {by!r}")
        if site not in SITES:
            raise ValueError(f"heuristic(): `site` must be one of {', '.join(SITES)}, got {site!r}")
        if isinstance(min_delta, bool) or not isinstance(min_delta, (int, float)) or min_delta < 0:
            raise ValueError(f"heuristic(): `min_delta` must be a number >= 0, got {min_delta!r}")
        self.patience, self.min_delta, self.cooldown = patience, float(min_delta), cooldown
        self.max_params, self.max_seeds, self.kinds = max_params, max_seeds, kinds
        self.hidden, self.heads = hidden, heads
        self.by, self.max_pruned, self.site = (None if by is None else float(by)), max_pruned, site
        self.engine = None
        self.state = {"best": None, "bad": 0, "planted": 0, "last": None, "watch": [], "pruned": 0}

    def _resolve(self, alive: list[str]) -> None:
        """Count the seeds that left since the last evaluation: fossilized ones keep their
        parameters' names (they are part of the host now), pruned ones are gone."""
        st = self.state
        names = None
        for p in [p for p in st["watch"] if p not in alive]:
            if names is None:
                names = [n for n, _ in self.engine.model.named_parameters()]
            st["pruned"] += not any(n.startswith(p + ".") for n in names)
        st["watch"] = list(alive)

    def bind(self, engine) -> None:
        self.engine = engine

    def decide(self, s: ControlState) -> list[GrowthAction]:
        if s.event != "eval" or s.val_loss is None:
            return []
        st = self.state
        best = st["best"]
        gain = None if best is None else (best - s.val_loss) / abs(best)
        st["bad"] = 0 if gain is None or gain >= self.min_delta else st["bad"] + 1
        st["best"] = s.val_loss if best is None else min(best, s.val_loss)
        graph = self.engine.model.morph_graph
        alive = [p for p, _ in seed_paths(graph.root)]
        self._resolve(alive)
        deadline = self.by is not None and st["planted"] == 0 and s.progress >= self.by
        if st["bad"] < self.patience and not deadline:
            return []
        if self.max_pruned is not None and st["pruned"] >= self.max_pruned:
            return []
        if len(alive) >= self.max_seeds:
            return []
        if st["last"] is not None and s.step - st["last"] < self.cooldown:
            return []
        if self.max_params is not None and s.params >= self.max_params:
            return []
        where = sites(graph)
        if not where:
            return []
        signal = grad_rms(self.engine.model, where, exclude=alive)
        site = {"last": where[-1], "first": where[0]}.get(self.site) or \
            max(where, key=lambda p: (signal[p], -where.index(p)))
        kind = self.kinds[st["planted"] % len(self.kinds)]
        sig = ", ".join(f"{p} {signal[p]:.3g}" for p in where)
        when = (f"plateau: gain < {self.min_delta:g} for {st['bad']} evaluations" if st["bad"] >= self.patience
                else f"deadline: nothing planted by {self.by:g} of the run (at {s.progress:.3f})")
        how = "has the largest gradient RMS" if self.site == "grad" else f"is the {self.site} block"
        why = f"{when} (best {st['best']:.4f}); site {site} {how} (gradient RMS {sig})"
        st.update(bad=0, planted=st["planted"] + 1, last=s.step)
        return [germinate_action(site, kind, self.hidden, self.heads, why)]

    def state_dict(self) -> dict:
        return {"state": dict(self.state)}

    def load_state_dict(self, d: dict) -> None:
        self.state = {**self.state, **(d.get("state") or {})}
