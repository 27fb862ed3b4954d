"""The optimizer factory (AdamW by default; any torch.optim optimizer or an importable class by
name), name-keyed optimizer state (so it survives growth and reload) and the LR schedule.

`train { optimizer = "sgd", optimizer_momentum = 0.9 }`: the name is a short name from
`OPTIMIZERS`, a torch.optim class name in any case (`"rmsprop"`), `"torch.optim.NAdam"`, or
`"pkg.module:Class"` / `"pkg.module.Class"` (any `torch.optim.Optimizer` subclass taking
`(params, lr=..., ...)`); every `optimizer_ARG = value` setting is passed as `ARG = value`.
"""
from __future__ import annotations

import difflib
import importlib
import inspect
import math

import torch
from torch import nn

from ..errors import MorphError
from ..growth.control import set_lr  # noqa: F401  (lr x each group's lr_scale; used by the engine)
from .config import TrainConfig

# short name -> (importable class, default arguments); the table a new built-in goes into
OPTIMIZERS: dict[str, tuple[str, dict]] = {
    "adamw": ("torch.optim:AdamW", {"betas": (0.9, 0.95), "foreach": False}),  # nanoGPT's
    "visco_elastic": ("morphdsl.continual.visco:ViscoElastic", {}),  # docs/continual.md
}
_RESERVED = {"params": "it is the model's parameters", "lr": "set the train setting 'lr'",
             "weight_decay": "set the train setting 'weight_decay' (matrices only)"}


def _error(setting: str, message: str, hint: str | None = None) -> MorphError:
    e = MorphError(message, hint=hint)
    e.setting = setting  # config.from_sections points the error at this setting's line
    return e


def _torch_names() -> dict[str, str]:
    return {n.lower(): n for n, c in vars(torch.optim).items()
            if isinstance(c, type) and issubclass(c, torch.optim.Optimizer)
            and c is not torch.optim.Optimizer}


def resolve_optimizer(name: str) -> tuple[type, dict]:
    """(optimizer class, its default arguments) for a name; MorphError with a hint if unknown."""
    key = str(name).strip()
    if key.lower() in OPTIMIZERS:
        path, defaults = OPTIMIZERS[key.lower()]
    elif key.lower() in _torch_names():
        path, defaults = f"torch.optim:{_torch_names()[key.lower()]}", {}
    elif ":" in key or "." in key:
        path, defaults = key, {}
    else:
        names = sorted(set(OPTIMIZERS) | set(_torch_names()))
        close = difflib.get_close_matches(key.lower(), names, n=1)
        raise _error("optimizer", f"unknown optimizer '{key}'",
                     hint=(f"did you mean '{close[0]}'? " if close else "")
                     + f"use one of: {', '.join(names)}; 'torch.optim.NAME'; or an importable "
                       f"class 'package.module:Class'")
    mod, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(mod), attr) if mod and attr else None
    except Exception as e:  # noqa: BLE001 - ImportError or the module's own import error
        raise _error("optimizer", f"cannot import optimizer '{key}' "
                                  f"({type(e).__name__}: {str(e).splitlines()[0][:120]})",
                     hint="give 'package.module:Class' of an installed, importable module") from None
    if cls is None:
        raise _error("optimizer", f"cannot import optimizer '{key}': module '{mod}' has no "
                                  f"'{attr}'", hint="give 'package.module:Class'")
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise _error("optimizer", f"'{key}' is not a torch.optim.Optimizer subclass",
                     hint="an optimizer class takes (params, lr=..., ...) and subclasses "
                          "torch.optim.Optimizer")
    return cls, dict(defaults)


def _accepts(cls: type) -> tuple[set[str], bool]:
    sig = inspect.signature(cls.__init__).parameters
    names = {n for n in sig if n != "self"}
    return names, any(p.kind is p.VAR_KEYWORD for p in sig.values())


def optimizer_kwargs(cfg: TrainConfig, lr: float | None = None) -> tuple[type, dict, bool]:
    """(class, keyword arguments, whether it takes weight_decay per group), checked."""
    cls, kwargs = resolve_optimizer(cfg.optimizer)
    names, var_kw = _accepts(cls)
    for k in cfg.optimizer_args:
        if k in _RESERVED:
            raise _error(f"optimizer_{k}", f"'optimizer_{k}' cannot be set", hint=_RESERVED[k])
        if k not in names and not var_kw:
            close = difflib.get_close_matches(k, sorted(names - {"params"}), n=1)
            raise _error(f"optimizer_{k}", f"optimizer {cls.__name__} has no argument '{k}'",
                         hint=(f"did you mean 'optimizer_{close[0]}'? " if close else "")
                         + f"{cls.__name__} takes: {', '.join(sorted(names - {'params'}))}")
    kwargs.update({k: tuple(v) if isinstance(v, list) else v
                   for k, v in cfg.optimizer_args.items()})
    if "lr" in names or var_kw:
        kwargs["lr"] = cfg.lr if lr is None else lr
    return cls, kwargs, "weight_decay" in names or var_kw


def check_optimizer(cfg: TrainConfig) -> None:
    """Resolve the optimizer and build it once over a dummy parameter (bad values are errors
    here, at the setting, not mid-run)."""
    cls, kwargs, _ = optimizer_kwargs(cfg)
    try:
        cls([nn.Parameter(torch.zeros(2, 2))], **kwargs)
    except Exception as e:  # noqa: BLE001 - the optimizer's own argument checks
        bad = next((f"optimizer_{k}" for k in cfg.optimizer_args if k in str(e)), "optimizer")
        raise _error(bad, f"optimizer {cls.__name__} refused its arguments: "
                          f"{str(e).splitlines()[0][:160] if str(e) else type(e).__name__}",
                     hint="check the optimizer_* settings against its documentation") from None


def make_optimizer(model: nn.Module, cfg: TrainConfig, lr: float | None = None
                   ) -> torch.optim.Optimizer:
    """The configured optimizer; weight decay on matrices only (nanoGPT) when it takes one.
    Parameters in `named_parameters` order."""
    cls, kwargs, takes_wd = optimizer_kwargs(cfg, lr)
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    if takes_wd:
        groups = [{"params": decay, "weight_decay": cfg.weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]
    else:
        groups = [{"params": decay + no_decay}]
    return cls(groups, **kwargs)


def state_by_name(model: nn.Module, opt: torch.optim.Optimizer) -> dict[str, dict]:
    """The optimizer's per-parameter state keyed by parameter name."""
    out = {}
    for name, p in model.named_parameters():
        st = opt.state.get(p)
        if st:
            out[name] = {k: (v.detach().clone() if torch.is_tensor(v) else v) for k, v in st.items()}
    return out


def load_state_by_name(model: nn.Module, opt: torch.optim.Optimizer,
                       states: dict[str, dict]) -> None:
    """Put name-keyed state (from `state_by_name`) back into `opt` for `model`'s parameters.
    State tensors shaped like the parameter go to its device (a checkpoint loads on any
    device); scalar tensors (AdamW's `step`) stay where the optimizer keeps them (the CPU)."""
    for name, p in model.named_parameters():
        st = states.get(name)
        if not st:
            continue
        for k, v in st.items():
            if torch.is_tensor(v) and v.dim() > 0 and v.shape != p.shape:
                raise RuntimeError(f"optimizer state {name}.{k} has shape {tuple(v.shape)}, "
                                   f"parameter has {tuple(p.shape)}")
        opt.state[p] = {k: (v.to(p.device, copy=True) if torch.is_tensor(v) and v.dim() > 0
                            else v.clone() if torch.is_tensor(v) else v) for k, v in st.items()}


def lr_at(step: int, cfg: TrainConfig, scale: float = 1.0, progress: float | None = None
          ) -> float:
    """Linear warm-up to `lr` over `warmup` steps, then cosine to `min_lr` at the end of the run.
    `step` is global (0-based). The cosine follows `progress` in [0, 1] when given (a FLOPs
    budget: the fraction of it spent), else the steps after warm-up."""
    lo = cfg.min_lr_value
    if cfg.warmup and step < cfg.warmup:
        lr = cfg.lr * (step + 1) / cfg.warmup
    else:
        if progress is None:
            progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        t = min(1.0, max(0.0, progress))
        lr = lo + 0.5 * (1 + math.cos(math.pi * t)) * (cfg.lr - lo)
    return lr * scale


