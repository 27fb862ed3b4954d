"""Devices and precision: `device = auto|cpu|cuda[:N]|mps`, `dtype = float32|bfloat16|float16`.

Weights, gradients and optimizer state stay float32; `bfloat16` / `float16` run the forward
under `torch.autocast` (on cuda, mps and, for bfloat16, the CPU), and `float16` scales the
loss with a `GradScaler` so small gradients do not underflow. `float32` adds nothing to a
step (no autocast context), so a default CPU run is bit-identical to one without this module.
"""
from __future__ import annotations

import contextlib
import re

import torch

from ..errors import MorphError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_ALIASES = {"fp32": "float32", "float": "float32", "bf16": "bfloat16", "fp16": "float16",
            "half": "float16"}
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _error(setting: str, message: str, hint: str | None = None) -> MorphError:
    e = MorphError(message, hint=hint)
    e.setting = setting
    return e


def canonical_dtype(name: str) -> str:
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in DTYPES:
        raise _error("dtype", f"unknown dtype '{name}'",
                     hint="use float32 (default), bfloat16 (autocast) or float16 (autocast with "
                          "a GradScaler)")
    return key


def check_device_name(name: str) -> None:
    if not _DEVICE.match(str(name).strip().lower()):
        raise _error("device", f"unknown device '{name}'", hint="use auto, cpu, cuda, cuda:N or mps")


def _cuda_missing(name: str) -> MorphError:
    build = torch.__version__
    why = ("this torch is a CPU-only build" if torch.version.cuda is None
           else "no CUDA GPU is visible (check nvidia-smi and CUDA_VISIBLE_DEVICES)")
    return _error("device", f"device '{name}' was asked for, but CUDA is not available "
                            f"({why}; torch {build})",
                  hint="use --device cpu (or auto); for a GPU install a CUDA build of torch "
                       "(PyTorch's install instructions give the command for your CUDA version)")


def resolve_device(name: str = "auto", local_rank: int | None = None) -> torch.device:
    """The torch.device for a `device` setting; `local_rank` picks the GPU of a torchrun
    process (cuda -> cuda:LOCAL_RANK). An unavailable device is a MorphError with a hint."""
    check_device_name(name)
    key = str(name).strip().lower()
    if key == "auto":
        key = "cuda" if torch.cuda.is_available() else "cpu"
    if key.startswith("cuda"):
        if not torch.cuda.is_available():
            raise _cuda_missing(name)
        index = int(key.split(":")[1]) if ":" in key else (local_rank or 0)
        if index >= torch.cuda.device_count():
            raise _error("device", f"device cuda:{index} was asked for, but only "
                                   f"{torch.cuda.device_count()} GPU(s) are visible",
                         hint="use cuda:0 .. cuda:N-1, or as many torchrun processes per node "
                              "as GPUs")
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    if key == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise _error("device", "device 'mps' was asked for, but Metal (MPS) is not available",
                         hint="use --device cpu (or auto); MPS needs Apple silicon and macOS 12.3+")
        return torch.device("mps")
    return torch.device("cpu")


class Precision:
    """Autocast and loss scaling for one device and dtype."""

    def __init__(self, device: torch.device, dtype: str = "float32"):
        self.device, self.name = device, canonical_dtype(dtype)
        self.dtype = DTYPES[self.name]
        self.enabled = self.dtype != torch.float32
        self.scaler = (torch.amp.GradScaler(device.type) if self.dtype == torch.float16
                       else None)

    def autocast(self):
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def unscale(self, opt) -> None:
        """Before gradient clipping: gradients back to their true scale."""
        if self.scaler is not None:
            self.scaler.unscale_(opt)

    def step(self, opt) -> None:
        if self.scaler is None:
            opt.step()
        else:
            self.scaler.step(opt)  # skipped when the scaled gradients overflowed
            self.scaler.update()

    def state_dict(self) -> dict | None:
        return None if self.scaler is None else {
            k: v for k, v in self.scaler.state_dict().items() if isinstance(v, (int, float))}

    def load_state_dict(self, d: dict | None) -> None:
        if self.scaler is not None and d:
            self.scaler.load_state_dict(d)


def describe(device: torch.device, precision: Precision) -> str:
    name = str(device)
    if device.type == "cuda":
        name += f" ({torch.cuda.get_device_name(device)})"
    return f"{name}, {precision.name}" + (" autocast" if precision.enabled else "")
