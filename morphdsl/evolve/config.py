"""The `evolve { }` section: population, generations, the mutation menu and selection.

    evolve {
      population  = 6        # members
      generations = 5        # or `flops = 2e12`: the whole population's training budget
      steps       = 100      # training steps per member per generation
      crossover   = 0.25     # share of children bred from two parents (else mutated)
      tournament  = 2        # parents are the best of `tournament` random survivors
      truncation  = 0.5      # the worst share of the population is replaced each generation
      param_penalty = 0.0    # fitness = val_loss + param_penalty * params / 1e6
      flops_penalty = 0.0    #         + flops_penalty * (member's FLOPs so far) / 1e12
      finish      = 0        # then the best member trains on alone for this many steps
      per_generation = "flops"  # each member spends `steps` steps' FLOPs (at the starting
                                # size) per generation: one that grew takes fewer; or "steps"
      lr_spread   = 1        # s > 1: generation 0's LRs spread over [lr / s, lr * s]
      seed        = 0
      mutate(widen_mlp, weight = 2, by = 32)   # the menu: a mutation, its weight, its args
      mutate(lr, weight = 1)
    }

`parse_section(stmt, env)` (called when a spec is built) turns the section into a plain dict
kept in `graph.sections["evolve"]`; `EvolveConfig.from_section(d, overrides)` checks it. Errors
point at the offending line.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..errors import SpecError, did_you_mean

DEFAULT_MENU = (("widen_mlp", 2.0, {}), ("add_head", 1.0, {}), ("insert_block", 1.0, {}),
                ("prune_units", 1.0, {}), ("prune_heads", 0.5, {}), ("remove_block", 0.5, {}),
                ("widen_embed", 0.5, {}), ("lr", 2.0, {}))
_INTS = {"population": (2, 256), "generations": (1, 10_000), "steps": (1, 10**9),
         "tournament": (1, 256), "seed": (0, 2**31 - 1), "workers": (1, 1024),
         "finish": (0, 10**9)}
_FLOATS = {"crossover": (0.0, 1.0), "truncation": (0.0, 0.9), "param_penalty": (0.0, 1e9),
           "flops_penalty": (0.0, 1e9), "flops": (1.0, 1e30), "lr_spread": (1.0, 100.0)}


@dataclass
class Mutation:
    name: str
    weight: float
    kwargs: dict = field(default_factory=dict)


@dataclass
class EvolveConfig:
    population: int = 4
    generations: int = 3
    steps: int = 100
    crossover: float = 0.25
    tournament: int = 2
    truncation: float = 0.5
    param_penalty: float = 0.0
    flops_penalty: float = 0.0
    flops: float | None = None  # a whole-population budget: sets `generations` (an estimate)
    seed: int = 0
    workers: int = 2
    finish: int = 0  # steps the best member then trains on alone (its LR schedule ends there)
    lr_spread: float = 1.0  # generation 0's LRs spread log-evenly over [lr / s, lr * s]
    per_generation: str = "flops"  # a generation: `steps` steps' FLOPs at the start size, or "steps"
    unit_flops: float | None = None  # FLOPs of one step at the starting size (set by evolve)
    menu: list = field(default_factory=lambda: [Mutation(n, w, dict(k)) for n, w, k in DEFAULT_MENU])

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "EvolveConfig":
        d = dict(d)
        d["menu"] = [Mutation(**m) for m in d.get("menu", [])]
        return cls(**d)

    @classmethod
    def from_section(cls, section: dict | None, overrides: dict | None = None) -> "EvolveConfig":
        """Checked settings of a parsed `evolve` section (None: the defaults) and overrides
        (e.g. from the command line; a None value is no override)."""
        from .mutations import MUTATIONS, check_args

        section = section or {"settings": {}, "mutations": [], "spans": {}}
        spans = section.get("spans", {})
        given = {k: v for k, v in (overrides or {}).items() if v is not None}
        vals = {**section["settings"], **given}
        cfg = cls()
        known = set(_INTS) | set(_FLOATS) | {"per_generation"}
        for k, v in vals.items():
            span = None if k in given else spans.get(k)  # a command-line value has no line
            if k == "per_generation":
                if v not in ("flops", "steps"):
                    raise SpecError(f"evolve setting 'per_generation' is \"flops\" or \"steps\", "
                                    f"got {v!r}", span, hint="\"flops\": members that grew take "
                                    "fewer steps, so every member of a generation spends the same")
                cfg.per_generation = v
                continue
            if k not in known:
                raise SpecError(f"unknown evolve setting '{k}'", span,
                                hint=did_you_mean(k, known) or "settings: " + ", ".join(sorted(known)))
            lo, hi = _INTS.get(k) or _FLOATS[k]
            ok_type = (isinstance(v, int) and not isinstance(v, bool)) if k in _INTS else \
                (isinstance(v, (int, float)) and not isinstance(v, bool))
            if not ok_type or not lo <= v <= hi:
                kind = "an integer" if k in _INTS else "a number"
                raise SpecError(f"evolve setting '{k}' must be {kind} in {lo:g}..{hi:g}, got {v!r}",
                                span)
            setattr(cfg, k, int(v) if k in _INTS else float(v))
        if section["mutations"]:
            cfg.menu = []
            for m in section["mutations"]:
                if m["name"] not in MUTATIONS:
                    raise SpecError(f"unknown mutation '{m['name']}'", m.get("span"),
                                    hint=did_you_mean(m["name"], MUTATIONS) or
                                    "mutations: " + ", ".join(sorted(MUTATIONS)))
                bad = check_args(m["name"], m["kwargs"])
                if bad:
                    raise SpecError(bad, m.get("span"), hint="e.g. `mutate(widen_mlp, weight = 2, by = 32)`")
                w = m["weight"]
                if isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0:
                    raise SpecError(f"mutation weight must be a number >= 0, got {w!r}", m.get("span"))
                cfg.menu.append(Mutation(m["name"], float(w), dict(m["kwargs"])))
        if not any(m.weight > 0 for m in cfg.menu):
            raise SpecError("the mutation menu has no mutation of positive weight",
                            section.get("span"), hint="e.g. `mutate(widen_mlp, weight = 1)`")
        if cfg.tournament > cfg.population:
            raise SpecError(f"tournament ({cfg.tournament}) is larger than the population "
                            f"({cfg.population})", spans.get("tournament"))
        return cfg

    @property
    def replaced(self) -> int:
        """Members replaced by children each generation (at least one, at most all but one)."""
        return min(self.population - 1, max(1, round(self.truncation * self.population)))


def parse_section(stmt, env: dict) -> dict | None:
    """The `evolve { }` statement as a plain dict: settings, the mutation menu, spans."""
    from ..ir.build import call_args
    from ..ir.evaluate import Dotted, Symbol, evaluate
    from ..syntax import ast as A

    if stmt is None:
        return None
    out = {"settings": {}, "mutations": [], "spans": {}, "span": stmt.span}
    for it in stmt.body or []:
        if isinstance(it, A.Entry):
            v = evaluate(it.value, env)
            out["settings"][it.key] = str(v) if isinstance(v, (Symbol, Dotted)) else v
            out["spans"][it.key] = it.span
        elif isinstance(it, A.Stmt) and it.name == "mutate" and it.body is None and it.args:
            c = call_args(A.Call(name="mutate", args=it.args, span=it.span), env)
            if len(c["args"]) != 1:
                raise SpecError("`mutate` takes the mutation's name first, then keyword arguments",
                                it.span, hint="e.g. `mutate(widen_mlp, weight = 2, by = 32)`")
            kw = dict(c["kwargs"])
            out["mutations"].append({"name": str(c["args"][0]), "weight": kw.pop("weight", 1.0),
                                     "kwargs": kw, "span": it.span})
        else:
            raise SpecError("`evolve` holds settings (`key = value`) and `mutate(name, weight = w)`",
                            it.span, hint="e.g. `population = 6` or `mutate(add_head, weight = 1)`")
    return out


def section_ast(d: dict, env: dict):
    """An `evolve { }` statement that parses back to `d` (for a graph built without source)."""
    from ..ir.emit_values import literal
    from ..syntax import ast as A

    body = [A.Entry(key=k, value=A.Str(value=v) if isinstance(v, str) else literal(v, env))
            for k, v in d["settings"].items()]
    for m in d["mutations"]:
        args = [A.Arg(value=A.Path(parts=[m["name"]])), A.Arg(name="weight", value=literal(m["weight"]))]
        args += [A.Arg(name=k, value=A.Str(value=v) if isinstance(v, str) else literal(v, env))
                 for k, v in m["kwargs"].items()]
        body.append(A.Stmt(name="mutate", args=args))
    return A.Stmt(name="evolve", body=body)
