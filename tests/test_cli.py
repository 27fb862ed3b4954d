"""morphc: exit codes, diagnostics, and the output of check/show/fmt/graph/ops."""
from __future__ import annotations

import json
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

import morphdsl
from morphdsl import cli
from morphdsl.cli import check as check_cmd
from morphdsl.errors import Span, SpecError
from morphdsl.syntax.printer import format_text

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "specs" / "gpt_tiny.morph")
MECH = str(ROOT / "specs" / "tinymech.morph")

BAD_SHAPE = """d = 64
model {
  tok: embed(vocab = 256, dim = d)
  attn: attention(heads = 3)
}
"""
BAD_SYNTAX = """model {
  tok: embed(vocab = 4 dim = 2)
}
"""
UGLY = """model {
    tok:embed(vocab=16,dim=8)   # tokens
  head : unembed( vocab = 16 )
}
"""


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ----------------------------------------------------------------------------- check
def test_check_ok(capsys):
    code, out, err = run(capsys, "check", TINY, MECH)
    assert code == 0, err
    n = morphdsl.build(TINY).n_params()  # and the memory `morphc train` needs (test_memory)
    assert f"{TINY}: ok ({n} params, ~36.9 MiB to train at batch 16 x 128)" in out
    assert re.search(r"tinymech\.morph: ok \(\d+ params, ~[\d.]+ MiB to train at batch 32 x 32\)",
                     out)


def test_check_forward(capsys):
    code, out, _ = run(capsys, "check", "--forward", MECH)
    assert code == 0 and "forward (2, 8, 64)" in out


@pytest.mark.parametrize("text,where,word", [(BAD_SHAPE, ":4:3: error:", "heads"),
                                             (BAD_SYNTAX, ":2:24: error:", "dim")])
def test_check_error_is_a_diagnostic(tmp_path, capsys, text, where, word):
    f = write(tmp_path, "bad.morph", text)
    code, out, err = run(capsys, "check", f)
    assert code == 1
    assert f"{f}{where}" in err and word in err
    assert "^" in err and "|" in err  # the source line and a caret under it
    assert "Traceback" not in err and "ok" not in out


def test_check_keeps_going_after_an_error(tmp_path, capsys):
    f = write(tmp_path, "bad.morph", BAD_SHAPE)
    code, out, err = run(capsys, "check", f, MECH)
    assert code == 1 and "tinymech.morph: ok" in out and "bad.morph:4:3" in err


def test_check_missing_file_is_usage_error(tmp_path, capsys):
    code, _, err = run(capsys, "check", str(tmp_path / "nope.morph"))
    assert code == 2 and "no such file" in err and "Traceback" not in err


def test_bad_flag_and_no_command_exit_2(capsys):
    assert run(capsys, "check", "--no-such-flag", TINY)[0] == 2
    assert run(capsys, )[0] == 2
    assert run(capsys, "--version")[0] == 0


# ----------------------------------------------------------------------------- top level
def test_internal_error_is_one_line_exit_3(monkeypatch, capsys):
    def boom(args):
        raise RuntimeError("kaput")

    monkeypatch.setattr(check_cmd, "run", boom)
    monkeypatch.delenv("MORPHDSL_DEBUG", raising=False)
    code, _, err = run(capsys, "check", TINY)
    assert code == 3 and "internal error" in err and "kaput" in err and "Traceback" not in err
    monkeypatch.setenv("MORPHDSL_DEBUG", "1")
    with pytest.raises(RuntimeError):
        cli.main(["check", TINY])


def test_escaping_morph_error_is_rendered(monkeypatch, capsys):
    def fail(args):
        raise SpecError("no good", Span(TINY, 6, 6, 6, 14), hint="try harder")

    monkeypatch.setattr(check_cmd, "run", fail)
    monkeypatch.delenv("MORPHDSL_DEBUG", raising=False)
    code, _, err = run(capsys, "check", TINY)
    assert code == 1
    assert f"{TINY}:6:6: error: no good" in err and "gpt_tiny" in err and "hint: try harder" in err


def test_missing_command_modules_are_skipped(monkeypatch):
    monkeypatch.setattr(cli, "COMMANDS", ["check", "no_such_command_yet"])
    names = [m.__name__.rsplit(".", 1)[1] for m in cli._command_modules()]
    assert names == ["check"]


# ----------------------------------------------------------------------------- show
def test_show_json(capsys):
    code, out, _ = run(capsys, "show", TINY, "--json")
    assert code == 0
    data = json.loads(out)
    g = morphdsl.build(TINY)
    assert data["params"] == g.n_params() == sum(n["params"] for n in data["nodes"])
    paths = [n["path"] for n in data["nodes"]]
    assert paths == g.order
    qkv = data["nodes"][paths.index("blocks.0.attn.qkv")]  # attention is shown by its parts
    assert qkv["op"] == "linear" and qkv["shape"] == ["B", "T", 192] and qkv["params"] > 0
    parts = [n for n in data["nodes"] if n["part_of"] == "blocks.0.attn"]
    assert [n["op"] for n in parts] == ["linear", "sdpa", "linear"]
    assert parts[-1]["shape"] == ["B", "T", 64]
    regions = {r["path"]: r for r in data["regions"]}
    assert regions["blocks"]["params"] == regions["blocks.0"]["params"] * 2
    assert regions["blocks.0"]["kind"] == "block Block"


def test_show_table(capsys):
    code, out, _ = run(capsys, "show", str(ROOT / "specs" / "convex_lanes.morph"))
    assert code == 0
    n = morphdsl.build(str(ROOT / "specs" / "convex_lanes.morph")).n_params()
    assert f"{n:,}" in out and "lanes.blocks.0.mlp" in out and "hull" in out
    assert "partition(4)" in out and "in 4 lanes" in out


# ----------------------------------------------------------------------------- fmt
def test_fmt_check_then_rewrite(tmp_path, capsys):
    f = write(tmp_path, "ugly.morph", UGLY)
    code, out, _ = run(capsys, "fmt", "--check", f)
    assert code == 1 and f"would reformat {f}" in out
    assert Path(f).read_text() == UGLY  # --check changes nothing
    code, _, _ = run(capsys, "fmt", f)
    assert code == 0
    new = Path(f).read_text()
    assert new == format_text(UGLY) and "# tokens" in new
    assert run(capsys, "fmt", "--check", f)[0] == 0


def test_fmt_syntax_error_leaves_file(tmp_path, capsys):
    f = write(tmp_path, "bad.morph", BAD_SYNTAX)
    code, _, err = run(capsys, "fmt", f)
    assert code == 1 and f"{f}:2:24" in err and Path(f).read_text() == BAD_SYNTAX


def test_fmt_diff(tmp_path, capsys):
    f = write(tmp_path, "ugly.morph", UGLY)
    code, out, _ = run(capsys, "fmt", "--diff", f)
    assert code == 1 and "+  tok: embed(vocab = 16, dim = 8)" in out


# ----------------------------------------------------------------------------- graph
def test_graph_dot(tmp_path, capsys):
    out = tmp_path / "g.dot"
    assert run(capsys, "graph", str(ROOT / "specs" / "pyramid.morph"), "-o", str(out))[0] == 0
    text = out.read_text()
    g = morphdsl.build(str(ROOT / "specs" / "pyramid.morph"))
    declared = set(re.findall(r"^\s*(n\d+) \[", text, re.M))
    edges = re.findall(r"^\s*(n\d+) -> (n\d+)", text, re.M)
    assert text.startswith("digraph") and text.count("{") == text.count("}")
    assert len(declared) == g.dag.number_of_nodes() and len(edges) == g.dag.number_of_edges()
    assert all(a in declared and b in declared for a, b in edges)
    assert 'label="p0.stem.attn (attention)"' in text and "shape=circle" in text  # a cluster of its parts
    assert 'label="p0.stem.attn.sdpa\\nsdpa"' in text
    assert "cluster_" in text and "p0 (pyramid)" in text


def test_graph_mermaid(tmp_path, capsys):
    out = tmp_path / "g.mmd"
    assert run(capsys, "graph", TINY, "-o", str(out))[0] == 0
    text = out.read_text()
    g = morphdsl.build(TINY)
    assert text.startswith("flowchart")
    assert len(re.findall(r"-->", text)) == g.dag.number_of_edges()
    assert '["blocks.0.attn (attention)"]' in text and '["blocks.0.attn.qkv<br/>linear"]' in text and '(("+"))' in text
    lines = [ln.strip() for ln in text.splitlines()]
    assert sum(ln.startswith("subgraph ") for ln in lines) == lines.count("end") > 0


def test_graph_unknown_extension(tmp_path, capsys):
    code, _, err = run(capsys, "graph", TINY, "-o", str(tmp_path / "g.png"))
    assert code == 2 and ".dot" in err


# ----------------------------------------------------------------------------- ops
def test_ops(capsys):
    code, out, _ = run(capsys, "ops")
    assert code == 0
    for name in ("attention", "hull", "mix", "layernorm", "embed"):
        assert name in out
    code, out, _ = run(capsys, "ops", "hull")
    assert code == 0 and "petals" in out and "max | logsumexp | mean | sum" in out
    assert "convexity (default arguments): convex" in out
    code, _, err = run(capsys, "ops", "hul")
    assert code == 1 and "did you mean `hull`" in err


def test_ops_markdown_lists_every_user_op(capsys):
    from morphdsl.ops import user_ops

    code, out, _ = run(capsys, "ops", "--markdown")
    assert code == 0
    rows = [ln for ln in out.splitlines() if ln.startswith("| `")]
    assert [r.split("`")[1] for r in rows] == user_ops()


# ----------------------------------------------------------------------------- entry points
def test_console_script():
    exe = Path(sys.executable).parent / "morphc"
    if not exe.exists():
        pytest.skip("morphc not installed: pip install -e .")
    r = subprocess.run([str(exe), "check", MECH], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "tinymech.morph: ok" in r.stdout


def test_python_dash_m(monkeypatch, capsys):
    """`python -m morphdsl` runs morphc (in-process, to avoid another torch import)."""
    monkeypatch.setattr(sys, "argv", ["morphdsl", "check", "nope.morph"])
    with pytest.raises(SystemExit) as e:
        runpy.run_module("morphdsl", run_name="__main__")
    assert e.value.code == 2 and "no such file" in capsys.readouterr().err
