"""Starting weights: `morphc train --init W` / `train_spec(..., init=W)` and `morphc export`.

W is a safetensors file in morphdsl's names (as `morphc import`, `morphc grow --save` and
checkpoints write them) or a Hugging Face model directory (imported on the fly). The tensors
must be exactly the spec's: a missing, extra or differently shaped tensor is an error naming
the file and the tensor."""
from __future__ import annotations

from pathlib import Path

from ..errors import MorphError


class InitError(MorphError):
    def __init__(self, path, what: str, hint: str | None = None):
        super().__init__(f"{path}: {what}", hint=hint)
        self.path = Path(path)


def read_init(path) -> dict:
    p = Path(path)
    if p.is_dir():
        from ..hf import import_dir

        return import_dir(p)[1]
    from ..hf.files import read_weights

    if not p.is_file():
        raise InitError(p, "no such weights file or model directory",
                        hint="give a .safetensors file (morphdsl names) or a Hugging Face directory")
    return read_weights([p])


def load_init(module, path) -> None:
    """Load the weights at `path` into `module` (strictly), or raise an InitError."""
    state = read_init(path)
    want = module.state_dict()
    missing = [k for k in want if k not in state]
    extra = [k for k in state if k not in want]
    bad = [k for k in want if k in state and tuple(state[k].shape) != tuple(want[k].shape)]
    if missing or extra or bad:
        k = (missing or extra or bad)[0]
        what = ("has no tensor" if missing else "has a tensor the spec lacks:" if extra else
                f"has shape {tuple(state[k].shape)} for")
        raise InitError(path, f"{what} `{k}`" + (f" (the spec says {tuple(want[k].shape)})" if bad else ""),
                        hint="the weights do not belong to this spec")
    module.load_state_dict({k: v.to(want[k].dtype) for k, v in state.items()}, strict=True)
