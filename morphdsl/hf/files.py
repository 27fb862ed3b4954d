"""Reading and writing Hugging Face model directories: config.json and safetensors weights
(one file, or shards with `model.safetensors.index.json`). Every failure is an `HFError` that
names the file (and the config field), never a traceback; nothing is unpickled."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import MorphError

CONFIG, WEIGHTS, INDEX = "config.json", "model.safetensors", "model.safetensors.index.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "vocab.json", "merges.txt", "tokenizer.model")


class HFError(MorphError):
    """A Hugging Face directory, file or config field morphdsl cannot use."""

    def __init__(self, path, what: str, hint: str | None = None):
        super().__init__(f"{path}: {what}", hint=hint)
        self.path = Path(path)


def _why(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0][:160] if lines else type(e).__name__


def model_dir(path) -> Path:
    d = Path(path)
    if not d.is_dir():
        raise HFError(d, "not a directory" if d.exists() else "no such directory",
                      hint="give a directory written by `save_pretrained` (config.json + model.safetensors)")
    if not (d / CONFIG).is_file():
        raise HFError(d / CONFIG, "missing", hint="a Hugging Face model directory has a config.json")
    return d


def read_config(d: Path) -> dict:
    p = d / CONFIG
    try:
        cfg = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise HFError(p, f"not valid JSON ({_why(e)})") from None
    if not isinstance(cfg, dict):
        raise HFError(p, "not a JSON object")
    return cfg


def field(cfg: dict, path: Path, name: str, kind=int, default=..., check=None):
    """A config field of type `kind` (a located error when missing or wrong)."""
    if name not in cfg or cfg[name] is None:
        if default is ...:
            raise HFError(path, f"field `{name}` is missing")
        return default
    v = cfg[name]
    ok = isinstance(v, kind) and not (kind in (int, float) and isinstance(v, bool))
    if kind is float and isinstance(v, int) and not isinstance(v, bool):
        v, ok = float(v), True
    if not ok or (check is not None and not check(v)):
        raise HFError(path, f"field `{name}` = {json.dumps(v)} is not a valid "
                            f"{'positive ' if kind is int else ''}{kind.__name__}")
    return v


def weight_files(d: Path, weights=None) -> list[Path]:
    if weights is not None:
        p = Path(weights)
        if not p.is_file():
            raise HFError(p, "no such weights file")
        return [p]
    if (d / WEIGHTS).is_file():
        return [d / WEIGHTS]
    if (d / INDEX).is_file():
        try:
            index = json.loads((d / INDEX).read_text(encoding="utf-8"))
            names = sorted(set(index["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise HFError(d / INDEX, f"not a safetensors index ({_why(e)})") from None
        return [d / n for n in names]
    bins = [p.name for p in d.glob("*.bin")]
    raise HFError(d / WEIGHTS, "missing", hint=(f"{bins[0]} is a pickle file, which morphdsl never "
                                                "loads; save the model with safe_serialization=True")
                  if bins else "save the model with `save_pretrained` (safetensors)")


def read_weights(files: list[Path]) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    out = {}
    for p in files:
        if not p.is_file():
            raise HFError(p, "missing (named by the safetensors index)")
        try:
            out.update(load_file(str(p)))
        except Exception as e:  # noqa: BLE001 - a truncated or damaged file
            raise HFError(p, f"not a readable safetensors file ({_why(e)})") from None
    return out


def write_weights(tensors: dict, path: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(path),
              metadata={"format": "pt"})


def write_config(cfg: dict, d: Path) -> None:
    (d / CONFIG).write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n", encoding="utf-8")
