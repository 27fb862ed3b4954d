"""`morphc`, the command-line compiler: `morphc check|show|fmt|graph|ops|... ARGS`.

Commands live in one module each under `morphdsl/cli/`. A module is picked up when its name is
in `COMMANDS` and it defines `register(subparsers)`, which adds a subparser and sets
`func=run` with `run(args) -> int`. Modules that do not exist (yet) are skipped, so a new
command needs no edit here if its name is already listed.

Exit codes: 0 ok; 1 a spec error (rendered like a compiler diagnostic) or a failed check;
2 a usage error (bad flag, missing file); 3 an internal error (set MORPHDSL_DEBUG=1 for the
traceback); 130 interrupted.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from ..errors import MorphError
from .common import UsageError

COMMANDS = ["check", "show", "fmt", "graph", "ops", "grow", "verify", "train", "sample", "eval",
            "bench", "hf_import", "hf_export", "garden", "evolve"]


def _command_modules():
    """The command modules that exist, in COMMANDS order."""
    mods = []
    for name in COMMANDS:
        full = f"{__name__}.{name}"
        try:
            mods.append(importlib.import_module(full))
        except ImportError as e:
            if e.name != full:  # the module exists but one of *its* imports failed: a real bug
                raise
    return mods


def make_parser() -> argparse.ArgumentParser:
    from .. import __version__

    p = argparse.ArgumentParser(
        prog="morphc", description="Compile, inspect and grow .morph network specs.",
        epilog="Run `morphc COMMAND -h` for a command's options.")
    p.add_argument("--version", action="version", version=f"morphc {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _command_modules():
        mod.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run morphc with `argv` (default: sys.argv[1:]) and return the exit code."""
    debug = os.environ.get("MORPHDSL_DEBUG", "") not in ("", "0")
    try:
        parser = make_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as e:  # argparse exits 2 on bad flags, 0 on --help
            return int(e.code or 0)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return 2
        return int(args.func(args) or 0)
    except MorphError as e:
        if debug:
            raise
        print(e.render(), file=sys.stderr)
        return 1
    except UsageError as e:
        print(f"morphc: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("morphc: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `morphc show x | head`
        return 0
    except Exception as e:  # noqa: BLE001 - the last line of defence: no traceback for users
        if debug:
            raise
        if type(e).__name__ == "DataError":  # morphdsl.data's user error (message + hint)
            print(f"morphc: error: {e}", file=sys.stderr)
            if getattr(e, "hint", None):
                print(f"  hint: {e.hint}", file=sys.stderr)
            return 1
        print(f"morphc: internal error: {type(e).__name__}: {e} "
              "(set MORPHDSL_DEBUG=1 for the traceback)", file=sys.stderr)
        return 3


__all__ = ["main", "make_parser", "COMMANDS"]
