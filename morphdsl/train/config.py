"""Training configuration: the spec's `train` and `data` sections, overridden by CLI flags."""
from __future__ import annotations

import dataclasses
import difflib
import math
import os
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import MorphError

TOKENIZERS = ("bytes", "chars", "bpe", "byte", "char")


@dataclass
class TrainConfig:
    # train { } section
    steps: int = 300
    flops: float | None = None          # a compute budget: train until this many FLOPs are spent
    batch: int = 16
    ctx: int = 128
    lr: float = 3e-3
    min_lr: float | None = None         # default lr / 10
    warmup: int = 20
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    lr_width: int | None = None         # lr is for this residual width; lr x lr_width / width
                                        # (muP-style; None: the width training starts at; 0: off)
    rewarm: int = 0                     # after a growth, ramp the LR back up over this many steps
    rewarm_from: float = 0.0            # ... starting at this fraction of the schedule's LR
    eval_every: int = 50
    eval_batches: int = 8
    seed: int = 0
    sample_tokens: int = 200
    temperature: float = 0.8
    threads: int = 2                    # torch.set_num_threads: fixed for reproducible CPU runs
    checkpoint_every: int | None = None  # default eval_every
    inject_nan_at_step: int | None = None  # test hook: make the loss at this step infinite
    inject_nan_times: int = 1           # ... this many times (rollbacks retry the step)
    # data { } section
    source: str = "stories"
    tokenizer: str = "bytes"
    vocab_size: int | None = None
    val_fraction: float = 0.1
    max_docs: int | None = None
    optimizer: str = "adamw"            # optim.OPTIMIZERS, a torch.optim name, or "pkg.mod:Class"
    optimizer_args: dict = field(default_factory=dict)  # from `optimizer_ARG = value` settings
    device: str = "auto"                # auto (cuda if available, else cpu) | cpu | cuda[:N] | mps
    dtype: str = "float32"              # float32 | bfloat16 | float16 (autocast; fp16: GradScaler)
    compile: bool = False               # run the module under torch.compile (again after growth)
    compile_backend: str = "inductor"   # torch.compile's backend ("eager" in tests)
    tensorboard: bool = False           # also write TensorBoard events to RUN_DIR/tensorboard
    callbacks: list = field(default_factory=list)  # importable callback classes (or table names)
    # run
    stop_at: int | None = None          # stop early (as if killed) without changing the schedule
    stop_at_flops: float | None = None  # ... once this many training FLOPs are spent
    force_memory: bool = False          # train even when the memory estimate exceeds the machine
    extra: dict = field(default_factory=dict)

    @property
    def min_lr_value(self) -> float:
        return self.lr / 10 if self.min_lr is None else self.min_lr

    @property
    def ckpt_every(self) -> int:
        return self.checkpoint_every or self.eval_every

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_TRAIN_KEYS = {"steps", "flops", "batch", "ctx", "lr", "min_lr", "warmup", "weight_decay", "grad_clip",
               "rewarm", "rewarm_from", "lr_width",
               "eval_every", "eval_batches", "seed", "sample_tokens", "temperature", "threads",
               "checkpoint_every", "inject_nan_at_step", "inject_nan_times",
               "optimizer", "device", "dtype", "compile", "compile_backend", "tensorboard",
               "callbacks"}
_STRINGS = {"source", "tokenizer", "optimizer", "device", "dtype", "compile_backend"}
_BOOLS = {"compile", "tensorboard"}
OPT_PREFIX = "optimizer_"  # `optimizer_momentum = 0.9` -> optimizer_args["momentum"] = 0.9
_DATA_KEYS = {"source", "tokenizer", "vocab_size", "val_fraction", "max_docs"}
_INTS = {"steps", "batch", "ctx", "warmup", "rewarm", "lr_width", "eval_every", "eval_batches", "seed",
         "sample_tokens", "threads", "checkpoint_every", "inject_nan_at_step", "inject_nan_times", "vocab_size",
         "max_docs"}


def _bad(key: str, message: str, hint: str | None = None) -> MorphError:
    """An error about setting `key` (from_sections points it at the key's line in the spec)."""
    e = MorphError(message, hint=hint)
    e.setting = key
    return e


def _unknown(key: str, section: str, known: set) -> MorphError:
    close = difflib.get_close_matches(key, sorted(known), n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"known settings: {', '.join(sorted(known))}"
    return _bad(key, f"unknown setting '{key}' in the {section} section", hint=hint)


def _coerce(key: str, value: Any) -> Any:
    if value is None:
        return None
    if key in _INTS:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise _bad(key, f"train setting '{key}' must be an integer, got {value!r}")
        return value
    if key in ("source", "tokenizer"):
        return str(value)
    if key in _STRINGS:
        if not isinstance(value, str):
            raise _bad(key, f"setting '{key}' must be a string, got {value!r}",
                       hint=f'write it in quotes: {key} = "..."')
        return str(value)
    if key in _BOOLS:
        if not isinstance(value, bool):
            raise _bad(key, f"train setting '{key}' must be true or false, got {value!r}")
        return value
    if key == "callbacks":
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _bad(key, f"train setting 'callbacks' must be a list of strings, got {value!r}",
                       hint='callbacks = ["package.module:Class"]')
        return list(value)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise _bad(key, f"setting '{key}' must be a number, got {value!r}")
    return float(value)


def from_sections(sections: dict, overrides: dict | None = None,
                  spans: dict | None = None) -> TrainConfig:
    """A TrainConfig from `graph.sections` (train/data) and CLI `overrides` (None = unset).
    An error about a setting written in the spec points at its line (`spans`, usually
    `graph.setting_spans`)."""
    try:
        return _from_sections(sections, overrides or {})
    except MorphError as e:
        key = getattr(e, "setting", None)
        from_spec = (overrides or {}).get(key) is None  # not a command-line value
        if e.span is None and from_spec:
            e.span = (spans or {}).get(key)
        raise


def _from_sections(sections: dict, overrides: dict) -> TrainConfig:
    values: dict[str, Any] = {}
    for name, known in (("train", _TRAIN_KEYS), ("data", _DATA_KEYS)):
        for key, value in (sections.get(name) or {}).items():
            if name == "train" and key.startswith(OPT_PREFIX) and len(key) > len(OPT_PREFIX):
                if isinstance(value, (dict, set)) or value is None:
                    raise _bad(key, f"train setting '{key}' must be a number, string, true/false "
                                    f"or a list, got {value!r}")
                values.setdefault("optimizer_args", {})[key[len(OPT_PREFIX):]] = value
                continue
            if key not in known:
                raise _unknown(key, name, known)
            values[key] = _coerce(key, value)
    for key, value in overrides.items():
        if value is not None:
            values[key] = list(value) if key == "callbacks" else value
    env_nan = os.environ.get("MORPHDSL_INJECT_NAN_AT_STEP")
    if env_nan:
        values["inject_nan_at_step"] = int(env_nan)
    cfg = TrainConfig(**values)
    validate(cfg)
    return cfg


def from_dict(d: dict, overrides: dict | None = None) -> TrainConfig:
    """A TrainConfig saved by `to_dict` (resume), with overrides applied."""
    names = {f.name for f in fields(TrainConfig)}
    values = {k: v for k, v in d.items() if k in names}
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    cfg = TrainConfig(**values)
    validate(cfg)
    return cfg


MAX_LR = 10.0          # an AdamW step of lr > 10 is a typo (lr = 1e300 overflowed float32)
MAX_THREADS = 1024
MAX_SEED = 2**63 - 1   # torch.manual_seed's range
_FLOATS = ("flops", "lr", "min_lr", "weight_decay", "grad_clip", "rewarm_from", "temperature",
           "val_fraction")


def validate(cfg: TrainConfig) -> None:
    """Range checks of every setting (errors name the setting; from_sections adds its line)."""
    for key in _FLOATS:
        v = getattr(cfg, key)
        if v is not None and not math.isfinite(v):
            raise _bad(key, f"train setting '{key}' must be a finite number, got {v}")
    for key in ("steps", "batch", "ctx", "eval_every", "eval_batches", "threads"):
        if getattr(cfg, key) < 1:
            raise _bad(key, f"train setting '{key}' must be at least 1, got {getattr(cfg, key)}")
    for key in ("checkpoint_every", "vocab_size"):
        if getattr(cfg, key) is not None and getattr(cfg, key) < 1:
            raise _bad(key, f"setting '{key}' must be at least 1, got {getattr(cfg, key)}")
    if cfg.flops is not None and cfg.flops <= 0:
        raise _bad("flops", f"train setting 'flops' must be positive, got {cfg.flops}")
    for key in ("rewarm", "lr_width", "sample_tokens", "inject_nan_times", "weight_decay",
                "grad_clip", "temperature"):
        if (getattr(cfg, key) or 0) < 0:
            raise _bad(key, f"train setting '{key}' must be >= 0, got {getattr(cfg, key)}")
    if not 0.0 <= cfg.rewarm_from <= 1.0:
        raise _bad("rewarm_from",
                   f"train setting 'rewarm_from' must be in [0, 1], got {cfg.rewarm_from}")
    if not 0 < cfg.lr <= MAX_LR:
        raise _bad("lr", f"train setting 'lr' must be in (0, {MAX_LR:g}], got {cfg.lr:g}",
                   hint="AdamW learning rates are usually 1e-4 to 1e-2")
    if cfg.min_lr is not None and not 0 <= cfg.min_lr <= cfg.lr:
        raise _bad("min_lr", f"train setting 'min_lr' must be in [0, lr = {cfg.lr:g}], "
                             f"got {cfg.min_lr:g}")
    if cfg.weight_decay * cfg.lr > 1:
        raise _bad("weight_decay", f"train setting 'weight_decay' x lr must be at most 1 (AdamW "
                                   f"multiplies weights by 1 - lr x weight_decay), got "
                                   f"{cfg.weight_decay:g} x {cfg.lr:g}")
    if cfg.warmup < 0:
        raise _bad("warmup", f"train setting 'warmup' must be >= 0, got {cfg.warmup}")
    if not 0 <= cfg.seed <= MAX_SEED:
        raise _bad("seed", f"train setting 'seed' must be in [0, 2^63 - 1], got {cfg.seed}")
    if (cfg.vocab_size or 0) > 2**31 - 1:
        raise _bad("vocab_size", f"data setting 'vocab_size' must be below 2^31, got {cfg.vocab_size}")
    if cfg.threads > MAX_THREADS:
        raise _bad("threads", f"train setting 'threads' must be at most {MAX_THREADS}, "
                              f"got {cfg.threads}")
    if cfg.tokenizer.lower() not in TOKENIZERS and not cfg.tokenizer.startswith("hf:"):
        raise _bad("tokenizer", f"unknown tokenizer '{cfg.tokenizer}' in the data section",
                   hint='use one of: bytes, chars, bpe, or "hf:DIR" (a Hugging Face tokenizer.json)')
    _validate_engine(cfg)
    if not 0.0 < cfg.val_fraction < 1.0:
        raise _bad("val_fraction",
                   f"data setting 'val_fraction' must be in (0, 1), got {cfg.val_fraction}")


def _validate_engine(cfg: TrainConfig) -> None:
    """The optimizer, device, dtype and callbacks (names resolved; errors name the setting)."""
    from .devices import canonical_dtype, check_device_name
    from .optim import check_optimizer

    check_device_name(cfg.device)
    cfg.dtype = canonical_dtype(cfg.dtype)
    check_optimizer(cfg)
    if cfg.tensorboard:
        import importlib.util

        if importlib.util.find_spec("tensorboard") is None:
            raise _bad("tensorboard", "TensorBoard logging needs the tensorboard package",
                       hint="pip install tensorboard (or: pip install 'morphdsl[tensorboard]')")
    if cfg.callbacks:
        from .callbacks import resolve_callback

        for name in cfg.callbacks:
            resolve_callback(name)
