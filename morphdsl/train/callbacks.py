"""Callbacks: what the training engine tells the world, and the built-in ones.

The engine (`engine.Engine`) emits these hooks, each called as `hook(engine, ...)`, in the
order the callbacks were given (built-ins first):

    on_train_start(engine)                 before the first step of `run()`
    on_step(engine, row)                   after an optimizer step; `row` is its metrics row
    on_decide(engine, state, actions)      a growth decision (`actions` may be edited in place)
    on_growth(engine, event)               a rewrite was applied (its events.jsonl row)
    on_growth_failed(engine, event)        a rewrite failed; the run goes on unchanged
    on_eval(engine, row)                   after an evaluation (`row` has val_loss)
    on_eval_end(engine, row)               after the evaluation's growth decision and snapshot
    on_rollback(engine, event)             a non-finite loss rolled the run back
    on_event(engine, row)                  every events.jsonl row (growth, growth_failed, rollback)
    on_save(engine)                        before a checkpoint is written
    on_checkpoint(engine, path)            after it was written (rank 0)
    on_step_end(engine, row)               end of a step (the Checkpointer saves here)
    on_train_end(engine)                   after the last step

A callback is any object with some of these methods (subclass `Callback` to get no-ops for
the rest). Pass instances as `train_spec(..., callbacks=[...])`, or name classes in
`train { callbacks = ["pkg.module:Class"] }` / `morphc train --callback pkg.module:Class`
(a name from `CALLBACKS`, or an importable class made with no arguments). Built-in writers act
on rank 0 only; user callbacks run on every rank (`engine.dist.is_main` tells them apart).
"""
from __future__ import annotations

import importlib
import json
from pathlib import Path

from ..errors import MorphError

HOOKS = ("on_train_start", "on_step", "on_decide", "on_growth", "on_growth_failed", "on_eval",
         "on_eval_end", "on_rollback", "on_event", "on_save", "on_checkpoint", "on_step_end",
         "on_train_end")


class Callback:
    """Base class: every hook is a no-op."""


for _h in HOOKS:
    setattr(Callback, _h, lambda self, engine, *args: None)


class CallbackList:
    """Callbacks bound per hook (only those that implement it), so an emit costs one loop
    over the callbacks that care."""

    def __init__(self, callbacks):
        self.callbacks = list(callbacks)
        self.bound = {h: [getattr(cb, h) for cb in self.callbacks if self._implements(cb, h)]
                      for h in HOOKS}

    @staticmethod
    def _implements(cb, hook: str) -> bool:
        fn = getattr(type(cb), hook, None)
        return callable(getattr(cb, hook, None)) and fn is not getattr(Callback, hook)

    def emit(self, hook: str, engine, *args) -> None:
        for fn in self.bound[hook]:
            fn(engine, *args)


# --------------------------------------------------------------------------- built-ins

def _row_step(line: str) -> float:
    """The step of a metrics/events row (inf for a line that is not a JSON object: dropped)."""
    try:
        row = json.loads(line)
    except ValueError:
        return float("inf")
    step = row.get("step", 0) if isinstance(row, dict) else None
    return step if isinstance(step, (int, float)) and not isinstance(step, bool) else float("inf")


class MetricsLog(Callback):
    """RUN_DIR/metrics.jsonl (one row per step, written at evaluations and checkpoints) and
    RUN_DIR/events.jsonl (one row per event, written at once). Rank 0 only."""

    FILES = ("metrics.jsonl", "events.jsonl")

    def __init__(self, run_dir, resumed_step: int | None = None, enabled: bool = True):
        self.run_dir, self.enabled, self.pending = Path(run_dir), enabled, []
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for f in self.FILES:
            p = self.run_dir / f
            if resumed_step is None:
                p.write_text("")
                continue
            rows = [ln for ln in p.read_text(errors="replace").splitlines() if ln.strip()] \
                if p.exists() else []  # drop rows written after the checkpoint resumed
            p.write_text("".join(ln + "\n" for ln in rows if _row_step(ln) <= resumed_step))

    def flush(self) -> None:
        if self.enabled and self.pending:
            with open(self.run_dir / "metrics.jsonl", "a") as f:
                f.writelines(json.dumps(r) + "\n" for r in self.pending)
        self.pending.clear()

    def on_step(self, engine, row):
        self.pending.append(row)

    def on_eval_end(self, engine, row):
        self.flush()

    def on_rollback(self, engine, event):
        self.pending.clear()  # the rows after the snapshot are retried

    def on_event(self, engine, row):
        if self.enabled:
            with open(self.run_dir / "events.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")

    def on_save(self, engine):
        self.flush()

    def on_train_end(self, engine):
        self.flush()


class Progress(Callback):
    """The console `Reporter` (progress bar or plain lines, evaluations, events)."""

    def __init__(self, reporter):
        self.reporter = reporter

    def on_train_start(self, engine):
        self.reporter.start(engine.step, engine.planned_steps(), engine.n_params())

    def on_step(self, engine, row):
        self.reporter.update(row["step"], row["loss"], row["tok_s"], row["params"])

    def on_eval(self, engine, row):
        self.reporter.eval(row["step"], row["val_loss"])

    def on_event(self, engine, row):
        self.reporter.event(row)


class Checkpointer(Callback):
    """A checkpoint every `checkpoint_every` steps, at the end of the run (its last step, or a
    FLOPs budget spent) and when a run ends without one."""

    def on_step_end(self, engine, row):
        cfg = engine.cfg
        if engine.step % cfg.ckpt_every == 0 or engine.step == engine.end or engine.done():
            engine.save()

    def on_train_end(self, engine):
        if engine.step > 0 and not (engine.run_dir / "checkpoints" / "latest").exists():
            engine.save()


def _tensorboard():
    from .tensorboard import TensorBoardLogger

    return TensorBoardLogger


# name -> a function returning the class (imported only when used)
CALLBACKS = {"tensorboard": _tensorboard}


def resolve_callback(name: str) -> type:
    """The class for a callback name: a `CALLBACKS` entry or an importable 'pkg.mod:Class'."""
    key = str(name).strip()
    if key in CALLBACKS:
        return CALLBACKS[key]()
    mod, _, attr = key.partition(":") if ":" in key else key.rpartition(".")
    if not mod or not attr:
        e = MorphError(f"unknown callback '{key}'",
                       hint=f"use one of: {', '.join(CALLBACKS)}, or an importable class "
                            f"'package.module:Class'")
        e.setting = "callbacks"
        raise e
    try:
        cls = getattr(importlib.import_module(mod), attr)
    except Exception as exc:  # noqa: BLE001 - ImportError, AttributeError, the module's own
        e = MorphError(f"cannot import callback '{key}' ({type(exc).__name__}: "
                       f"{str(exc).splitlines()[0][:120] if str(exc) else ''})",
                       hint="give 'package.module:Class' of an importable module (on PYTHONPATH)")
        e.setting = "callbacks"
        raise e from None
    if not isinstance(cls, type) or not any(callable(getattr(cls, h, None)) for h in HOOKS):
        e = MorphError(f"'{key}' is not a callback class (it has none of the hooks "
                       f"{', '.join(HOOKS[:3])}, ...)", hint="subclass morphdsl.train.Callback")
        e.setting = "callbacks"
        raise e
    return cls
