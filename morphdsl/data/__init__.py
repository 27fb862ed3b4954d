"""Training data: an embedded story generator, text sources, tokenizers and token batches.

`load_texts` turns a source name or path into a list of documents, `make_tokenizer` builds a
byte, char or BPE tokenizer from them, and `TokenStream` serves reproducible (x, y) batches.
"""
from __future__ import annotations


from ..errors import MorphError  # noqa: E402


class DataError(MorphError):
    """A data source cannot be loaded. `str(err)` is one line; `hint` says what to do instead."""

    def __init__(self, message: str, hint: str | None = None, span=None):
        super().__init__(message, span, hint=hint)


from .batches import TokenStream  # noqa: E402  (submodules import DataError from here)
from .sources import cache_dir, load_texts  # noqa: E402
from .stories import generate_stories, write_jsonl  # noqa: E402
from .tokenizers import (  # noqa: E402
    BPETokenizer,
    ByteTokenizer,
    CharTokenizer,
    Tokenizer,
    load_tokenizer,
    make_tokenizer,
)

__all__ = [
    "BPETokenizer",
    "ByteTokenizer",
    "CharTokenizer",
    "DataError",
    "TokenStream",
    "Tokenizer",
    "cache_dir",
    "generate_stories",
    "load_texts",
    "load_tokenizer",
    "make_tokenizer",
    "write_jsonl",
]
