"""The trainer's schedule: LR (warm-up + cosine over steps or a FLOPs budget, width-scaled,
re-warmed after growth), progress through the run, and FLOPs per step from the graph.
A mixin of `Trainer`: it reads `self.cfg`, `self.model`, `self.step`, `self.flops`,
`self.last_growth` and `self.lr_scale`."""
from __future__ import annotations

import math

from ..ir.cost import train_flops
from .optim import lr_at


class Schedule:
    def lr_now(self) -> float:
        """The schedule's LR at this step, re-warmed linearly over `cfg.rewarm` steps after a
        growth (starting at `cfg.rewarm_from` x the schedule)."""
        budget = self.cfg.flops
        lr = lr_at(self.step, self.cfg, self.lr_scale, self.flops / budget if budget else None)
        if self.cfg.lr_width:  # width-scaled LR (muP-style): lr x lr_width / residual width
            # (Adam's per-weight step moves a layer's output in proportion to its fan-in)
            lr *= self.cfg.lr_width / self.width()
        since = self.step - self.last_growth
        if self.last_growth > 0 and self.cfg.rewarm and since < self.cfg.rewarm:
            f0 = self.cfg.rewarm_from
            lr *= f0 + (1 - f0) * (since + 1) / self.cfg.rewarm
        return lr

    def width(self) -> int:
        """The model's residual width: its embedding's dim (1 for models without an embed:
        their width never changes, so the width rule leaves their LR alone)."""
        g = self.model.morph_graph
        if getattr(self, "_width_key", None) is not g:
            self._width_key = g
            dims = [d.resolved["dim"] for _, d in g.nodes() if d.get("op") == "embed"]
            self._width_val = dims[0] if dims else 1
        return self._width_val

    def progress(self) -> float:
        """Fraction of the run done: of the FLOPs budget when there is one, else of the steps."""
        if self.cfg.flops:
            return min(1.0, self.flops / self.cfg.flops)
        return min(1.0, self.step / self.cfg.steps)

    def planned_steps(self) -> int:
        """The run's length in steps: `steps`, or for a FLOPs budget an estimate at the current
        size (growth makes later steps dearer, so fewer are taken)."""
        if not self.cfg.flops:
            return self.cfg.steps
        per = self.step_flops(self.cfg.batch, self.cfg.ctx)
        return self.step + max(1, math.ceil((self.cfg.flops - self.flops) / per))

    def done(self) -> bool:
        """The FLOPs budget is spent, or `stop_at_flops` is reached (a stop that leaves the
        schedule as it is, like `stop_at`): the run evaluates, checkpoints and ends."""
        cfg = self.cfg
        return (bool(cfg.flops) and self.flops >= cfg.flops) or \
            (cfg.stop_at_flops is not None and self.flops >= cfg.stop_at_flops)

    def step_flops(self, batch: int, ctx: int) -> int:
        """Training FLOPs of one step of the current model (cached per graph)."""
        g = self.model.morph_graph
        key = getattr(self, "_flops_key", None)
        if key is None or key[0] is not g or key[1:] != (batch, ctx):
            self._flops_key = (g, batch, ctx)  # holds g, so `is` cannot see a recycled object
            self._flops_val = train_flops(g, batch, ctx)
        return self._flops_val
