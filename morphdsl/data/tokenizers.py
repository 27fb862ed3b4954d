"""Tokenizers: bytes (256 ids), characters (built from the data) and byte-level BPE.

All three save to and load from one JSON file; `load_tokenizer` tells the kinds apart.
BPE files are plain Hugging Face `tokenizer.json` files, so other tools can read them too.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from . import DataError

PathLike = str | os.PathLike
UNK = "<unk>"
EOS = "<|endoftext|>"
_KINDS = {"byte": "byte", "bytes": "byte", "char": "char", "chars": "char",
          "character": "char", "bpe": "bpe"}


@runtime_checkable
class Tokenizer(Protocol):
    """What training and sampling need from a tokenizer."""

    kind: str
    eos_id: int | None  # appended after every document when not None

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def save(self, path: PathLike) -> None: ...


def _write_json(path: PathLike, data: dict[str, Any]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


class ByteTokenizer:
    """UTF-8 bytes; decoding replaces invalid byte sequences with U+FFFD."""

    kind = "byte"
    eos_id = None

    @property
    def vocab_size(self) -> int:
        return 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def encode_array(self, text: str) -> np.ndarray:
        """Fast path used by `TokenStream`: the ids as a NumPy array."""
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(int(i) for i in ids).decode("utf-8", errors="replace")

    def save(self, path: PathLike) -> None:
        _write_json(path, {"kind": self.kind, "version": 1})

    @classmethod
    def load(cls, path: PathLike) -> ByteTokenizer:
        _read_json(path, "byte")
        return cls()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ByteTokenizer)


class CharTokenizer:
    """One id per character, sorted by code point; id 0 is `<unk>` (decoded as U+FFFD)."""

    kind = "char"
    eos_id = None

    def __init__(self, chars: Iterable[str]):
        self.chars: list[str] = sorted(set(chars))
        if any(len(c) != 1 for c in self.chars):
            raise ValueError("CharTokenizer vocabulary entries must be single characters")
        self._ids = {c: i + 1 for i, c in enumerate(self.chars)}
        self._itos = ["\ufffd", *self.chars]
        self._codes = np.array([ord(c) for c in self.chars], dtype=np.int64)

    @classmethod
    def from_texts(cls, texts: Iterable[str], vocab_size: int | None = None) -> CharTokenizer:
        """The characters of `texts`; with `vocab_size`, only the most frequent ones."""
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(text)
        if vocab_size is not None:
            if vocab_size < 2:
                raise DataError(f"char vocab_size must be at least 2, got {vocab_size}")
            ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            return cls(c for c, _ in ranked[: vocab_size - 1])
        return cls(counts)

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + 1

    def encode(self, text: str) -> list[int]:
        get = self._ids.get
        return [get(c, 0) for c in text]

    def encode_array(self, text: str) -> np.ndarray:
        """Fast path used by `TokenStream`: vectorized lookup by code point."""
        try:
            codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4").astype(np.int64)
        except UnicodeEncodeError:  # lone surrogates
            return np.array(self.encode(text), dtype=np.int64)
        if len(self._codes) == 0:
            return np.zeros(len(codes), dtype=np.int64)
        pos = np.searchsorted(self._codes, codes).clip(max=len(self._codes) - 1)
        return np.where(self._codes[pos] == codes, pos + 1, 0)

    def decode(self, ids: Sequence[int]) -> str:
        itos, n = self._itos, len(self._itos)
        return "".join(itos[i] if 0 <= i < n else "\ufffd" for i in map(int, ids))

    def save(self, path: PathLike) -> None:
        chars = "".join(self.chars)  # one string: compact, and exact through JSON escapes
        _write_json(path, {"kind": self.kind, "version": 1, "unk": UNK, "chars": chars})

    @classmethod
    def load(cls, path: PathLike) -> CharTokenizer:
        return cls(list(_read_json(path, "char")["chars"]))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharTokenizer) and self.chars == other.chars


class BPETokenizer:
    """Byte-level BPE (Hugging Face `tokenizers`) with `<|endoftext|>` as id 0."""

    kind = "bpe"

    def __init__(self, hf_tokenizer: Any):
        self.hf = hf_tokenizer
        self.eos_id: int | None = hf_tokenizer.token_to_id(EOS)

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 512) -> BPETokenizer:
        """Train on `texts`; the vocabulary may come out smaller on a tiny corpus."""
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        if vocab_size < 257:
            raise DataError(f"bpe vocab_size must be at least 257 (256 bytes + {EOS}), "
                            f"got {vocab_size}")
        hf = HFTokenizer(models.BPE())
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                      show_progress=False)
        hf.train_from_iterator(texts, trainer=trainer)
        return cls(hf)

    @property
    def vocab_size(self) -> int:
        return int(self.hf.get_vocab_size())

    def encode(self, text: str) -> list[int]:
        return list(self.hf.encode(text).ids)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Encode many documents in parallel (used by `TokenStream`)."""
        return [list(e.ids) for e in self.hf.encode_batch(list(texts))]

    def decode(self, ids: Sequence[int]) -> str:
        return self.hf.decode([int(i) for i in ids], skip_special_tokens=False)

    def save(self, path: PathLike) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.hf.save(str(path))

    @classmethod
    def load(cls, path: PathLike) -> BPETokenizer:
        from tokenizers import Tokenizer as HFTokenizer

        return cls(HFTokenizer.from_file(str(path)))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BPETokenizer) and self.hf.to_str() == other.hf.to_str()


def _read_json(path: PathLike, kind: str | None = None) -> Any:
    """The parsed tokenizer file, checked to be of `kind` when given."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read tokenizer file {str(path)!r}: {exc}") from None
    if kind is not None and (not isinstance(data, dict) or data.get("kind") != kind):
        raise DataError(f"{str(path)!r} is not a {kind} tokenizer file")
    return data


def make_tokenizer(kind: str, texts: Iterable[str] = (), vocab_size: int | None = None
                   ) -> ByteTokenizer | CharTokenizer | BPETokenizer:
    """A tokenizer of `kind` ("byte", "char" or "bpe") built from `texts`, or "hf:DIR": the
    Hugging Face tokenizer in DIR/tokenizer.json (as `morphc import` writes it into a spec)."""
    if kind.startswith("hf:"):
        return hf_tokenizer(kind[3:])
    canonical = _KINDS.get(kind.lower())
    if canonical == "byte":
        if vocab_size not in (None, 256):
            raise DataError(f"byte tokenizer has vocab_size 256, got {vocab_size}")
        return ByteTokenizer()
    if canonical == "char":
        return CharTokenizer.from_texts(texts, vocab_size)
    if canonical == "bpe":
        return BPETokenizer.train(texts, 512 if vocab_size is None else vocab_size)
    raise DataError(f"unknown tokenizer kind {kind!r}", hint="use one of: byte, char, bpe")


def hf_tokenizer(directory: PathLike) -> BPETokenizer:
    """The tokenizer.json of a Hugging Face model directory (loaded with `tokenizers`)."""
    path = Path(directory) / "tokenizer.json"
    if not path.is_file():
        raise DataError(f"no tokenizer.json in {str(directory)!r}",
                        hint="`tokenizer = \"hf:DIR\"` names a Hugging Face model directory with a "
                             "tokenizer.json (a fast tokenizer)")
    try:
        return BPETokenizer.load(path)
    except Exception as exc:  # noqa: BLE001 - the tokenizers library's parse errors
        raise DataError(f"cannot read {str(path)!r}: {str(exc).splitlines()[0][:160]}") from None


def load_tokenizer(path: PathLike) -> ByteTokenizer | CharTokenizer | BPETokenizer:
    """Load any tokenizer saved by `save` (or a Hugging Face byte-level BPE tokenizer.json)."""
    data = _read_json(path)
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind == "byte":
        return ByteTokenizer.load(path)
    if kind == "char":
        return CharTokenizer.load(path)
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        return BPETokenizer.load(path)
    raise DataError(f"{str(path)!r} is not a tokenizer file (no 'kind' or 'model' field)")
