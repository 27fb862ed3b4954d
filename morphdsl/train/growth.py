"""When to grow: triggers, rule-based controllers and the Controller protocol.

A `grow { }` rule reads `trigger(args) -> action(args), ...`. The trainer asks every controller
`decide(state)` after each optimizer step and after each evaluation; a controller answers with
the growth actions to apply now. A learned controller (e.g. PPO) plugs in by implementing the
same protocol; its `state_dict` / `load_state_dict` travel in the checkpoint.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..errors import MorphError


@dataclass
class GrowthAction:
    """One rewrite to apply: `op(target, **kwargs)`, e.g. widen_mlp(blocks.*.mlp, by=64)."""

    op: str
    args: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)
    span: Any = None
    reason: str = ""

    @property
    def target(self) -> str | None:
        return str(self.args[0]) if self.args else self.kwargs.get("target")

    def describe(self) -> str:
        parts = [str(a) for a in self.args] + [f"{k}={v}" for k, v in self.kwargs.items()]
        return f"{self.op}({', '.join(parts)})"


@dataclass
class ControlState:
    """What a controller sees. `event` is "step" (after an update) or "eval" (after evaluation)."""

    step: int
    event: str
    params: int
    tokens: int
    train_loss: float | None = None
    val_loss: float | None = None
    last_growth_step: int = 0
    val_history: list = field(default_factory=list)  # [(step, val_loss)]
    progress: float = 0.0           # fraction of the run done: of its steps, or of its FLOPs budget
    flops: int = 0                  # training FLOPs so far
    frozen: dict = field(default_factory=dict)  # crystallized petal shares (continual/crystal.py)


@runtime_checkable
class Controller(Protocol):
    def decide(self, state: ControlState) -> list[GrowthAction]: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, d: dict) -> None: ...


# --------------------------------------------------------------------------- triggers

class Trigger:
    """Fires on some steps or evaluations; its mutable state is a JSON-able dict.

    `ready(s)` looks at the state (and may update running statistics); `fire()` records that the
    rule fired. Of the `exclusive` triggers ready at one decision only the first fires, so a list
    of exclusive one-shot rules is a staged schedule."""

    exclusive = False

    def __init__(self):
        self.state: dict = {}

    def ready(self, s: ControlState) -> bool:
        raise NotImplementedError

    def fire(self) -> None:
        pass

    def fires(self, s: ControlState) -> bool:
        if self.ready(s):
            self.fire()
            return True
        return False


class OnceTrigger(Trigger):
    """Fires once, after the first step at which `due(s)` holds; its state is {"fired": bool}."""

    def __init__(self):
        super().__init__()
        self.state = {"fired": False}

    def due(self, s: ControlState) -> bool:
        raise NotImplementedError

    def ready(self, s):
        return s.event == "step" and not self.state["fired"] and self.due(s)

    def fire(self):
        self.state["fired"] = True


class StepTrigger(OnceTrigger):
    """step(N): once, right after step N."""

    def __init__(self, n: int):
        super().__init__()
        self.n = int(n)

    def due(self, s):
        return s.step == self.n


class EveryTrigger(Trigger):
    """every(N): after each step that is a multiple of N."""

    def __init__(self, n: int):
        super().__init__()
        if int(n) < 1:
            raise ValueError("every(N) needs N >= 1")
        self.n = int(n)

    def ready(self, s):
        return s.event == "step" and s.step % self.n == 0


class ProgressTrigger(OnceTrigger):
    """progress(F): once, after the first step at or past fraction F of the run: of its steps,
    or of its FLOPs budget when the train section sets `flops` (so a schedule scales with the
    run's length)."""

    def __init__(self, fraction: float):
        super().__init__()
        if not 0.0 < float(fraction) < 1.0:
            raise ValueError(f"progress(F) needs 0 < F < 1, got {fraction}")
        self.fraction = float(fraction)

    def due(self, s):
        return s.progress >= self.fraction - 1e-12


class FlopsTrigger(OnceTrigger):
    """flops(N): once, after the first step at which the run's training FLOPs reach N. Where
    `progress(F)` scales a schedule with the budget, this fixes the growth point in compute,
    whatever the budget: the point where the small model stops being the better buy per FLOP
    is a property of the two sizes, not of the run's length (docs/growth.md §9)."""

    def __init__(self, n: float):
        super().__init__()
        if not float(n) > 0.0:
            raise ValueError(f"flops(N) needs N > 0, got {n}")
        self.n = float(n)

    def due(self, s):
        return s.flops >= self.n


class PlateauTrigger(Trigger):
    """plateau(patience, min_delta, cooldown, max_params, times): on evaluation, when the
    relative improvement over the best validation loss stays below `min_delta` for `patience`
    evaluations, at least `cooldown` steps after any growth, under a parameter budget and at
    most `times` times. When several plateau rules are ready at one evaluation only the first
    (in spec order) fires, so a list of `times = 1` rules is a staged schedule: one stage per
    plateau."""

    exclusive = True

    def __init__(self, patience: int = 3, min_delta: float = 0.005, cooldown: int = 100,
                 max_params: int | None = None, times: int | None = None):
        super().__init__()
        self.patience, self.min_delta = int(patience), float(min_delta)
        self.cooldown = int(cooldown)
        self.max_params = None if max_params is None else int(max_params)
        self.times = None if times is None else int(times)
        if self.times is not None and self.times < 1:
            raise ValueError(f"times must be at least 1, got {times}")
        self.state = {"best": None, "bad": 0, "fired": 0}

    def ready(self, s) -> bool:
        """Update the plateau statistics with this evaluation; True when the rule may fire."""
        if s.event != "eval" or s.val_loss is None:
            return False
        best = self.state["best"]
        if best is None or (best - s.val_loss) / abs(best) >= self.min_delta:
            self.state["bad"] = 0
        else:
            self.state["bad"] += 1
        self.state["best"] = s.val_loss if best is None else min(best, s.val_loss)
        if self.state["bad"] < self.patience:
            return False
        if s.step - s.last_growth_step < self.cooldown and s.last_growth_step > 0:
            return False
        if self.max_params is not None and s.params >= self.max_params:
            return False
        return self.times is None or self.state.get("fired", 0) < self.times

    def fire(self) -> None:
        self.state["bad"] = 0
        self.state["fired"] = self.state.get("fired", 0) + 1


class FrozenTrigger(Trigger):
    """frozen(share, per, cooldown): after a step at which the share of crystallized petals
    (continual/crystal.py; the optimizer must be "visco_elastic") reaches `share` in some hull
    (per = "hull") or in some lane over every hull (per = "lane"), at least `cooldown` steps
    after this rule last fired. Growth lowers the share (new petals are not crystallized), so
    `frozen(share = 0.8) -> add_petals(blocks.*.mlp, n = 2)` expands each time it is needed."""

    def __init__(self, share: float = 0.8, per: str = "hull", cooldown: int = 50):
        super().__init__()
        if not 0.0 < float(share) <= 1.0:
            raise ValueError(f"share must be in (0, 1], got {share}")
        if per not in ("hull", "lane"):
            raise ValueError(f'per must be "hull" or "lane", got {per!r}')
        if int(cooldown) < 0:
            raise ValueError(f"cooldown must be >= 0, got {cooldown}")
        self.share, self.per, self.cooldown = float(share), per, int(cooldown)
        self.state = {"last": None}
        self._step = 0

    def ready(self, s) -> bool:
        if s.event != "step":
            return False
        shares = (s.frozen or {}).get("hulls" if self.per == "hull" else "lanes") or {}
        if not shares or max(shares.values()) < self.share - 1e-12:
            return False
        self._step = s.step
        last = self.state["last"]  # (a step before it: a new run carrying this controller)
        return last is None or s.step - last >= self.cooldown or s.step < last

    def fire(self) -> None:
        self.state["last"] = self._step


TRIGGERS = {"step": StepTrigger, "every": EveryTrigger, "progress": ProgressTrigger,
            "flops": FlopsTrigger, "plateau": PlateauTrigger, "frozen": FrozenTrigger}


def make_trigger(spec: dict, span=None) -> Trigger:
    name = spec["name"]
    if name not in TRIGGERS:
        raise MorphError(f"unknown growth trigger '{name}'", span=spec.get("span") or span,
                         hint=f"use one of: {', '.join(f'{t}(...)' for t in TRIGGERS)}")
    try:
        return TRIGGERS[name](*spec.get("args", []), **spec.get("kwargs", {}))
    except (TypeError, ValueError) as e:
        raise MorphError(f"bad arguments to trigger {name}(): {e}", span=spec.get("span") or span,
                         hint="step(N), every(N), progress(F), flops(N), plateau(patience=3, min_delta=0.005, "
                              "cooldown=100, max_params=None, times=None), frozen(share=0.8, "
                              "per=\"hull\", cooldown=50)") from None


class RuleController:
    """The `grow { }` rules of a spec as a controller."""

    def __init__(self, rules: list[dict]):
        self.rules = [r for r in rules if "controller" not in r]  # declarations: garden/
        self.triggers = [make_trigger(r["trigger"], r.get("span")) for r in self.rules]

    def decide(self, state: ControlState) -> list[GrowthAction]:
        out, exclusive_fired = [], False
        for i, (rule, trig) in enumerate(zip(self.rules, self.triggers)):
            # every trigger sees every decision (ready() keeps its statistics current)
            if not trig.ready(state) or (trig.exclusive and exclusive_fired):
                continue
            trig.fire()
            exclusive_fired |= trig.exclusive
            t = rule["trigger"]
            targs = [str(a) for a in t.get("args", [])]
            targs += [f"{k}={v}" for k, v in (t.get("kwargs") or {}).items()]
            why = f"rule {i}: {t['name']}({', '.join(targs)})"
            out += [GrowthAction(a["name"], list(a.get("args", [])), dict(a.get("kwargs", {})),
                                 a.get("span"), why) for a in rule["actions"]]
        return out

    def state_dict(self) -> dict:
        return {"triggers": [t.state for t in self.triggers]}

    def load_state_dict(self, d: dict) -> None:
        for t, s in zip(self.triggers, d.get("triggers", [])):
            t.state = dict(s)


# --------------------------------------------------------------------------- applying a rewrite

def known_ops() -> set[str]:
    """Names of the growth rewrites available."""
    from ..rewrites import REWRITES

    return set(REWRITES)


def apply_growth(module, optimizer, op: str, args: dict, before_compile=None, step: int = 0):
    """Grow `module` by rewrite `op(**args)` (args holds `target` and the rewrite's kwargs).

    Returns `(grown_module, optimizer_state_by_name)`: weights moved into the grown module,
    AdamW moments moved to the matching slices (new slices start at zero), and exact rewrites
    checked by the identity verifier; the grown module's slice metadata is `.morph_meta`. A thin
    wrapper over morphdsl.growth.GrowthTransaction, which an engine should call directly (it
    returns the one new optimizer, with its param groups, instead of state by name).
    """
    from ..growth import GrowthTransaction
    from .optim import state_by_name

    txn = GrowthTransaction(module, optimizer, step=step, verify=True,
                            before_compile=before_compile)
    r = txn.apply(op, args)
    return r.module, state_by_name(r.module, r.optimizer)


def check_growth_fits(grown, action: GrowthAction, cfg, step: int, saved_step: int | None) -> None:
    """Stop a run (TrainingStopped, at the rule) whose growth by `action` gives a graph `grown`
    too large to train in the memory available (called on the grown graph before it is
    compiled); `saved_step` is the step of the run's last checkpoint (None: none yet)."""
    from ..ir.memory import ensure_fits, train_memory
    from .loop import TrainingStopped

    est = train_memory(grown, cfg.batch, cfg.ctx)
    try:
        ensure_fits(est.total, f"growing by {action.describe()} at step {step} (to "
                               f"{est.params:,} params)",
                    device=cfg.device, detail=f" to train ({est.parts()})")
    except MorphError as e:
        kept = (f"the last checkpoint (step {saved_step}) is intact" if saved_step is not None
                else "no checkpoint was written")
        raise TrainingStopped(e.message + f"; training stopped ({kept})", span=action.span,
                              hint=e.hint) from None
