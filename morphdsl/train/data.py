"""Data for a training run: texts, tokenizer and token stream, checked against the model."""
from __future__ import annotations

from ..errors import MorphError


def model_limits(graph) -> tuple[int | None, int | None]:
    """(vocab, ctx) of a model: the unembed's vocab and the pos_embed's context, if present."""
    heads = graph.op_nodes("unembed")
    return (heads[-1][1].resolved["vocab"] if heads else None), graph.ctx


def data_error(e) -> MorphError:
    """A data.DataError as a MorphError (one line plus hint, no traceback)."""
    return MorphError(getattr(e, "message", str(e)), hint=getattr(e, "hint", None))


def prepare_data(cfg, graph, tokenizer=None):
    """(tokenizer, TokenStream) for `cfg`; raises MorphError if they don't fit the model."""
    from ..data import DataError, TokenStream, load_texts, make_tokenizer

    vocab, ctx = model_limits(graph)
    if ctx is not None and cfg.ctx > ctx:
        raise MorphError(f"train ctx = {cfg.ctx} is longer than the model's pos_embed "
                         f"ctx = {ctx}", hint=f"set ctx = {ctx} (or less) in the train section")
    try:
        texts = load_texts(cfg.source, max_docs=cfg.max_docs)
        if tokenizer is None:
            tokenizer = make_tokenizer(cfg.tokenizer, texts, cfg.vocab_size)
        stream = TokenStream(texts, tokenizer, cfg.val_fraction)
    except DataError as e:
        raise data_error(e) from None
    if vocab is not None and tokenizer.vocab_size > vocab:
        raise MorphError(f"the {cfg.tokenizer} tokenizer has {tokenizer.vocab_size} tokens but the "
                         f"model's unembed vocab is {vocab}",
                         hint=f"set vocab = {tokenizer.vocab_size} (or more) in the spec, or "
                              f"vocab_size = {vocab} in the data section")
    for split in ("train", "val"):
        if stream.n_tokens(split) < cfg.ctx + 1:
            raise MorphError(f"the {split} split has only {stream.n_tokens(split)} tokens, "
                             f"fewer than ctx + 1 = {cfg.ctx + 1}",
                             hint="use more data, a shorter ctx or a larger val_fraction")
    return tokenizer, stream
