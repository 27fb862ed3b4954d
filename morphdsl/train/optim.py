"""AdamW with name-keyed state (so it survives growth and reload) and the LR schedule."""
from __future__ import annotations

import math

import torch
from torch import nn

from .config import TrainConfig


def make_optimizer(model: nn.Module, cfg: TrainConfig, lr: float | None = None
                   ) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices only (nanoGPT). Parameters in `named_parameters` order."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr if lr is None else lr, betas=(0.9, 0.95),
                             foreach=False)


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
    """Put name-keyed state (from `state_by_name`) back into `opt` for `model`'s parameters."""
    for name, p in model.named_parameters():
        st = states.get(name)
        if not st:
            continue
        for k, v in st.items():
            if torch.is_tensor(v) and v.dim() > 0 and v.shape != p.shape:
                raise RuntimeError(f"optimizer state {name}.{k} has shape {tuple(v.shape)}, "
                                   f"parameter has {tuple(p.shape)}")
        opt.state[p] = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in st.items()}


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


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for g in opt.param_groups:
        g["lr"] = lr
