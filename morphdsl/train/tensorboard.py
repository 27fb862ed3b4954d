"""TensorBoard logging (`--tensorboard` or `train { tensorboard = true }`): RUN_DIR/tensorboard.

Beside metrics.jsonl, a `torch.utils.tensorboard.SummaryWriter` gets, against the step:
`train/loss`, `train/lr`, `train/tokens_per_s`, `train/flops`, `model/params` every step,
`val/loss` and `val/ppl` at each evaluation, `model/param_norm` (the global L2 norm of the
weights) at each evaluation, and each growth event as `growth/params` plus a text entry
`growth` (failed growths and rollbacks are text entries too). View with
`tensorboard --logdir RUN_DIR/tensorboard`. Needs `pip install tensorboard`.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import MorphError
from .callbacks import Callback
from .progress import describe_event


class TensorBoardLogger(Callback):
    """Writes RUN_DIR/tensorboard on rank 0 (`log_dir` elsewhere if given)."""

    def __init__(self, log_dir=None):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise MorphError("TensorBoard logging needs the tensorboard package",
                             hint="pip install tensorboard (or: pip install 'morphdsl[tensorboard]')"
                             ) from None
        self._writer_cls, self.log_dir, self.writer = SummaryWriter, log_dir, None

    def on_train_start(self, engine):
        if engine.dist.is_main and self.writer is None:
            self.path = Path(self.log_dir or Path(engine.run_dir) / "tensorboard")
            self.writer = self._writer_cls(str(self.path))

    def on_step(self, engine, row):
        if self.writer is None:
            return
        w, s = self.writer, row["step"]
        w.add_scalar("train/loss", row["loss"], s)
        w.add_scalar("train/lr", row["lr"], s)
        w.add_scalar("train/tokens_per_s", row["tok_s"], s)
        w.add_scalar("train/flops", float(row["flops"]), s)
        w.add_scalar("model/params", row["params"], s)

    def on_eval(self, engine, row):
        if self.writer is None:
            return
        w, s = self.writer, row["step"]
        w.add_scalar("val/loss", row["val_loss"], s)
        w.add_scalar("val/ppl", row["val_ppl"], s)
        with torch.no_grad():
            norm = torch.sqrt(sum((p.detach().float() ** 2).sum() for p in engine.model.parameters()))
        w.add_scalar("model/param_norm", norm.item(), s)

    def on_event(self, engine, row):
        if self.writer is None:
            return
        if row.get("type") == "growth":
            self.writer.add_scalar("growth/params", row["params_after"], row["step"])
        self.writer.add_text(row.get("type", "event"), describe_event(row), row["step"])

    def on_save(self, engine):
        if self.writer is not None:
            self.writer.flush()

    def on_train_end(self, engine):
        if self.writer is not None:
            self.writer.close()
            self.writer = None
