"""The training engine: steps, evaluation, growth, rollback and checkpoints, with callbacks.

`Engine.run()` trains to `cfg.steps` (or a FLOPs budget). The loop itself only trains; what
happens around it — metrics.jsonl and events.jsonl, the console, checkpoints, TensorBoard, a
user's logger — are callbacks (`callbacks.py`), growth decisions come from controllers
(`growth.py`) and are applied by `grower.py`, and the optimizer comes from the factory
(`optim.py`). Engine hooks a subclass may
override: `grow` (the one place a rewrite is applied), `rollback`, `evaluate`, `save`.
"""
from __future__ import annotations

import copy
import math
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ..continual.crystal import Crystallizer
from ..errors import MorphError
from . import checkpoint as ckpt
from .callbacks import Checkpointer, CallbackList, MetricsLog, Progress, resolve_callback
from .config import TrainConfig
from .data import prepare_data
from .devices import Precision, resolve_device
from .dist import Dist, lost_peer
from .growth import RuleController
from .optim import load_state_by_name, make_optimizer, set_lr, state_by_name
from .progress import Reporter
from .schedule import Schedule
from .grower import Growing

MAX_FAILURES = 3


def clone_module(model):
    """A deep copy of a compiled module, keeping its IR graph (fx's deepcopy drops it)."""
    new = copy.deepcopy(model)
    new.morph_graph = copy.deepcopy(model.morph_graph)
    if getattr(model, "morph_meta", None) is not None:  # per-parameter slice metadata
        new.morph_meta = copy.deepcopy(model.morph_meta)
    return new


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


class TrainingStopped(MorphError):
    kind = "error"


class Engine(Growing, Schedule):
    """Owns the model, optimizer, data stream, controllers and callbacks; `run()` trains."""

    def __init__(self, module, cfg: TrainConfig, run_dir, *, tokenizer=None, stream=None,
                 controllers=None, reporter: Reporter | None = None, resume: dict | None = None,
                 callbacks=(), dist: Dist | None = None):
        self.cfg, self.run_dir = cfg, Path(run_dir)
        torch.set_num_threads(cfg.threads)
        if resume is None:
            torch.manual_seed(cfg.seed)
            random.seed(cfg.seed)
        self.dist = dist or Dist()
        self.device = resolve_device(cfg.device, self.dist.local_rank)
        self.precision = Precision(self.device, cfg.dtype)
        self.dist.local_batch(cfg.batch)  # the global batch splits evenly over the ranks
        self._set_model(module)
        if tokenizer is None or stream is None:
            tokenizer, stream = prepare_data(cfg, module.morph_graph, tokenizer)
        self.tokenizer, self.stream = tokenizer, stream
        rules = module.morph_graph.sections.get("grow") or []
        if controllers is None:  # the spec's rules, and its gardener declarations (garden/)
            from ..garden import controllers_for

            controllers = [RuleController(rules)] + controllers_for(rules)
        self.controllers = list(controllers)
        for c in self.controllers:  # a controller that reads the model (a gardener) binds to it
            if hasattr(c, "bind"):
                c.bind(self)
        self.reporter = reporter or Reporter(enabled=False)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.step, self.tokens, self.lr_scale, self.last_growth = 0, 0, 1.0, 0
        self.flops = 0  # training FLOPs so far, counted from the graph (follows growth)
        self.frozen: dict = {}  # crystallized petal shares (kept by continual.Crystallizer)
        self.clock = 0.0  # seconds in training steps and growth (not evaluation or checkpoints)
        self.failures, self.injected, self.val_history = 0, 0, []
        self.saved_step: int | None = None  # step of the last checkpoint written or resumed
        self.end = cfg.steps
        if cfg.lr_width is None:  # the spec's lr is for the width it starts at (saved on resume)
            cfg.lr_width = self.width()
        self.opt = make_optimizer(self.model, cfg)
        self._obey_meta()  # a module that carries frozen / LR-scaled slices binds its optimizer
        self.fixed = self._to_device(
            next(stream.iter_eval_batches("val", cfg.batch, cfg.ctx, max_batches=1)))
        if resume is not None:
            self._restore(resume)
        main = self.dist.is_main
        self.metrics = MetricsLog(self.run_dir, self.step if resume is not None else None, main)
        builtin = [Crystallizer(), self.metrics,
                   Progress(self.reporter if main else Reporter(enabled=False)), Checkpointer()]
        if cfg.tensorboard and main:
            builtin.append(resolve_callback("tensorboard")())
        named = [resolve_callback(n)() for n in cfg.callbacks]
        self.callbacks = CallbackList(builtin + named + list(callbacks or ()))
        self.snapshot = self._snap()

    # ------------------------------------------------------------------ model and device
    def _set_model(self, module) -> None:
        """Make `module` the model: on the device, wrapped for DDP and torch.compile."""
        if self.device.type != "cpu":
            module = module.to(self.device)
        self.model = module
        net = self.dist.wrap(module, self.device)
        if self.cfg.compile:
            net = torch.compile(net, backend=self.cfg.compile_backend)
        self.net = net  # what a training step calls

    def _to_device(self, batch):
        if self.device.type == "cpu":
            return batch
        return tuple(t.to(self.device, non_blocking=True) for t in batch)

    def n_params(self) -> int:
        return n_params(self.model)

    def emit(self, hook: str, *args) -> None:
        self.callbacks.emit(hook, self, *args)

    # ------------------------------------------------------------------ state
    def _trainer_state(self) -> dict:
        s = {"step": self.step, "tokens": self.tokens, "flops": self.flops,
             "train_s": self.clock, "lr_scale": self.lr_scale,
             "last_growth_step": self.last_growth, "val_history": self.val_history,
             "injected": self.injected, "params": n_params(self.model),
             "controllers": [c.state_dict() for c in self.controllers],
             "config": self.cfg.to_dict()}
        scaler = self.precision.state_dict()
        if scaler is not None:
            s["grad_scaler"] = scaler
        return s

    def _set_trainer_state(self, s: dict) -> None:
        self.step, self.tokens, self.lr_scale = s["step"], s["tokens"], s["lr_scale"]
        self.flops, self.clock = s.get("flops", 0), s.get("train_s", 0.0)
        self.last_growth, self.injected = s["last_growth_step"], s.get("injected", 0)
        self.val_history = [tuple(v) for v in s["val_history"]]
        for c, cs in zip(self.controllers, s["controllers"]):
            c.load_state_dict(cs)
        self.precision.load_state_dict(s.get("grad_scaler"))

    def _restore(self, r: dict) -> None:
        self._set_model(r["module"])
        self.opt = make_optimizer(self.model, self.cfg)
        load_state_by_name(self.model, self.opt, r["optimizer"]["state"])
        self._obey_meta()
        try:
            self._set_trainer_state(r["state"])
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ckpt.CheckpointError(Path(r["dir"]) / "state.json",
                                       f"its trainer state is malformed ({type(e).__name__}: "
                                       f"{e})") from None
        ckpt.set_rng_state(r["rng"], self.gen)
        self.saved_step = self.step

    def _snap(self) -> dict:
        """The last good in-memory state, for rollback after a non-finite loss."""
        return {"model": clone_module(self.model), "opt": state_by_name(self.model, self.opt),
                "trainer": copy.deepcopy(self._trainer_state()),
                "rng": copy.deepcopy(ckpt.rng_state(self.gen))}

    def rollback(self, loss: float) -> None:
        """Back to the last good state with half the LR scale (halved again by each failure
        until an evaluation passes); the data sampler is not rewound, so the batch that
        failed is skipped (the steps after the snapshot are retried on fresh batches)."""
        self.failures += 1
        s = self.snapshot
        bad_step = self.step + 1
        self._set_model(clone_module(s["model"]))
        self.opt = make_optimizer(self.model, self.cfg)
        load_state_by_name(self.model, self.opt, s["opt"])
        self._obey_meta()
        injected, scale = self.injected, self.lr_scale
        self._set_trainer_state(copy.deepcopy(s["trainer"]))
        self.injected, self.lr_scale = injected, scale * 0.5
        torch.set_rng_state(s["rng"]["torch"])  # not the data generator: see above
        random.setstate(s["rng"]["python"])
        event = {"type": "rollback", "step": bad_step, "loss": str(loss),
                 "resumed_from": self.step, "lr_scale": self.lr_scale, "failures": self.failures}
        self.emit("on_rollback", event)
        self.emit("on_event", event)
        if self.failures >= MAX_FAILURES:
            raise TrainingStopped(
                f"loss was not finite {MAX_FAILURES} times in a row (last at step {bad_step}); "
                f"training stopped", hint=f"lower lr (now x{self.lr_scale:g}) or grad_clip; "
                                          f"{self._kept()}")

    def _kept(self) -> str:
        where = self.run_dir / "checkpoints"
        if self.saved_step is None:
            return f"no checkpoint was written (the first was due at step {self.cfg.ckpt_every})"
        return (f"the last checkpoint (step {self.saved_step}) in {where} is intact: "
                f"`morphc train --resume {self.run_dir}` continues from it")

    # ------------------------------------------------------------------ pieces
    def _loss(self, x, y):
        net = self.net if self.model.training else self.model
        with self.precision.autocast():
            logits = net(x)  # (B, T, V)
            return F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))

    @torch.no_grad()
    def evaluate(self, model=None) -> float:
        """Validation loss over `eval_batches` fixed batches (shared out over the ranks), of the
        model or of `model` (e.g. a gardener's masked twin of it)."""
        if model is not None:  # evaluate() reads self.model (in eval mode, never self.net)
            keep, self.model = self.model, model
            try:
                return self.evaluate()
            finally:
                self.model = keep
        self.model.eval()
        total, n = 0.0, 0
        batches = self.stream.iter_eval_batches("val", self.cfg.batch, self.cfg.ctx,
                                                max_batches=self.cfg.eval_batches)
        for i, (x, y) in enumerate(batches):
            if i % self.dist.world != self.dist.rank:
                continue
            x, y = self._to_device((x, y))
            total += self._loss(x, y).item() * y.numel()
            n += y.numel()
        self.model.train()
        if self.dist.world > 1:
            total, n = self.dist.sum(total, n)
        return total / max(n, 1)

    def save(self) -> None:
        """A checkpoint (written by rank 0) of the model, optimizer, RNG and trainer state."""
        self.emit("on_save")
        if self.dist.is_main:
            path = ckpt.save_checkpoint(self.run_dir, module=self.model,
                                        opt_state=state_by_name(self.model, self.opt),
                                        lr=self.lr_now(), rng=ckpt.rng_state(self.gen),
                                        state=self._trainer_state(), tokenizer=self.tokenizer)
            self.emit("on_checkpoint", path)
        self.saved_step = self.step

    # ------------------------------------------------------------------ loop
    def train_step(self):
        """One optimizer step on the next batch; its (loss, global batch tokens), or None
        when the loss was not finite and the run rolled back."""
        cfg = self.cfg
        lr = self.lr_now()
        set_lr(self.opt, lr)
        x, y = self.stream.get_batch("train", cfg.batch, cfg.ctx, self.gen)
        tokens = x.numel()
        x, y = self._to_device(self.dist.shard(x, y))
        loss = self._loss(x, y)
        if cfg.inject_nan_at_step == self.step + 1 and self.injected < cfg.inject_nan_times:
            self.injected += 1
            loss = loss * float("inf")
        value = self.dist.mean(loss)  # every rank sees the same (averaged) loss
        if not math.isfinite(value):
            self.rollback(value)
            return None
        self.opt.zero_grad(set_to_none=True)
        self.precision.backward(loss)
        if cfg.grad_clip:
            self.precision.unscale(self.opt)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.precision.step(self.opt)
        return value, lr, tokens

    def run(self) -> dict:
        try:
            return self._run()
        except MorphError:
            raise
        except Exception as e:
            if self.dist.world > 1 and lost_peer(e):
                raise TrainingStopped(
                    f"process {self.dist.rank} of {self.dist.world} lost contact with the "
                    f"others at step {self.step + 1} ({' '.join(str(e).split())[:160]}); "
                    f"training stopped", hint=self._kept().replace(
                        "`morphc train", "`torchrun --nproc_per_node N -m morphdsl train")
                    + " (on any number of processes)") from None
            raise

    def _run(self) -> dict:
        self.begin()
        while not self.finished():
            self.advance()
        return self.finish()

    def begin(self) -> None:
        """Start (or continue) the loop; `advance()` then trains one step at a time (the
        gardener's environment drives an engine this way)."""
        cfg = self.cfg
        self._steps = math.inf if cfg.flops else cfg.steps  # a FLOPs budget ends the run: done()
        self.end = self._steps if cfg.stop_at is None else min(self._steps, cfg.stop_at)
        self.model.train()
        self.emit("on_train_start")
        self._t_start, self._busy, self._tok0 = time.time(), 0.0, self.tokens  # busy: train steps only

    def finished(self) -> bool:
        return self.step >= self.end or self.done()

    def advance(self) -> dict | None:
        """One optimizer step, the controllers' decisions, and an evaluation when one is due;
        the step's metrics row (None when a non-finite loss rolled the run back)."""
        cfg = self.cfg
        t0 = time.time()
        out = self.train_step()
        if out is None:
            return None
        loss, lr, tokens = out
        self.step += 1
        self.tokens += tokens
        self.flops += self.step_flops(cfg.batch, cfg.ctx)
        dt = time.time() - t0
        self._busy += dt
        self.clock += dt
        tok_s = (self.tokens - self._tok0) / max(self._busy, 1e-9)
        row = {"step": self.step, "tokens": self.tokens, "flops": self.flops,
               "train_s": round(self.clock, 4), "loss": loss, "lr": lr,
               "params": n_params(self.model), "tok_s": tok_s}
        self.emit("on_step", row)
        grew = self.decide("step", train_loss=row["loss"])
        if self.step % cfg.eval_every == 0 or self.step == self._steps or self.done():
            val = self.evaluate()
            row.update(val_loss=val, val_ppl=math.exp(min(val, 50)))
            self.val_history.append((self.step, val))
            self.emit("on_eval", row)
            grew = self.decide("eval", val_loss=val) or grew
            self.failures = 0
            self.snapshot = self._snap()
            self.emit("on_eval_end", row)
        elif grew:
            self.snapshot = self._snap()
        self.emit("on_step_end", row)
        return row

    def finish(self) -> dict:
        self.emit("on_train_end")
        final = self.val_history[-1][1] if self.val_history else self.evaluate()
        kinds = [e.get("type") for e in read_jsonl(self.run_dir / "events.jsonl")]
        return {"step": self.step, "tokens": self.tokens, "flops": self.flops, "val_loss": final,
                "val_ppl": math.exp(min(final, 50)), "params": n_params(self.model),
                "time_s": time.time() - self._t_start, "growth_events": kinds.count("growth"),
                "growth_failed": kinds.count("growth_failed")}  # skipped growths: see events.jsonl


def read_jsonl(path) -> list[dict]:
    import json

    p = Path(path)
    if not p.exists():
        return []
    return [json.loads(ln) for ln in p.read_text().splitlines() if ln.strip()]
