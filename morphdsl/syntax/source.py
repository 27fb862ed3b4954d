"""Reading .morph source files safely: regular files only, bounded in size, UTF-8.

A spec may `use` any path, so a path can name a directory, a device (`/dev/zero` never ends), a
FIFO (blocks forever), a binary file or hold a NUL byte. `read_source` turns each of these into
a `SourceError` with a plain message; the caller attaches the location (the `use` line, or the
command line for the top-level file).
"""
from __future__ import annotations

import os
import stat

from ..errors import MorphError
from ..limits import MAX_SOURCE_BYTES


class SourceError(MorphError):
    """A spec file cannot be read (missing, not a regular file, too large, not UTF-8)."""


def read_source(path, shown: str | None = None, binary_ok: bool = True) -> str:
    """The text of the spec file at `path`, or a `SourceError` saying why not (naming the file
    as `shown`, e.g. as the user wrote it in a `use`). With `binary_ok=False` a file holding NUL
    bytes is refused as binary (for a `use`d file; in the file itself the parser points at it)."""
    p = os.fspath(path)
    name = shown if shown is not None else p
    if "\x00" in p:
        raise SourceError("the path holds a NUL byte", hint="write the file name without `\\u0000`")
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise SourceError(f"cannot find `{name}`") from None
    except OSError as e:
        raise SourceError(f"cannot open `{name}`: {e.strerror or e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise SourceError(f"`{name}` is a directory, not a .morph file",
                          hint="name a file inside it, e.g. `use \"dir/blocks.morph\"`")
    if not stat.S_ISREG(st.st_mode):
        raise SourceError(f"`{name}` is not a regular file (a device, FIFO or socket)",
                          hint="specs are read from ordinary files")
    if st.st_size > MAX_SOURCE_BYTES:
        raise SourceError(f"`{name}` is {st.st_size:,} bytes; a spec file is limited to "
                          f"{MAX_SOURCE_BYTES // 2**10} KiB", hint="is this really a .morph file?")
    try:
        # O_NONBLOCK: a path swapped for a FIFO after the stat must not block the read
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            data = f.read(MAX_SOURCE_BYTES + 1)
    except OSError as e:
        raise SourceError(f"cannot read `{name}`: {e.strerror or e}") from None
    if len(data) > MAX_SOURCE_BYTES:  # /proc files report size 0
        raise SourceError(f"`{name}` is larger than {MAX_SOURCE_BYTES // 2**10} KiB, the limit for a spec file",
                          hint="is this really a .morph file?")
    if not binary_ok and b"\x00" in data:
        raise SourceError(f"`{name}` is a binary file (it holds NUL bytes), not a .morph spec",
                          hint="`use` takes a .morph file of block definitions")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise SourceError(f"`{name}` is not UTF-8 text (byte 0x{data[e.start]:02x} on line {line})",
                          hint="save the file as UTF-8") from None
