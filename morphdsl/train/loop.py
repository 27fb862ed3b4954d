"""The training loop, kept under its old names: `Trainer` is `engine.Engine` (steps, evaluation,
growth, rollback and checkpoints, with callbacks); see engine.py and callbacks.py."""
from __future__ import annotations

from .callbacks import _row_step
from .engine import MAX_FAILURES, Engine, TrainingStopped, clone_module, n_params, read_jsonl

Trainer = Engine

__all__ = ["MAX_FAILURES", "Engine", "Trainer", "TrainingStopped", "clone_module", "n_params",
           "read_jsonl", "_row_step"]
