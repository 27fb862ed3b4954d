"""The files of a checkpoint, written and read back without pickle, each checked on reading.

    model.safetensors       weights (and buffers) by parameter name
    spec.morph              the architecture, as grown
    optimizer.safetensors   AdamW state tensors, keyed `PARAM/exp_avg`, `PARAM/exp_avg_sq`, ...
    optimizer.json          {"version", "lr", "params": {PARAM: {"tensors": [...], "scalars": {}}}}
    rng.safetensors         `torch` (CPU generator state) and `data` (the batch sampler's state)
    rng.json                {"version", "python": [version, [625 ints], gauss_next]}
    state.json              trainer state: step, tokens, LR scale, controllers, config, ...
    meta.json               per-parameter slice metadata (morphdsl.growth.metadata); optional:
                            a checkpoint without it loads with every tensor `init`
    tokenizer.json          the tokenizer (a Hugging Face file for BPE)

Every reader raises `CheckpointError` ("FILE: what is wrong") for a file that is missing,
unreadable, malformed or inconsistent with the others; nothing it reads can run code.
"""
from __future__ import annotations

import json
import math
import random
from pathlib import Path

import torch

from ..errors import MorphError

MODEL, SPEC, STATE, TOKENIZER = "model.safetensors", "spec.morph", "state.json", "tokenizer.json"
OPT_TENSORS, OPT_JSON = "optimizer.safetensors", "optimizer.json"
RNG_TENSORS, RNG_JSON = "rng.safetensors", "rng.json"
META = "meta.json"
LEGACY = ("optimizer.pt", "rng.pt")  # pickle files of older morphdsl versions: never loaded
VERSION = 1


class CheckpointError(MorphError):
    """A checkpoint file is missing or damaged. `path` is the file."""

    def __init__(self, path, what: str, hint: str | None = None):
        super().__init__(f"{path}: {what}", hint=hint)
        self.path = Path(path)


def _why(e: BaseException, width: int = 120) -> str:
    """The first line of an exception's message (its type when it has none)."""
    lines = str(e).strip().splitlines()
    return lines[0][:width] if lines else type(e).__name__


def _need(path: Path) -> Path:
    if not path.is_file():
        legacy = [n for n in LEGACY if (path.parent / n).exists()]
        hint = (f"this checkpoint has {legacy[0]}, a pickle file of an older morphdsl, which is "
                "never loaded (it could run code); retrain, or use it only for eval/sample"
                if legacy and path.name.startswith(("optimizer", "rng")) else None)
        raise CheckpointError(path, "missing from the checkpoint", hint=hint)
    return path


def read_json(path: Path) -> dict:
    try:
        data = json.loads(_need(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise CheckpointError(path, f"not valid JSON ({type(e).__name__}: {_why(e)})") from None
    if not isinstance(data, dict):
        raise CheckpointError(path, "not a JSON object")
    return data


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    _need(path)
    try:
        return load_file(str(path))
    except Exception as e:  # noqa: BLE001 - SafetensorError, OSError, ...: a damaged file
        raise CheckpointError(path, f"not a readable safetensors file ({_why(e)})") from None


def tensor_header(path: Path) -> dict[str, tuple]:
    """Names and shapes in a safetensors file, read from its header (no tensor is loaded)."""
    from safetensors import safe_open

    _need(path)
    try:
        with safe_open(str(path), "pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(path, f"not a readable safetensors file ({_why(e)})") from None


def save_tensors(tensors: dict, path: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, str(path))


def write_json(obj, path: Path) -> None:
    path.write_text(json.dumps(obj, indent=1), encoding="utf-8")


# --------------------------------------------------------------------------- optimizer

def write_optimizer(d: Path, opt_state: dict[str, dict], lr: float) -> None:
    tensors, params = {}, {}
    for name, st in opt_state.items():
        entry = {"tensors": [], "scalars": {}}
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{name}/{k}"] = v
                entry["tensors"].append(k)
            else:
                entry["scalars"][k] = v
        params[name] = entry
    save_tensors(tensors, d / OPT_TENSORS)
    write_json({"version": VERSION, "lr": lr, "params": params}, d / OPT_JSON)


def read_optimizer(d: Path, param_shapes: dict[str, tuple]) -> dict:
    """{"state": {PARAM: {key: value}}, "lr": float}, checked against the model's parameters."""
    meta = read_json(d / OPT_JSON)
    params = meta.get("params")
    if meta.get("version") != VERSION or not isinstance(params, dict):
        raise CheckpointError(d / OPT_JSON, "not a morphdsl optimizer file (no version 1 "
                                            "'params' object)")
    tensors = read_tensors(d / OPT_TENSORS)
    state, used = {}, set()
    for name, entry in params.items():
        if name not in param_shapes:
            raise CheckpointError(d / OPT_JSON, f"has state for '{name}', which is not a "
                                                f"parameter of {SPEC}")
        if not isinstance(entry, dict) or not isinstance(entry.get("tensors"), list) \
                or not isinstance(entry.get("scalars", {}), dict):
            raise CheckpointError(d / OPT_JSON, f"malformed entry for '{name}'")
        st = dict(entry.get("scalars", {}))
        for k in entry["tensors"]:
            key = f"{name}/{k}"
            if key not in tensors:
                raise CheckpointError(d / OPT_TENSORS, f"has no tensor '{key}'")
            t = tensors[key]
            if t.dim() > 0 and tuple(t.shape) != tuple(param_shapes[name]):
                raise CheckpointError(d / OPT_TENSORS, f"'{key}' has shape {tuple(t.shape)}, "
                                                       f"the parameter {tuple(param_shapes[name])}")
            if not t.is_floating_point():
                raise CheckpointError(d / OPT_TENSORS, f"'{key}' is not a float tensor")
            st[k], _ = t, used.add(key)
        state[name] = st
    extra = sorted(set(tensors) - used)
    if extra:
        raise CheckpointError(d / OPT_TENSORS, f"has tensors {OPT_JSON} does not list "
                                               f"({', '.join(extra[:3])})")
    lr = meta.get("lr")
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not math.isfinite(lr):
        raise CheckpointError(d / OPT_JSON, f"'lr' is not a finite number ({lr!r})")
    return {"state": state, "lr": float(lr)}


# --------------------------------------------------------------------------- metadata

def write_meta(d: Path, meta) -> None:
    write_json(meta.to_json(), d / META)


def read_meta(d: Path, param_shapes: dict[str, tuple]):
    """The checkpoint's ParamMeta, checked to tile every parameter; every tensor `init` when
    the checkpoint has no meta.json (older morphdsl versions)."""
    from ..growth.metadata import ParamMeta, Slice, full

    path = d / META
    if not path.exists():
        return ParamMeta({n: [Slice(full(s))] for n, s in param_shapes.items()})
    try:
        meta = ParamMeta.from_json(read_json(path))
    except (ValueError, TypeError, AttributeError) as e:
        raise CheckpointError(path, f"malformed metadata ({_why(e)})") from None
    extra = sorted(set(meta.params) - set(param_shapes))
    if extra:
        raise CheckpointError(path, f"has slices for '{extra[0]}', which is not a parameter of "
                                    f"{SPEC}")
    for n, s in param_shapes.items():  # tensors it does not list start as `init`
        meta.params.setdefault(n, [Slice(full(s))])
    try:
        meta.check(param_shapes)
    except MorphError as e:
        raise CheckpointError(path, f"does not fit {SPEC}: {e.message}") from None
    return meta


# --------------------------------------------------------------------------- RNG

def write_rng(d: Path, rng: dict) -> None:
    save_tensors({"torch": rng["torch"], "data": rng["data"]}, d / RNG_TENSORS)
    version, internal, gauss = rng["python"]
    write_json({"version": VERSION, "python": [version, list(internal), gauss]}, d / RNG_JSON)


def _generator_state(t: torch.Tensor | None, path: Path, key: str) -> torch.Tensor:
    try:
        if t is None or t.dtype != torch.uint8 or t.dim() != 1:
            raise ValueError
        torch.Generator().set_state(t)  # a throwaway generator: checks the state is valid
    except (RuntimeError, ValueError, TypeError):
        raise CheckpointError(path, f"'{key}' is not a CPU random generator state") from None
    return t


def read_rng(d: Path) -> dict:
    tensors = read_tensors(d / RNG_TENSORS)
    out = {k: _generator_state(tensors.get(k), d / RNG_TENSORS, k) for k in ("torch", "data")}
    meta = read_json(d / RNG_JSON)
    py = meta.get("python")
    try:
        version, internal, gauss = py
        state = (version, tuple(internal), gauss)
        if not all(type(i) is int for i in internal):
            raise ValueError
        random.Random().setstate(state)  # checks it
    except (TypeError, ValueError, OverflowError):
        raise CheckpointError(d / RNG_JSON, "'python' is not a Python random state") from None
    out["python"] = state
    return out


# --------------------------------------------------------------------------- trainer state

_STATE_KEYS = {"step": int, "tokens": int, "lr_scale": (int, float), "last_growth_step": int,
               "val_history": list, "controllers": list, "config": dict}


def read_state(d: Path) -> dict:
    """state.json, with the types the trainer relies on checked (and its config valid)."""
    from .config import from_dict

    path = d / STATE
    s = read_json(path)
    for key, typ in _STATE_KEYS.items():
        v = s.get(key)
        if not isinstance(v, typ) or isinstance(v, bool):
            want = getattr(typ, "__name__", "number").replace("dict", "object")
            raise CheckpointError(path, f"'{key}' is missing or is not a JSON {want}")
    if s["step"] < 0 or not (math.isfinite(s["lr_scale"]) and s["lr_scale"] > 0):
        raise CheckpointError(path, "'step' or 'lr_scale' is out of range")
    if not all(isinstance(v, list) and len(v) == 2 for v in s["val_history"]) \
            or not all(isinstance(c, dict) for c in s["controllers"]):
        raise CheckpointError(path, "'val_history' or 'controllers' is malformed")
    try:
        from_dict(s["config"])
    except (MorphError, TypeError, ValueError, AttributeError) as e:
        raise CheckpointError(path, f"its training config is invalid: "
                                    f"{getattr(e, 'message', e)}") from None
    return s


def read_tokenizer(d: Path):
    from ..data import load_tokenizer

    path = d / TOKENIZER
    read_json(path)  # a tokenizer file is a JSON object (Hugging Face's for BPE)
    try:
        return load_tokenizer(path)
    except MorphError as e:
        raise CheckpointError(path, f"not a tokenizer file ({e.message})") from None
    except Exception as e:  # noqa: BLE001 - the BPE reader's own errors
        raise CheckpointError(path, f"not a tokenizer file ({_why(e)})") from None


def read_spec(d: Path):
    """The checkpoint's architecture as a built MorphGraph (nothing allocated yet)."""
    import morphdsl

    path = _need(d / SPEC)
    try:
        return morphdsl.build(str(path))
    except MorphError as e:
        where = f" at line {e.line}" if e.line else ""
        raise CheckpointError(path, f"does not build{where}: {e.message}") from None
    except (RecursionError, ValueError, TypeError, KeyError) as e:  # text no spec would hold
        raise CheckpointError(path, f"does not build ({type(e).__name__})") from None
