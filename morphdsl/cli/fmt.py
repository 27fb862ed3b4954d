"""`morphc fmt FILE... [--check] [--diff]`: rewrite specs in canonical form, comments kept."""
from __future__ import annotations

import difflib
import sys
from pathlib import Path

from ..errors import MorphError
from ..syntax.printer import format_text
from .common import UsageError, read_text


def register(sub):
    p = sub.add_parser("fmt", help="format specs in place (canonical layout, comments kept)",
                       description="Rewrite .morph files in canonical form: two-space indents, "
                                   "aligned `key = value` runs, minimal parentheses.")
    p.add_argument("files", nargs="+", metavar="FILE", help=".morph files")
    p.add_argument("--check", action="store_true",
                   help="change nothing; exit 1 and list the files that would change")
    p.add_argument("--diff", action="store_true", help="change nothing; print a unified diff")
    p.set_defaults(func=run)


def run(args) -> int:
    texts = {f: read_text(f) for f in args.files}  # all files exist before anything is written
    changed, failed = [], 0
    for f, text in texts.items():
        try:
            new = format_text(text, f)
        except MorphError as e:
            print(e.with_source(text).render(), file=sys.stderr)
            failed += 1
            continue
        if new == text:
            continue
        changed.append(f)
        if args.diff:
            sys.stdout.writelines(difflib.unified_diff(text.splitlines(True), new.splitlines(True),
                                                       f"{f} (original)", f"{f} (formatted)"))
        elif args.check:
            print(f"would reformat {f}")
        else:
            try:
                Path(f).write_text(new, encoding="utf-8")
            except OSError as e:
                raise UsageError(f"cannot write {f}: {e.strerror}") from None
            print(f"reformatted {f}")
    if not (args.check or args.diff):
        same = len(texts) - len(changed) - failed
        print(f"{len(changed)} file(s) reformatted, {same} unchanged", file=sys.stderr)
    if failed:
        return 1
    return 1 if (changed and (args.check or args.diff)) else 0
