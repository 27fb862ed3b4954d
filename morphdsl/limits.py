"""The compiler's limits, in one place (docs/language.md, "Limits", lists them for users).

Every limit exists so that no spec, however odd, can hang the compiler, exhaust the stack or
allocate without bound; each one is enforced where the offending text is known and reported as
a located `MorphError` with a hint. They sit far above any real model.
"""
from __future__ import annotations

MAX_SOURCE_BYTES = 256 * 2**10  # one .morph file (and each it `use`s): parses in < 5 s at worst
MAX_NESTING = 64               # nested `{ }` bodies, also through block instances and pyramids
MAX_EXPR_DEPTH = 64            # nested operators, brackets and calls in one expression
MAX_INT = 2**63 - 1            # integers are 64-bit: a literal or result beyond +-MAX_INT is an error
MAX_NODES = 20_000             # ops and regions in the elaborated model (repeats, pyramids expanded)
MAX_PYRAMID_LEVELS = 16        # `pyramid(levels = k)`: 2^k leaves
MAX_TENSOR = 2**33             # numbers in one parameter or buffer tensor (32 GiB of float32)
MAX_PARAMS = 10**12            # numbers in all parameters of a model


def fmt_count(n: int) -> str:
    """A count for a message: `21,608,400,000` below 10^15, else `~2^70` (safe for any int)."""
    return f"{n:,}" if abs(n) < 10**15 else f"~2^{abs(n).bit_length() - 1}"
