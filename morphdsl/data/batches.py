"""Token streams: documents encoded into one long tensor, split, and served as batches.

Training batches are random contiguous windows drawn with a caller-owned
`torch.Generator`, so a run is reproducible and resumable from the generator's state.
Evaluation batches are fixed, non-overlapping windows spread evenly over a split.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from . import DataError
from .tokenizers import Tokenizer

_SPLITS = {"train": "train", "validation": "validation", "val": "validation"}


def encode_documents(texts: Sequence[str], tokenizer: Tokenizer,
                     separator: str = "\n\n") -> torch.Tensor:
    """All documents as one 1-D `torch.long` tensor.

    With an end-of-text id (BPE) every document is followed by it; otherwise the documents
    are joined with `separator` text before encoding.
    """
    eos = getattr(tokenizer, "eos_id", None)
    if eos is None:
        text = separator.join(texts)
        encode_array = getattr(tokenizer, "encode_array", None)
        ids = encode_array(text) if encode_array else np.asarray(tokenizer.encode(text))
        return torch.from_numpy(np.asarray(ids, dtype=np.int64).copy())
    encode_batch = getattr(tokenizer, "encode_batch", None)
    encoded = encode_batch(list(texts)) if encode_batch else [tokenizer.encode(t) for t in texts]
    flat: list[int] = []
    for ids in encoded:
        flat.extend(ids)
        flat.append(eos)
    return torch.tensor(flat, dtype=torch.long)


class TokenStream:
    """Train and validation token tensors with batch samplers.

    The validation split is the last `val_fraction` of the tokens (deterministic, no shuffle).
    """

    def __init__(self, texts: Sequence[str], tokenizer: Tokenizer, val_fraction: float = 0.1,
                 separator: str = "\n\n"):
        self.tokenizer = tokenizer
        self._set(encode_documents(texts, tokenizer, separator), val_fraction)

    @classmethod
    def from_ids(cls, ids: torch.Tensor | Sequence[int], tokenizer: Tokenizer,
                 val_fraction: float = 0.1) -> TokenStream:
        """A stream over already encoded ids (e.g. a cached tensor)."""
        stream = cls.__new__(cls)
        stream.tokenizer = tokenizer
        stream._set(torch.as_tensor(ids, dtype=torch.long).flatten(), val_fraction)
        return stream

    def _set(self, ids: torch.Tensor, val_fraction: float) -> None:
        if not 0.0 <= val_fraction < 1.0:
            raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}")
        n_val = int(len(ids) * val_fraction)
        self.val_fraction = val_fraction
        self.train = ids[: len(ids) - n_val].contiguous()
        self.validation = ids[len(ids) - n_val:].contiguous()

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def split(self, name: str) -> torch.Tensor:
        """The 1-D token tensor of split `name` ("train", "validation" or "val")."""
        if name not in _SPLITS:
            raise DataError(f"unknown split {name!r}; use 'train' or 'validation'")
        return getattr(self, _SPLITS[name])

    def n_tokens(self, split: str) -> int:
        return int(self.split(split).numel())

    def _checked(self, split: str, ctx: int, batch_size: int) -> torch.Tensor:
        data = self.split(split)
        if ctx < 1 or batch_size < 1:
            raise DataError(f"ctx and batch_size must be positive, got {ctx} and {batch_size}")
        if data.numel() < ctx + 1:
            raise DataError(f"the {_SPLITS[split]} split has {data.numel()} tokens, fewer than "
                            f"ctx + 1 = {ctx + 1}",
                            hint="use more data, a shorter context or another val_fraction")
        return data

    def get_batch(self, split: str, batch_size: int, ctx: int, generator: torch.Generator,
                  device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Random windows `(x, y)`, each `(batch_size, ctx)`, with `y` = `x` shifted by one.

        Offsets come from `generator` only, so saving its `get_state()` makes runs resumable.
        """
        data = self._checked(split, ctx, batch_size)
        starts = torch.randint(0, data.numel() - ctx, (batch_size,), generator=generator)
        x = data.unfold(0, ctx, 1)[starts]
        y = data[1:].unfold(0, ctx, 1)[starts]
        if device is not None:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        return x, y

    def n_eval_windows(self, split: str, ctx: int) -> int:
        """How many non-overlapping windows of `ctx` tokens (plus a target) fit in `split`."""
        return max(0, (self.n_tokens(split) - 1) // ctx)

    def iter_eval_batches(self, split: str, batch_size: int, ctx: int,
                          max_batches: int | None = None,
                          device: torch.device | str | None = None
                          ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Deterministic non-overlapping windows `(x, y)`; the last batch may be smaller.

        With `max_batches`, the windows are spread evenly over the whole split.
        """
        data = self._checked(split, ctx, batch_size)
        total = self.n_eval_windows(split, ctx)
        want = total if max_batches is None else min(total, max_batches * batch_size)
        windows = torch.arange(want) * total // want  # strictly increasing, since want <= total
        xs, ys = data.unfold(0, ctx, ctx), data[1:].unfold(0, ctx, ctx)
        for i in range(0, want, batch_size):
            rows = windows[i:i + batch_size]
            x, y = xs[rows], ys[rows]
            if device is not None:
                x, y = x.to(device), y.to(device)
            yield x, y

    def __repr__(self) -> str:
        return (f"TokenStream({self.tokenizer.kind}, vocab={self.vocab_size}, "
                f"train={self.n_tokens('train')}, validation={self.n_tokens('validation')})")
