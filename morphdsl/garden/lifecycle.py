"""The seed lifecycle as a controller: it moves every seed of the model through its stages by
the gates (gates.py), whoever planted it (a `grow` rule, the heuristic, a policy).

    germinated -> training -> blending -> holding -> fossilized | pruned

The stage and alpha live in the graph (the seed's gate node), so a checkpoint's spec carries
them; what the graph does not hold — the step each seed entered its stage, its last measured
contribution — is this controller's state_dict, so `--resume` continues mid-lifecycle exactly.
Each move is a GrowthAction (a seed_stage, fossilize or prune rewrite) with its reason; each
contribution measured is a `seed_contribution` event.
"""
from __future__ import annotations

from ..ir.seeds import seed_rows
from ..train.growth import ControlState, GrowthAction
from .gates import Gates
from .signals import contribution, grad_ratio


class Lifecycle:
    """`auto`: the gates' every move is made as soon as it is allowed (the heuristic's way).
    Otherwise (a policy decides) only the blending ramp is automatic: leaving training and
    ending holding (fossilize or prune) are the controller's actions, which `allowed()` masks."""

    def __init__(self, gates: Gates | None = None, auto: bool = True):
        self.gates, self.auto = gates or Gates(), auto
        self.engine = None
        self.seeds: dict[str, dict] = {}   # path -> {"stage", "since", "contribution"}
        self._rows = None                  # (graph, its seed rows)

    def bind(self, engine) -> None:
        self.engine = engine

    def rows(self) -> list[dict]:
        """The model's seeds (seed_rows), read once per graph: a growth makes a new graph, so
        the per-step decision does not walk the graph again."""
        if self.engine is None:
            return []
        g = self.engine.model.morph_graph
        if self._rows is None or self._rows[0] is not g:
            self._rows = (g, seed_rows(g))
        return self._rows[1]

    def _ratio(self, r: dict, steps_in: int):
        """The seed's gradient ratio, measured only when the gates would use it."""
        g = self.gates
        if r["stage"] != "training" or g.grad_ratio <= 0 or steps_in < g.min_training:
            return None
        return grad_ratio(self.engine, r["path"])

    def sync(self, s: ControlState) -> list[dict]:
        """Track the model's seeds: a new one entered training at the last growth (the one that
        planted it; 0 for a seed of the spec), a moved one when it was moved."""
        rows = self.rows()
        live = {r["path"] for r in rows}
        for r in rows:
            t = self.seeds.get(r["path"])
            if t is None:
                self.seeds[r["path"]] = {"stage": r["stage"], "since": s.last_growth_step,
                                         "contribution": None}
            elif t["stage"] != r["stage"]:  # moved by someone else (or our move failed)
                self.seeds[r["path"]] = {"stage": r["stage"], "since": s.step, "contribution": None}
        for p in list(self.seeds):
            if p not in live:
                del self.seeds[p]
        return rows

    def decide(self, s: ControlState) -> list[GrowthAction]:
        out = []
        for r in self.sync(s):
            t = self.seeds[r["path"]]
            steps_in = s.step - t["since"]
            c = None
            if self.gates.wants_contribution(r["stage"], steps_in, s.event) and s.val_loss is not None:
                c = t["contribution"] = contribution(self.engine, r["path"], s.val_loss)
                self.engine.emit("on_event", {"type": "seed_contribution", "step": s.step,
                                              "seed": r["path"], "contribution": c,
                                              "val_loss": s.val_loss})
            move = self.gates.next(r["stage"], r["alpha"], steps_in, s.event, self._ratio(r, steps_in), c)
            if move is not None and (self.auto or r["stage"] == "blending"):
                op, kw, why = move
                if op == "seed_stage" and kw["stage"] != r["stage"]:
                    t.update(stage=kw["stage"], since=s.step, contribution=None)
                out.append(GrowthAction(op, [r["path"]], kw, reason=f"seed {r['path']}: {why}"))
        return out

    def allowed(self, step: int) -> dict[str, dict]:
        """Per live seed, what the gates allow a controller now: {"advance": bool, "prune": bool}
        (advance: training -> blending, or holding -> fossilized)."""
        out = {}
        for r in self.rows():
            t = self.seeds.get(r["path"], {"since": step})
            n = step - t["since"]
            ok = self.gates.may_leave(r["stage"], n, self._ratio(r, n))
            out[r["path"]] = {"advance": ok, "prune": True, "stage": r["stage"], "steps_in": n,
                              "alpha": r["alpha"], "contribution": t.get("contribution")}
        return out

    def state_dict(self) -> dict:
        return {"seeds": {p: dict(t) for p, t in self.seeds.items()}}

    def load_state_dict(self, d: dict) -> None:
        self.seeds = {p: dict(t) for p, t in (d.get("seeds") or {}).items()}
