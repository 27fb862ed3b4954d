"""Training: config, the loop with growth events, checkpoints, plots and progress output.

`train_spec(spec, run_dir, overrides)` trains a spec from scratch and `resume(run_dir)`
continues a run exactly; both return the summary dict of `Engine.run()` (`Trainer` is the
same class under its old name). Callbacks (callbacks.py) observe the engine's events.
"""
from __future__ import annotations

from .api import evaluate_run, resume, sample_run, train_spec
from .callbacks import CALLBACKS, Callback
from .config import TrainConfig, from_sections
from .engine import Engine
from .growth import (Controller, ControlState, GrowthAction, RuleController, TRIGGERS,
                     apply_growth)
from .loop import Trainer, TrainingStopped

__all__ = ["CALLBACKS", "Callback", "ControlState", "Controller", "Engine", "GrowthAction",
           "RuleController", "TRIGGERS", "TrainConfig", "Trainer", "TrainingStopped",
           "apply_growth", "evaluate_run",
           "from_sections", "resume", "sample_run", "train_spec"]
