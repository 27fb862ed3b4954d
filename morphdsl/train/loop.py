"""The training loop: AdamW, warm-up + cosine LR on a global step, evaluation, growth events,
non-finite-loss rollback and atomic checkpoints. `Trainer.run()` trains to `cfg.steps`."""
from __future__ import annotations

import copy
import json
import math
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import MorphError
from . import checkpoint as ckpt
from .config import TrainConfig
from .data import prepare_data
from .growth import ControlState, RuleController, apply_growth, check_growth_fits
from .optim import load_state_by_name, make_optimizer, set_lr, state_by_name
from .progress import Reporter
from .schedule import Schedule

MAX_FAILURES = 3


def clone_module(model):
    """A deep copy of a compiled module, keeping its IR graph (fx's deepcopy drops it)."""
    new = copy.deepcopy(model)
    new.morph_graph = copy.deepcopy(model.morph_graph)
    return new


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


class TrainingStopped(MorphError):
    kind = "error"


class Trainer(Schedule):
    """Owns model, optimizer, data stream and controllers; `run()` trains and checkpoints."""

    def __init__(self, module, cfg: TrainConfig, run_dir, *, tokenizer=None, stream=None,
                 controllers=None, reporter: Reporter | None = None, resume: dict | None = None):
        self.cfg, self.run_dir = cfg, Path(run_dir)
        torch.set_num_threads(cfg.threads)
        if resume is None:
            torch.manual_seed(cfg.seed)
            random.seed(cfg.seed)
        self.model = module
        if tokenizer is None or stream is None:
            tokenizer, stream = prepare_data(cfg, module.morph_graph, tokenizer)
        self.tokenizer, self.stream = tokenizer, stream
        rules = module.morph_graph.sections.get("grow") or []
        self.controllers = controllers if controllers is not None else [RuleController(rules)]
        self.reporter = reporter or Reporter(enabled=False)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.step, self.tokens, self.lr_scale, self.last_growth = 0, 0, 1.0, 0
        self.flops = 0  # training FLOPs so far, counted from the graph (follows growth)
        self.clock = 0.0  # seconds in training steps and growth (not evaluation or checkpoints)
        self.failures, self.injected, self.val_history = 0, 0, []
        self.saved_step: int | None = None  # step of the last checkpoint written or resumed
        if cfg.lr_width is None:  # the spec's lr is for the width it starts at (saved on resume)
            cfg.lr_width = self.width()
        self.opt = make_optimizer(self.model, cfg)
        self.fixed = next(stream.iter_eval_batches("val", cfg.batch, cfg.ctx, max_batches=1))
        self.pending: list[dict] = []  # metric rows not yet flushed to metrics.jsonl
        self.run_dir.mkdir(parents=True, exist_ok=True)  # once the data is known to be good
        if resume is not None:
            self._restore(resume)
        else:
            for f in ("metrics.jsonl", "events.jsonl"):
                (self.run_dir / f).write_text("")
        self.snapshot = self._snap()

    # ------------------------------------------------------------------ state
    def _trainer_state(self) -> dict:
        return {"step": self.step, "tokens": self.tokens, "flops": self.flops,
                "train_s": self.clock, "lr_scale": self.lr_scale,
                "last_growth_step": self.last_growth, "val_history": self.val_history,
                "injected": self.injected, "params": n_params(self.model),
                "controllers": [c.state_dict() for c in self.controllers],
                "config": self.cfg.to_dict()}

    def _set_trainer_state(self, s: dict) -> None:
        self.step, self.tokens, self.lr_scale = s["step"], s["tokens"], s["lr_scale"]
        self.flops, self.clock = s.get("flops", 0), s.get("train_s", 0.0)
        self.last_growth, self.injected = s["last_growth_step"], s.get("injected", 0)
        self.val_history = [tuple(v) for v in s["val_history"]]
        for c, cs in zip(self.controllers, s["controllers"]):
            c.load_state_dict(cs)

    def _restore(self, r: dict) -> None:
        self.model = r["module"]
        self.opt = make_optimizer(self.model, self.cfg)
        load_state_by_name(self.model, self.opt, r["optimizer"]["state"])
        try:
            self._set_trainer_state(r["state"])
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ckpt.CheckpointError(Path(r["dir"]) / "state.json",
                                       f"its trainer state is malformed ({type(e).__name__}: "
                                       f"{e})") from None
        ckpt.set_rng_state(r["rng"], self.gen)
        self.saved_step = self.step
        for f in ("metrics.jsonl", "events.jsonl"):  # drop rows written after the checkpoint
            p = self.run_dir / f
            rows = [ln for ln in p.read_text(errors="replace").splitlines() if ln.strip()] \
                if p.exists() else []
            keep = [ln for ln in rows if _row_step(ln) <= self.step]
            p.write_text("".join(ln + "\n" for ln in keep))

    def _snap(self) -> dict:
        """The last good in-memory state, for rollback after a non-finite loss."""
        return {"model": clone_module(self.model), "opt": state_by_name(self.model, self.opt),
                "trainer": copy.deepcopy(self._trainer_state()),
                "rng": copy.deepcopy(ckpt.rng_state(self.gen))}

    def _rollback(self, loss: float) -> None:
        """Back to the last good state with half the LR scale (halved again by each failure
        until an evaluation passes); the data sampler is not rewound, so the batch that
        failed is skipped (the steps after the snapshot are retried on fresh batches)."""
        self.failures += 1
        s = self.snapshot
        bad_step = self.step + 1
        self.model = clone_module(s["model"])
        self.opt = make_optimizer(self.model, self.cfg)
        load_state_by_name(self.model, self.opt, s["opt"])
        injected, scale = self.injected, self.lr_scale
        self._set_trainer_state(copy.deepcopy(s["trainer"]))
        self.injected, self.lr_scale = injected, scale * 0.5
        torch.set_rng_state(s["rng"]["torch"])  # not the data generator: see above
        random.setstate(s["rng"]["python"])
        self.pending.clear()
        self._event({"type": "rollback", "step": bad_step, "loss": str(loss),
                     "resumed_from": self.step, "lr_scale": self.lr_scale,
                     "failures": self.failures})
        if self.failures >= MAX_FAILURES:
            where = self.run_dir / "checkpoints"
            kept = (f"the last checkpoint (step {self.saved_step}) in {where} is intact: "
                    f"`morphc train --resume {self.run_dir}` continues from it"
                    if self.saved_step is not None else
                    f"no checkpoint was written (the first was due at step {self.cfg.ckpt_every})")
            raise TrainingStopped(
                f"loss was not finite {MAX_FAILURES} times in a row (last at step {bad_step}); "
                f"training stopped", hint=f"lower lr (now x{self.lr_scale:g}) or grad_clip; {kept}")

    # ------------------------------------------------------------------ pieces
    def _event(self, row: dict) -> None:
        with open(self.run_dir / "events.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        self.reporter.event(row)

    def _flush(self) -> None:
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.writelines(json.dumps(r) + "\n" for r in self.pending)
        self.pending.clear()

    def _loss(self, x, y):
        logits = self.model(x)  # (B, T, V)
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))

    @torch.no_grad()
    def evaluate(self) -> float:
        self.model.eval()
        total, n = 0.0, 0
        for x, y in self.stream.iter_eval_batches("val", self.cfg.batch, self.cfg.ctx,
                                                  max_batches=self.cfg.eval_batches):
            total += self._loss(x, y).item() * y.numel()
            n += y.numel()
        self.model.train()
        return total / max(n, 1)

    @torch.no_grad()
    def fixed_logits(self):
        self.model.eval()
        out = self.model(self.fixed[0])
        self.model.train()
        return out

    def grow(self, action) -> None:
        """Apply one growth action: rewrite, move weights + AdamW state, check identity, log."""
        args = dict(action.kwargs)
        if action.target is not None:  # graph-wide rewrites (widen_embed) take no target
            args["target"] = action.target
        fits = None if self.cfg.force_memory else (  # on the grown graph, before allocating
            lambda g: check_growth_fits(g, action, self.cfg, self.step, self.saved_step))
        t0 = time.time()
        before_logits, p0 = self.fixed_logits(), n_params(self.model)
        loss0 = F.cross_entropy(before_logits.flatten(0, 1), self.fixed[1].flatten()).item()
        with torch.random.fork_rng(devices=[]):  # new units' init: seeded by (seed, step)
            torch.manual_seed(self.cfg.seed * 1_000_003 + self.step)
            try:
                new, states = apply_growth(self.model, self.opt, action.op, args, fits)
            except MorphError as e:
                raise e if e.span else type(e)(e.message, span=action.span, hint=e.hint)
        self.model = new
        self.opt = make_optimizer(self.model, self.cfg)
        load_state_by_name(self.model, self.opt, states)
        after_logits = self.fixed_logits()
        loss1 = F.cross_entropy(after_logits.flatten(0, 1), self.fixed[1].flatten()).item()
        err = (after_logits - before_logits).abs().max().item()
        self.last_growth = self.step
        self.clock += time.time() - t0
        self._event({"type": "growth", "step": self.step, "tokens": self.tokens, "flops": self.flops,
                     "op": action.op, "target": action.target, "args": action.kwargs,
                     "reason": action.reason, "params_before": p0,
                     "params_after": n_params(self.model), "max_verify_error": err,
                     "loss_before": loss0, "loss_after": loss1})

    def _decide(self, event: str, train_loss=None, val_loss=None) -> bool:
        s = ControlState(self.step, event, n_params(self.model), self.tokens, train_loss, val_loss,
                         self.last_growth, list(self.val_history), self.progress(), self.flops)
        actions = [a for c in self.controllers for a in c.decide(s)]
        for a in actions:
            self.grow(a)
        return bool(actions)

    def save(self) -> None:
        self._flush()
        ckpt.save_checkpoint(self.run_dir, module=self.model,
                             opt_state=state_by_name(self.model, self.opt),
                             lr=self.lr_now(),
                             rng=ckpt.rng_state(self.gen), state=self._trainer_state(),
                             tokenizer=self.tokenizer)
        self.saved_step = self.step

    # ------------------------------------------------------------------ loop
    def run(self) -> dict:
        cfg = self.cfg
        steps = math.inf if cfg.flops else cfg.steps  # a FLOPs budget ends the run: done()
        end = steps if cfg.stop_at is None else min(steps, cfg.stop_at)
        self.model.train()
        self.reporter.start(self.step, self.planned_steps(), n_params(self.model))
        t_start, busy, tok0 = time.time(), 0.0, self.tokens  # busy: time in train steps only
        while self.step < end and not self.done():
            t0 = time.time()
            lr = self.lr_now()
            set_lr(self.opt, lr)
            x, y = self.stream.get_batch("train", cfg.batch, cfg.ctx, self.gen)
            loss = self._loss(x, y)
            if cfg.inject_nan_at_step == self.step + 1 and self.injected < cfg.inject_nan_times:
                self.injected += 1
                loss = loss * float("inf")
            if not math.isfinite(loss.item()):
                self._rollback(loss.item())
                continue
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.opt.step()
            self.step += 1
            self.tokens += x.numel()
            self.flops += self.step_flops(x.shape[0], x.shape[1])
            dt = time.time() - t0
            busy += dt
            self.clock += dt
            tok_s = (self.tokens - tok0) / max(busy, 1e-9)
            row = {"step": self.step, "tokens": self.tokens, "flops": self.flops,
                   "train_s": round(self.clock, 4), "loss": loss.item(), "lr": lr,
                   "params": n_params(self.model), "tok_s": tok_s}
            self.pending.append(row)
            self.reporter.update(self.step, row["loss"], tok_s, row["params"])
            grew = self._decide("step", train_loss=row["loss"])
            if self.step % cfg.eval_every == 0 or self.step == steps or self.done():
                val = self.evaluate()
                row.update(val_loss=val, val_ppl=math.exp(min(val, 50)))
                self.val_history.append((self.step, val))
                self.reporter.eval(self.step, val)
                grew = self._decide("eval", val_loss=val) or grew
                self.failures = 0
                self.snapshot = self._snap()
                self._flush()
            elif grew:
                self.snapshot = self._snap()
            if self.step % cfg.ckpt_every == 0 or self.step == end or self.done():
                self.save()
        self._flush()
        if self.step > 0 and not (self.run_dir / "checkpoints" / "latest").exists():
            self.save()
        final = self.val_history[-1][1] if self.val_history else self.evaluate()
        return {"step": self.step, "tokens": self.tokens, "flops": self.flops, "val_loss": final,
                "val_ppl": math.exp(min(final, 50)), "params": n_params(self.model),
                "time_s": time.time() - t_start,
                "growth_events": sum(1 for e in read_jsonl(self.run_dir / "events.jsonl")
                                     if e.get("type") == "growth")}


def _row_step(line: str) -> float:
    """The step of a metrics/events row (inf for a line that is not a JSON object: dropped)."""
    try:
        row = json.loads(line)
    except ValueError:
        return math.inf
    step = row.get("step", 0) if isinstance(row, dict) else None
    return step if isinstance(step, (int, float)) and not isinstance(step, bool) else math.inf


def read_jsonl(path) -> list[dict]:
    p = Path(path)
    if not p.exists():
        return []
    return [json.loads(ln) for ln in p.read_text().splitlines() if ln.strip()]
