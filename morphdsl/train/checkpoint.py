"""Atomic checkpoints: RUN_DIR/checkpoints/latest -> step-NNNNNN/.

A checkpoint is written into a hidden temp dir, renamed to `step-NNNNNN`, and `latest` (a
symlink) is swapped with `os.replace`, so a process killed at any moment leaves the previous
checkpoint loadable. Files: model.safetensors, spec.morph (the current, grown architecture),
optimizer.pt (AdamW state by parameter name), rng.pt, state.json, tokenizer.json.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..errors import MorphError


def _slow_hook(step: int) -> None:
    """Test hook: MORPHDSL_CKPT_SLEEP=STEP:SECONDS sleeps mid-write of checkpoint STEP."""
    spec = os.environ.get("MORPHDSL_CKPT_SLEEP")
    if spec:
        at, secs = spec.split(":")
        if int(at) == step:
            time.sleep(float(secs))


def save_checkpoint(run_dir, *, module, opt_state: dict, lr: float, rng: dict, state: dict,
                    tokenizer) -> Path:
    """Write a checkpoint of `module` at `state['step']`; returns its directory."""
    from .. import emit

    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    step = int(state["step"])
    tmp = root / f".tmp-step-{step:06d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}
    save_file(tensors, str(tmp / "model.safetensors"))
    _slow_hook(step)
    (tmp / "spec.morph").write_text(emit(module.morph_graph), encoding="utf-8")
    torch.save({"state": opt_state, "lr": lr}, tmp / "optimizer.pt")
    torch.save(rng, tmp / "rng.pt")
    tokenizer.save(tmp / "tokenizer.json")
    (tmp / "state.json").write_text(json.dumps(state, indent=1), encoding="utf-8")
    for f in tmp.iterdir():  # make the data durable before it becomes visible
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    final = root / f"step-{step:06d}"
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    link = root / f".latest-{os.getpid()}"
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(final.name, link)
    os.replace(link, root / "latest")  # the atomic switch
    for old in root.glob("step-*"):
        if old.name != final.name:
            shutil.rmtree(old, ignore_errors=True)
    return final


def checkpoint_dir(run_dir) -> Path:
    """The directory of the latest complete checkpoint of a run (or a checkpoint dir itself)."""
    p = Path(run_dir)
    if (p / "state.json").exists():
        return p
    latest = p / "checkpoints" / "latest"
    if not latest.exists():
        raise MorphError(f"no checkpoint in {run_dir}",
                         hint="train first: morphc train SPEC --out RUN_DIR")
    return latest.resolve()


def load_checkpoint(run_dir) -> dict:
    """Compile spec.morph, load its weights; returns module, tokenizer, state, opt, rng."""
    from .. import compile as compile_spec
    from ..data import load_tokenizer

    d = checkpoint_dir(run_dir)
    module = compile_spec(str(d / "spec.morph"))
    module.load_state_dict(load_file(str(d / "model.safetensors")), strict=True)
    return {"dir": d, "module": module, "tokenizer": load_tokenizer(d / "tokenizer.json"),
            "state": json.loads((d / "state.json").read_text(encoding="utf-8")),
            "optimizer": torch.load(d / "optimizer.pt", weights_only=False),
            "rng": torch.load(d / "rng.pt", weights_only=False)}


def rng_state(data_gen: torch.Generator) -> dict:
    return {"torch": torch.get_rng_state(), "python": random.getstate(),
            "data": data_gen.get_state()}


def set_rng_state(rng: dict, data_gen: torch.Generator) -> None:
    torch.set_rng_state(rng["torch"])
    random.setstate(rng["python"])
    data_gen.set_state(rng["data"])
