"""Atomic checkpoints: RUN_DIR/checkpoints/latest -> step-NNNNNN/, the last two kept.

A checkpoint is written into a hidden temp dir (`.tmp-step-NNNNNN-PID`), fsynced, renamed to
`step-NNNNNN`, and `latest` (a symlink) is swapped with `os.replace`, so a process killed at any
moment leaves the previous checkpoint loadable. After a save the newest older checkpoint is
kept too (so there is one to fall back to) and the rest are removed, as are the temp dirs of
killed writes. Its files (ckpt_files.py) hold no pickle.

`meta.json` holds the per-parameter slice metadata (`module.morph_meta`, or the `meta` given);
a loaded module carries it back as `module.morph_meta` (and the result's `meta`).

Loading tries `latest`, then the other checkpoints, newest first: a damaged one is reported
(a warning naming the file) and skipped; when none loads, the error names the file of the
latest. Loading never changes a checkpoint; a resumed run moves the damaged ones it skipped
aside to `checkpoints/damaged-step-NNNNNN` (`set_aside`) before it trains.
"""
from __future__ import annotations

import os
import random
import re
import shutil
import sys
import time
from pathlib import Path

import torch

from ..errors import MorphError
from . import ckpt_files as F
from .ckpt_files import CheckpointError

_STEP = re.compile(r"^step-(\d+)$")
RUN_FILES = ("metrics.jsonl", "events.jsonl", "loss.png")


def _slow_hook(step: int) -> None:
    """Test hook: MORPHDSL_CKPT_SLEEP=STEP:SECONDS sleeps mid-write of checkpoint STEP."""
    spec = os.environ.get("MORPHDSL_CKPT_SLEEP")
    if spec:
        at, secs = spec.split(":")
        if int(at) == step:
            time.sleep(float(secs))


def _step_of(p: Path) -> int | None:
    m = _STEP.match(p.name)
    return int(m.group(1)) if m else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def clean_stale(root: Path) -> list[Path]:
    """Remove temp dirs and links left by checkpoint writes of processes that are gone."""
    removed = []
    for p in list(root.glob(".tmp-step-*")) + list(root.glob(".latest-*")):
        pid = p.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue  # another live process is writing it
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def _point_latest(root: Path, target: Path) -> None:
    link = root / f".latest-{os.getpid()}"
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(target.name, link)
    os.replace(link, root / "latest")  # the atomic switch


def save_checkpoint(run_dir, *, module, opt_state: dict, lr: float, rng: dict, state: dict,
                    tokenizer, meta=None) -> Path:
    """Write a checkpoint of `module` at `state['step']`; returns its directory. `meta` (a
    ParamMeta; default `module.morph_meta`, else every tensor `init`) goes to meta.json."""
    from .. import emit
    from ..growth.metadata import ParamMeta

    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    clean_stale(root)
    step = int(state["step"])
    tmp = root / f".tmp-step-{step:06d}-{os.getpid()}"
    tmp.mkdir()
    F.save_tensors(module.state_dict(), tmp / F.MODEL)
    _slow_hook(step)
    (tmp / F.SPEC).write_text(emit(module.morph_graph), encoding="utf-8")
    F.write_optimizer(tmp, opt_state, lr)
    F.write_rng(tmp, rng)
    tokenizer.save(tmp / F.TOKENIZER)
    F.write_json(state, tmp / F.STATE)
    if meta is None:
        meta = getattr(module, "morph_meta", None)
    try:
        meta = ParamMeta.initial(module) if meta is None else meta.conform(module)
    except MorphError as e:  # metadata of another module: keep the checkpoint, not the slices
        _warn(f"slice metadata does not fit the model ({e.message}); saved as `init`")
        meta = ParamMeta.initial(module)
    F.write_meta(tmp, meta)
    for f in tmp.iterdir():  # make the data durable before it becomes visible
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    final = root / f"step-{step:06d}"
    if final.exists():  # from a timeline abandoned by resuming an older checkpoint
        shutil.rmtree(final)
    os.replace(tmp, final)
    _point_latest(root, final)
    older = [p for p in root.glob("step-*") if p != final and (_step_of(p) or 0) < step]
    keep = max(older, key=_step_of, default=None)
    for old in root.glob("step-*"):
        if old not in (final, keep) and _step_of(old) is not None:
            shutil.rmtree(old, ignore_errors=True)
    return final


# --------------------------------------------------------------------------- finding

def candidates(run_dir) -> list[Path]:
    """Checkpoint dirs to try, best first: `latest`, then the others newest first (or
    `run_dir` itself when it is a checkpoint dir)."""
    p = Path(run_dir)
    if (p / F.STATE).exists() or (p / F.MODEL).exists():
        return [p]
    root = p / "checkpoints"
    steps = sorted((c for c in root.glob("step-*") if _step_of(c) is not None and c.is_dir()),
                   key=_step_of, reverse=True) if root.is_dir() else []
    latest = root / "latest"
    first = [latest.resolve()] if latest.is_dir() else []
    order = first + [c for c in steps if c.resolve() not in first]
    if not order:
        raise MorphError(f"no checkpoint in {run_dir}",
                         hint="train first: morphc train SPEC --out RUN_DIR")
    return order


def checkpoint_dir(run_dir) -> Path:
    """The directory of the latest checkpoint of a run (or a checkpoint dir itself)."""
    return candidates(run_dir)[0]


def run_root(path) -> Path:
    """The run directory of `path`: itself, or the run a checkpoint dir belongs to."""
    p = Path(path)
    if p.parent.name == "checkpoints" and (p / F.STATE).exists():
        return p.parent.parent
    return p


# --------------------------------------------------------------------------- loading

def _warn(text: str) -> None:
    print(f"morphc: warning: {text}", file=sys.stderr, flush=True)


def _load_one(d: Path, training: bool, force_memory: bool) -> dict:
    """Every file of checkpoint `d`, checked (the optimizer and RNG only when `training`)."""
    import morphdsl
    from ..ir.memory import ensure_fits, train_memory
    from .config import from_dict

    state = F.read_state(d)
    graph = F.read_spec(d)
    shapes = graph.param_shapes()
    header = F.tensor_header(d / F.MODEL)
    bad = [k for k in shapes if header.get(k) != tuple(shapes[k])]
    if bad:
        k = bad[0]
        got = "is missing" if k not in header else f"has shape {header[k]}"
        raise CheckpointError(d / F.MODEL, f"does not match {F.SPEC}: '{k}' {got}, the spec "
                                           f"wants {tuple(shapes[k])}")
    if training:
        cfg = from_dict(state["config"])
        est = train_memory(graph, cfg.batch, cfg.ctx)
        ensure_fits(est.total, f"resuming {run_root(d)} (batch {cfg.batch} x {cfg.ctx})",
                    device=cfg.device, force=force_memory, detail=f" ({est.parts()})")
    tokenizer = F.read_tokenizer(d)
    opt = F.read_optimizer(d, shapes) if training else None
    rng = F.read_rng(d) if training else None
    meta = F.read_meta(d, shapes)
    tensors = F.read_tensors(d / F.MODEL)
    module = morphdsl.compile(graph)
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        raise CheckpointError(d / F.MODEL, f"does not match {F.SPEC}: "
                                           f"{' '.join(str(e).split())[:200]}") from None
    module.morph_meta = meta
    return {"dir": d, "module": module, "tokenizer": tokenizer, "state": state,
            "optimizer": opt, "rng": rng, "meta": meta}


def load_checkpoint(run_dir, *, training: bool = False, force_memory: bool = False,
                    warn=_warn) -> dict:
    """Load a run's latest good checkpoint: module (compiled from spec.morph, weights loaded),
    tokenizer, state, and with `training` the optimizer state and RNG. A damaged checkpoint is
    skipped with a warning when an older one loads (its dir is in the result's `skipped`)."""
    errors: list[tuple[Path, CheckpointError]] = []
    for d in candidates(run_dir):
        try:
            r = _load_one(d, training, force_memory)
        except CheckpointError as e:
            errors.append((d, e))
            continue
        for bad, e in errors:
            warn(f"checkpoint {bad.name} is damaged ({e.message}); using {d.name} "
                 f"(step {r['state']['step']}) instead")
        r["skipped"] = [bad for bad, _ in errors]
        return r
    _, e = errors[0]
    more = len(errors) - 1
    e.hint = (f"{more} older checkpoint{'s' if more > 1 else ''} could not be loaded either; "
              if more else "there is no older checkpoint to fall back to; ") + \
        "nothing was changed" + (f" ({e.hint})" if e.hint else "")
    raise e


def set_aside(run_dir, skipped: list[Path], good: Path, warn=_warn) -> None:
    """Before a resumed run trains: move the damaged checkpoints it skipped to
    `damaged-step-NNNNNN` (kept, not deleted) and point `latest` at the one it resumed from."""
    root = Path(run_dir) / "checkpoints"
    for d in skipped:
        if d.parent.resolve() != root.resolve() or _step_of(d) is None:
            continue
        target, n = root / f"damaged-{d.name}", 1
        while target.exists():
            target, n = root / f"damaged-{d.name}-{n}", n + 1
        os.replace(d, target)
        warn(f"moved the damaged checkpoint {d.name} to {target}")
    if skipped and good.parent.resolve() == root.resolve():
        _point_latest(root, good)


# --------------------------------------------------------------------------- runs

def existing_run(run_dir) -> bool:
    """Whether `run_dir` holds (part of) a training run."""
    p = Path(run_dir)
    return p.is_dir() and any((p / f).exists() for f in ("checkpoints",) + RUN_FILES)


def clear_run(run_dir) -> None:
    """Remove a run's checkpoints, metrics, events and plot (for starting it over)."""
    p = Path(run_dir)
    shutil.rmtree(p / "checkpoints", ignore_errors=True)
    for f in RUN_FILES:
        (p / f).unlink(missing_ok=True)


def rng_state(data_gen: torch.Generator) -> dict:
    return {"torch": torch.get_rng_state(), "python": random.getstate(),
            "data": data_gen.get_state()}


def set_rng_state(rng: dict, data_gen: torch.Generator) -> None:
    torch.set_rng_state(rng["torch"])
    random.setstate(rng["python"])
    data_gen.set_state(rng["data"])
