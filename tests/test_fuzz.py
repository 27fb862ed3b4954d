"""Adversarial input: nothing escapes as a non-MorphError, nothing hangs, nothing blows memory.

1. Each input class of the hardening issue (huge numbers, deep nesting, recursive blocks, odd
   `use` targets, huge repeats/pyramids/widths) gives a located MorphError, fast, in-process
   and through `morphc check` (exit 1, never 3).
2. A seeded run of the benchmark fuzzer (benchmarks/fuzz.py; its long run is >= 10,000 cases)
   in worker processes with a timeout and an address-space cap: 0 defects.
3. Hypothesis: specs assembled from the language's pieces with adversarial numbers, nesting
   and blocks compile or raise a located MorphError, each within a time limit.
4. Every limit in morphdsl/limits.py is documented in docs/language.md.
"""
from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import morphdsl
from benchmarks import fuzz
from morphdsl import limits
from morphdsl.cli import main as morphc

ROOT = Path(__file__).resolve().parents[1]
HEAD = "spec e\n\nd = 32\n"
TOK = "  tok: embed(vocab = 16, dim = d)\n"


@contextlib.contextmanager
def time_limit(seconds: int):
    """Fail (instead of hanging) when the block runs longer than `seconds`."""
    def boom(*_):
        raise TimeoutError(f"took longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def model(body: str, top: str = "") -> str:
    return HEAD + top + "\nmodel {\n" + TOK + body + "\n}\n"


CASES = {
    "pow_unused": (model("", "x = 10 ** 100000000\n"), "is too large"),
    "pow_in_train": (model("") + "train {\n  steps = 10 ** 100000000\n}\n", "is too large"),
    "tower": (model("", "heads = 2 ** 2 ** 2 ** 2 ** 2\n"), "is too large"),
    "literal": (model("", "x = " + "9" * 5000 + "\n"), "is too large"),
    "float_literal": (model("", "x = 1e400\n"), "is too large"),
    "float_overflow": (model("", "x = 1e300 * 1e300\n"), "not a finite number"),
    "complex": (model("", "x = (-2) ** 0.5\n"), "not a real number"),
    "pyramid_levels": ("block P(w) {\n  ln: layernorm\n}\n"
                       + model("  p: pyramid(block = P, width = d, levels = 99999999999)"), "levels"),
    "pyramid_65536": ("block P(w) {\n  ln: layernorm\n}\n"
                      + model("  p: pyramid(block = P, width = d, levels = 65536)"), "levels"),
    "repeat": (model("  b: repeat(1000000000000) {\n    ln: layernorm\n  }"), "passes the limit"),
    "layers": (model("  b: repeat(layers) {\n    ln: layernorm\n    m: mlp(hidden = d)\n  }",
                     "layers = 65536\n"), "ops and regions"),
    "self_block": ("block R(d) {\n  x: R(d = d)\n}\n" + model("  r: R(d = d)"), "contains itself"),
    "mutual_blocks": ("block A(d) {\n  b: B(d = d)\n}\nblock B(d) {\n  a: A(d = d)\n}\n"
                      + model("  a: A(d = d)"), "contains itself"),
    "pyramid_self": ("block R(w) {\n  p: pyramid(block = R, width = w, levels = 1)\n}\n"
                     + model("  r: R(w = d)"), "contains itself"),
    "residual_500": (model("  " + "residual { " * 500 + "ln: layernorm" + " }" * 500), "nested more than"),
    "neg_chain": (model("", "x = " + "-" * 5000 + "8\n"), "nested more than"),
    "sum_chain": (model("", "x = " + " + ".join(["1"] * 3000) + "\n"), "nested more than"),
    "tensor": (model("  m: mlp(hidden = 4 * d)", "").replace("d = 32", "d = 2 ** 40"), "would need a"),
    "params": (model("  b: repeat(300) {\n    residual { m: mlp(hidden = d) }\n  }")
               .replace("d = 32", "d = 65536"), "parameters"),
    "use_dir": ('use "."\n' + model(""), "is a directory"),
    "use_binary": ('use "blob.bin"\n' + model(""), "binary file"),
    "use_nul": ('use "a\\u0000b.morph"\n' + model(""), "NUL byte"),
    "use_devzero": ('use "/dev/zero"\n' + model(""), "not a regular file"),
    "use_fifo": ('use "fifo.morph"\n' + model(""), "not a regular file"),
    "use_latin1": ('use "latin1.morph"\n' + model(""), "not UTF-8"),
    "use_too_large": ('use "toolarge.morph"\n' + model(""), "KiB"),
    "use_long_name": ('use "' + "x" * 5000 + '"\n' + model(""), "cannot"),
    "use_bad_escape": ('use "a\\qb"\n' + model(""), "bad escape"),
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return fuzz.make_workdir(tmp_path_factory.mktemp("fuzz"))


@pytest.mark.parametrize("name", sorted(CASES))
def test_adversarial_case_is_a_located_error(name, workdir):
    text, words = CASES[name]
    f = workdir / f"{name}.morph"
    f.write_text(text, encoding="utf-8")
    t0 = time.monotonic()
    with time_limit(10):
        with pytest.raises(morphdsl.MorphError) as ei:
            morphdsl.compile(str(f))
    assert time.monotonic() - t0 < 5
    err = ei.value
    assert err.filename and err.line and err.column, str(err)
    if words:
        assert words in err.message, err.message
    assert err.hint or err.message  # renders without raising, names the place
    assert err.render().startswith(f"{err.filename}:{err.line}:{err.column}: error:")


@pytest.mark.parametrize("name", ["pow_unused", "tower", "residual_500", "self_block", "use_dir",
                                  "use_nul", "layers", "params"])
def test_adversarial_case_through_morphc_check(name, workdir, capsys):
    f = workdir / f"cli_{name}.morph"
    f.write_text(CASES[name][0], encoding="utf-8")
    with time_limit(10):
        rc = morphc(["check", str(f)])
    err = capsys.readouterr().err
    assert rc == 1, err
    assert re.match(rf"{re.escape(str(f))}:\d+:\d+: error: ", err), err
    assert "internal error" not in err and "Traceback" not in err


def test_deepest_allowed_nesting_still_builds_compiles_emits_and_grows():
    n = limits.MAX_NESTING - 2  # `model { }` and `repeat { }` are two of the levels
    body = "residual { " * n + "ln: layernorm\n mlp: mlp(hidden = 64)" + " }" * n
    text = model(f"  blocks: repeat(2) {{\n    {body}\n  }}").replace("dim = d", "dim = 32")
    g = morphdsl.build(text)
    morphdsl.compile(g)
    assert morphdsl.build(morphdsl.emit(g)).n_params() == g.n_params()
    grown = morphdsl.grow(g, "widen_mlp", by=8)
    assert grown.graph.n_params() > g.n_params()
    with pytest.raises(morphdsl.MorphError, match="nested more than"):
        morphdsl.build(text.replace("residual { ", "residual { residual { ", 1).replace(" }", " } }", 1))


def test_redundant_brackets_do_not_count_as_nesting():
    with time_limit(10):
        g = morphdsl.build(model("", "x = " + "(" * 5000 + "8" + ")" * 5000 + "\n"))
    assert g.params["x"] == 8


def test_integers_at_the_limit_are_fine_and_one_past_is_not():
    ok = morphdsl.build(model("", f"x = {limits.MAX_INT}\ny = -x\nz = 2 ** 62 + (2 ** 62 - 1)\n"))
    assert ok.params["x"] == 2**63 - 1 and ok.params["z"] == 2**63 - 1
    for expr in (f"{limits.MAX_INT + 1}", "2 ** 63", "x * 2", "-x - 2"):
        with pytest.raises(morphdsl.MorphError, match="too large"):
            morphdsl.build(model("", f"x = {limits.MAX_INT}\ny = {expr}\n"))


# ----------------------------------------------------------------------------- 2. seeded fuzzer
def test_seeded_fuzzer_finds_no_defects(workdir):
    # 15 s, not the benchmark's 5 s: under pytest-xdist this shares 2 cores with other tests
    res = fuzz.fuzz(240, seed=11, timeout=15.0, workers=2, mem_gib=4.0, workdir=workdir)
    c = res["counts"]
    assert sum(c.values()) == 240
    assert c["located"] > 50 and c["ok"] > 10  # it exercises both paths
    bad = res["defects"]
    assert not bad, "\n\n".join(f"{d['kind']}: {d['detail']}\n{d['text'][:800]}" for d in bad[:3])


def test_fuzzer_detects_what_it_claims_to(monkeypatch):
    """The classifier itself: an escaped exception, a hang and an unlocated error are counted."""
    kind, detail = fuzz.classify("model {\n  x: relu\n}\n", "f.morph")
    assert kind in ("ok", "located")
    monkeypatch.setattr(morphdsl, "build", lambda m: (_ for _ in ()).throw(KeyError("boom")))
    assert fuzz.classify("model { }", "f.morph")[0] == "exception"
    monkeypatch.setattr(morphdsl, "build", lambda m: (_ for _ in ()).throw(morphdsl.MorphError("x")))
    assert fuzz.classify("model { }", "f.morph")[0] == "unlocated"


def sleepy_classify(text, filename):
    """A worker function that hangs on the text "HANG" (a stand-in for a compiler hang)."""
    if text == "HANG":
        time.sleep(60)
    return fuzz.classify(text, filename)


def test_fuzzer_pool_kills_a_hanging_case(tmp_path):
    results = []
    pool = fuzz.Pool(1, fuzz.make_workdir(tmp_path), 4.0, run=sleepy_classify)
    try:
        pool.run([(0, "x", 'x = 1\nmodel { }\n'), (1, "x", "HANG")], 3.0,
                 lambda job, res, secs: results.append((job[0], res[0])))
    finally:
        pool.close()
    assert dict(results)[0] in ("ok", "located")
    assert dict(results)[1] == "hang"
    assert len(results) == 2


# ----------------------------------------------------------------------------- 3. hypothesis
nums = st.one_of(st.integers(-3, 300).map(str),
                 st.sampled_from(fuzz.NUMBERS + ["d", "2 * d", "d // 3", "heads", "d / 2"]))
leaf_ops = st.sampled_from(["ln: layernorm", "m: mlp(hidden = {n})", "a: attention(heads = {n})",
                            "l: linear(out = {n})", "r: relu", "s: softplus", "x: identity",
                            "B(d = {n})", "R(d = {n})", "p: pyramid(block = B, width = {n}, levels = {n})"])


@st.composite
def bodies(draw, depth=0):
    items = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["leaf", "leaf", "nest", "repeat", "partition"]) if depth < 4 else
                    st.just("leaf"))
        if kind == "leaf":
            items.append(draw(leaf_ops).replace("{n}", draw(nums)))
        elif kind == "nest":
            k = draw(st.sampled_from([1, 2, 70, 300]))
            items.append("residual { " * k + draw(bodies(depth + 1)) + " }" * k)
        elif kind == "repeat":
            items.append(f"rep{depth}: repeat({draw(nums)}) {{ {draw(bodies(depth + 1))} }}")
        else:
            items.append(f"part{depth}: partition(lanes = {draw(nums)}) {{ {draw(bodies(depth + 1))} }}")
    return "\n".join(items)


@settings(max_examples=120, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(d=nums, heads=nums, body=bodies(), rec=st.booleans(), use=st.sampled_from([None, *fuzz.ODD_USES]))
def test_generated_specs_compile_or_fail_located(d, heads, body, rec, use, tmp_path_factory):
    wd = fuzz.make_workdir(tmp_path_factory.getbasetemp() / "hyp")
    blocks = "block B(d) {\n  residual { ln: layernorm\n m: mlp(hidden = 2 * d) }\n}\n"
    blocks += "block R(d) {\n  x: R(d = d)\n}\n" if rec else "block R(d) {\n  x: linear(out = d)\n}\n"
    text = (f"use {use}\n" if use else "") + f"spec h\nd = {d}\nheads = {heads}\n" + blocks
    text += f"model {{\n  tok: embed(vocab = 16, dim = 32)\n{body}\n  head: unembed(vocab = 16)\n}}\n"
    f = wd / "case.morph"
    with time_limit(10):
        kind, detail = fuzz.classify(text.replace('"SELF"', '"case.morph"'), str(f))
    assert kind in ("ok", "located"), f"{kind}: {detail}\n{text[:1500]}"


# ----------------------------------------------------------------------------- 4. docs
def test_every_limit_is_documented():
    doc = (ROOT / "docs" / "language.md").read_text()
    section = doc[doc.index("## Limits"):]
    for name in ("MAX_SOURCE_BYTES", "MAX_NESTING", "MAX_EXPR_DEPTH", "MAX_INT", "MAX_NODES",
                 "MAX_PYRAMID_LEVELS", "MAX_TENSOR", "MAX_PARAMS"):
        assert f"`{name}`" in section, f"{name} is not in docs/language.md's Limits section"
        value = getattr(limits, name)
        shown = {limits.MAX_SOURCE_BYTES: "256 KiB", limits.MAX_INT: "2**63 - 1",
                 limits.MAX_TENSOR: "2**33"}.get(value, f"{value:,}")
        assert shown in section, f"{name} = {shown} is not in the Limits section"


@pytest.fixture(autouse=True)
def _threads():
    os.environ.setdefault("OMP_NUM_THREADS", "1")
