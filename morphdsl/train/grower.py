"""How the engine grows: ask the controllers, apply each growth action as one transaction
(morphdsl/growth), log it — a mixin of `Engine` (engine.py), which it reads the model,
optimizer, data and step from."""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from ..errors import MorphError
from ..growth import GrowthTransaction, attach
from .growth import ControlState, check_growth_fits


class Growing:
    def _obey_meta(self) -> None:
        """Frozen / LR-scaled slices of the model's metadata bind the (new) optimizer."""
        meta = getattr(self.model, "morph_meta", None)
        if meta is not None:
            attach(self.model, self.opt, meta)

    def _apply(self, action, args: dict, fits):
        """The one call of a growth rewrite: a transaction (morphdsl/growth) — rewrite, static
        checks, compile, weights and optimizer state moved (one optimizer, its groups kept),
        the identity checked once on the fixed batch, the slice metadata followed — or an
        error with nothing changed."""
        return GrowthTransaction(self.model, self.opt, step=self.step, probe=self.fixed[0],
                                 before_compile=fits, share=True).apply(action.op, args)

    def grow(self, action) -> bool:
        """Apply one growth action: rewrite, move weights + optimizer state, check identity, log.
        A rewrite that fails leaves the model, optimizer and data exactly as they were (logged
        as a growth_failed event); one that does not fit in memory stops the run."""
        args = dict(action.kwargs)
        if action.target is not None:  # graph-wide rewrites (widen_embed) take no target
            args["target"] = action.target
        fits = None if self.cfg.force_memory else (  # on the grown graph, before allocating
            lambda g: check_growth_fits(g, action, self.cfg, self.step, self.saved_step))
        from .engine import TrainingStopped

        t0 = time.time()
        p0 = self.n_params()
        with torch.random.fork_rng(devices=[]):  # new units' init: seeded by (seed, step)
            torch.manual_seed(self.cfg.seed * 1_000_003 + self.step)
            try:
                r = self._apply(action, args, fits)
            except TrainingStopped as e:
                raise e if e.span else type(e)(e.message, span=action.span, hint=e.hint)
            except Exception as e:  # noqa: BLE001 - any failed rewrite: the run goes on
                self._growth_failed(action, e)
                return False
        self._set_model(r.module)
        self.opt = r.optimizer
        y = self.fixed[1].flatten()
        loss0 = F.cross_entropy(r.before.float().flatten(0, 1), y).item()
        loss1 = F.cross_entropy(r.after.float().flatten(0, 1), y).item()
        err = (r.after.float() - r.before.float()).abs().max().item()
        self.last_growth = self.step
        self.clock += time.time() - t0
        event = {"type": "growth", "step": self.step, "tokens": self.tokens, "flops": self.flops,
                 "op": action.op, "target": action.target, "args": action.kwargs,
                 "reason": action.reason, "params_before": p0,
                 "params_after": self.n_params(), "max_verify_error": err,
                 "loss_before": loss0, "loss_after": loss1}
        self.emit("on_growth", event)
        self.emit("on_event", event)
        return True

    def _growth_failed(self, action, e: Exception) -> None:
        msg = e.message if isinstance(e, MorphError) else f"{type(e).__name__}: {e}"
        event = {"type": "growth_failed", "step": self.step, "tokens": self.tokens,
                 "op": action.op, "target": action.target, "args": action.kwargs,
                 "reason": action.reason, "error": " ".join(str(msg).split())[:500],
                 "hint": getattr(e, "hint", None)}
        self.emit("on_growth_failed", event)
        self.emit("on_event", event)

    def decide(self, event: str, train_loss=None, val_loss=None) -> bool:
        """Ask the controllers (rank 0's answer is every rank's); True if the model grew."""
        s = ControlState(self.step, event, self.n_params(), self.tokens, train_loss, val_loss,
                         self.last_growth, list(self.val_history), self.progress(), self.flops,
                         self.frozen)
        actions = [a for c in self.controllers for a in c.decide(s)] if self.dist.is_main else None
        actions = self.dist.broadcast(actions)
        self.emit("on_decide", s, actions)
        grew = False
        for a in actions:
            grew = self.grow(a) or grew
        return grew
