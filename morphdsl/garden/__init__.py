"""The gardener: seeds with a lifecycle, and the controllers that decide when and where to
plant them. Declared in a spec's `grow { }` section next to its rules:

    grow {
      seeds(min_training = 100, blend_steps = 100, min_holding = 50)   # the gates (gates.py)
      heuristic(patience = 3, min_delta = 0.01, kinds = ["mlp"])       # a controller
    }

`controllers_for(rules)` turns the declarations into engine controllers: the seed Lifecycle
(whenever any declaration is present) and each declared controller, in spec order after it. A
controller is one module registered in CONTROLLERS; a Python one needs only `decide(state)`,
`state_dict()`, `load_state_dict(d)` and, to see the model, `bind(engine)`.
"""
from __future__ import annotations

from ..errors import MorphError, did_you_mean
from .gates import Gates
from .heuristic import Heuristic
from .lifecycle import Lifecycle

def _policy(*args, **kwargs):  # sb3-contrib is imported only when a policy is declared
    from .policy import Policy

    return Policy(*args, **kwargs)


_policy.usage = 'policy("garden.zip", deterministic = 1)'
CONTROLLERS = {"heuristic": Heuristic, "policy": _policy}
DECLARATIONS = ("seeds", *CONTROLLERS)

__all__ = ["Gates", "Heuristic", "Lifecycle", "CONTROLLERS", "controllers_for", "check_declarations"]


def _make(decl: dict):
    name, span = decl["name"], decl.get("span")
    if name not in DECLARATIONS:
        from ..rewrites import REWRITES

        if name in REWRITES:
            raise MorphError(f"growth op `{name}(...)` has no trigger", span=span,
                             hint=f"a rule reads `trigger -> op`, e.g. `step(200) -> {name}(...)`")
        raise MorphError(f"unknown controller `{name}(...)` in `grow`", span=span,
                         hint=did_you_mean(name, DECLARATIONS) or
                         f"declarations: {', '.join(f'{d}(...)' for d in DECLARATIONS)}")
    cls = Gates if name == "seeds" else CONTROLLERS[name]
    try:
        return cls(*decl.get("args", []), **decl.get("kwargs", {}))
    except ImportError as e:
        raise MorphError(f"{name}() needs the gardener's packages ({e.name or e})", span=span,
                         hint="pip install 'morphdsl[garden]'") from None
    except (TypeError, ValueError) as e:
        msg = str(e).replace("__init__() ", "")
        raise MorphError(f"bad arguments to {name}(): {msg}", span=span, hint=cls.usage) from None


def check_declarations(rules: list[dict]) -> None:
    """Unknown declarations or bad arguments are errors at their line, before training."""
    decls = [r["controller"] for r in rules if "controller" in r]
    if sum(d["name"] == "seeds" for d in decls) > 1:
        raise MorphError("`seeds(...)` is declared twice in `grow`",
                         span=[d for d in decls if d["name"] == "seeds"][1].get("span"),
                         hint="one set of lifecycle gates per spec")
    for d in decls:
        _make(d)


def controllers_for(rules: list[dict]) -> list:
    """The Lifecycle (with the spec's gates) and the declared controllers; [] when none."""
    decls = [r["controller"] for r in rules if "controller" in r]
    if not decls:
        return []
    made = [_make(d) for d in decls]
    gates = next((m for m in made if isinstance(m, Gates)), Gates())
    ctl = [m for m in made if not isinstance(m, Gates)]
    manual = any(getattr(c, "manual_lifecycle", False) for c in ctl)  # a policy advances seeds itself
    return [Lifecycle(gates, auto=not manual)] + ctl
