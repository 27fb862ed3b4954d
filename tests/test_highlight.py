"""Editors: the Pygments lexer and the VS Code TextMate grammar classify every spec.

The TextMate grammar is run by a small interpreter of the subset it uses (ordered patterns,
match + captures, includes, begin/end regions; per line, earliest match wins, the end pattern
wins ties), so neither Node.js nor the network is needed; it agrees with vscode-textmate on
every character of every spec.
"""
from __future__ import annotations

import json
import re
import sys
import tomllib
import types
from functools import lru_cache
from importlib.metadata import EntryPoint
from pathlib import Path

import pygments.plugin
import pytest
from pygments.lexers import find_lexer_class_for_filename, get_lexer_by_name
from pygments.token import (Comment, Keyword, Name, Number, Operator, Punctuation, String,
                            Whitespace)

from morphdsl import MorphError, parse
from morphdsl.ir.evaluate import FUNCS
from morphdsl.ops import user_ops
from morphdsl.rewrites import REWRITES
from morphdsl.syntax import highlight
from morphdsl.syntax.highlight import CONSTRUCTS, KEYWORDS, SCOPES, SECTIONS, MorphLexer, textmate
from morphdsl.train.growth import TRIGGERS

ROOT = Path(__file__).resolve().parents[1]
VSCODE = ROOT / "editors" / "vscode"
GRAMMAR = VSCODE / "syntaxes" / "morph.tmLanguage.json"
_FENCE = re.compile(r"```(?:morph|morph-error)\n(.*?)```", re.S)


def _sources():
    specs = sorted(ROOT.glob("specs/**/*.morph"))
    out = [(p.relative_to(ROOT).as_posix(), p.read_text()) for p in specs]
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        out += [(f"{doc.name}#{i}", b) for i, b in enumerate(_FENCE.findall(doc.read_text()))]
    return out


# what the specs do not show: imports, lists, escapes, numbered groups, calls in growth rules
EDGES = r'''use "blocks.morph"  # imports
act = gelu
on  = true
xs  = [1, 2 ** 3, -4 // 2 % 3, max(2, 3)]
block Res(w, h = [1, 2], k = (3)) {
  convex g {
    relu
  }
}
model(features = 8) {
  0 {
    e: Res(w = 8, h = none)
  }
  s: scale(by = "a\"b\u00e9\/")
  par: parallel(join = concat, split = 2) {
    l: linear(out = 4)
    r { identity }
  }
}
grow {
  every(10) -> prune_units(blocks.1.mlp, k = max(1, 2)),
    widen_mlp(mlp, by = 8)
  progress(0.5) -> widen_embed(factor = 2, noise = 1e-2)
}
'''
SOURCES = _sources() + [("edges", EDGES)]
IDS = [name for name, _ in SOURCES]


def lex(text):
    """[(offset, token, value)] with nothing stripped or added."""
    return list(MorphLexer(stripnl=False, ensurenl=False).get_tokens_unprocessed(text))


# ----------------------------------------------------------------------- TextMate interpreter
class TextMate:
    def __init__(self, grammar: dict):
        self.g, self.repo = grammar, grammar["repository"]
        self._flat: dict[int, list] = {}

    def rules(self, patterns: list) -> list:
        key = id(patterns)
        if key not in self._flat:
            out = []
            for p in patterns:
                if "include" in p:
                    ref = p["include"]
                    target = self.g if ref in ("$self", "$base") else self.repo[ref.lstrip("#")]
                    rule = "match" in target or "begin" in target
                    out += [target] if rule else self.rules(target["patterns"])
                else:
                    out.append(p)
            self._flat[key] = out
        return self._flat[key]

    def scopes(self, text: str) -> list[list[str]]:
        """The scope stack (outermost first) of every character of `text`."""
        stack = [(None, self.g["patterns"], [self.g["scopeName"]], None)]
        out = []
        for line in text.splitlines(keepends=True):
            line = line if line.endswith("\n") else line + "\n"
            sc: list = [None] * len(line)

            def fill(a, b, scopes):
                for i in range(a, b):
                    sc[i] = list(scopes)

            def capture(m, caps, base):
                for g, c in sorted((caps or {}).items(), key=lambda kv: int(kv[0])):
                    if m.group(int(g)) is not None:
                        for i in range(*m.span(int(g))):
                            sc[i] = base + [c["name"]]

            pos, steps = 0, 0
            while pos < len(line):
                steps += 1
                assert steps < 50 * len(line), f"no progress at {line!r}"
                end, patterns, scopes, region = stack[-1]
                best = None
                if end is not None and (m := _re(end).search(line, pos)):
                    best = (m.start(), None, m)
                for rule in self.rules(patterns):
                    m = _re(rule.get("match", rule.get("begin"))).search(line, pos)
                    if m and (best is None or m.start() < best[0]):
                        best = (m.start(), rule, m)
                if best is None:
                    fill(pos, len(line), scopes)
                    break
                start, rule, m = best
                fill(pos, start, scopes)
                if rule is None:                                  # the region ends
                    fill(start, m.end(), scopes)
                    capture(m, region.get("endCaptures"), scopes)
                    stack.pop()
                elif "match" in rule:
                    assert m.end() > start, f"empty match of {rule['match']!r}"
                    inner = scopes + [rule["name"]] if "name" in rule else scopes
                    fill(start, m.end(), inner)
                    capture(m, rule.get("captures"), inner)
                else:                                             # a region begins
                    inner = scopes + [rule["name"]] if "name" in rule else scopes
                    fill(start, m.end(), inner)
                    capture(m, rule.get("beginCaptures"), inner)
                    stack.append((rule["end"], rule.get("patterns", []), inner, rule))
                pos = m.end()
            out += sc
        return out[:len(text)]


@lru_cache(maxsize=None)
def _re(rx: str):
    return re.compile(rx)


def innermost(scopes: list[str]) -> str | None:
    """The scope that classifies a character: the last one that is not meta.* or the root."""
    named = [s for s in scopes[1:] if not s.startswith("meta.")]
    return named[-1] if named else None


@pytest.fixture(scope="module")
def tm():
    return TextMate(json.loads(GRAMMAR.read_text()))


# -------------------------------------------------------------------------------- Pygments
@pytest.mark.parametrize("name,text", SOURCES, ids=IDS)
def test_pygments_classifies_every_token(name, text):
    toks = lex(text)
    assert "".join(v for _, _, v in toks) == text  # round-trips exactly
    for off, tok, value in toks:
        if value.strip():
            # one of the classes the lexer means to emit: no Error, no bare Name or Text
            assert tok in SCOPES and tok is not highlight.Error, (name, off, tok, value)
        else:
            assert tok is Whitespace or tok in String, (name, off, tok, value)


def test_what_parses_lexes_without_errors():
    """Error tokens mark real mistakes: no file of the error corpus that parses has one, and the
    edge cases above are valid morph."""
    parsed = 0
    for path in sorted((ROOT / "tests" / "errors").glob("*.morph")):
        try:
            text = path.read_text()
            parse(text)
        except (MorphError, UnicodeDecodeError):
            continue
        parsed += 1
        assert not [v for _, t, v in lex(text) if t is highlight.Error], path.name
    assert parsed > 40
    parse(EDGES)


KEY_TOKENS = {  # file: [(«word» in its context, Pygments token, TextMate scope less ".morph")]
    "specs/gpt_tiny.morph": [
        ('«# gpt_tiny: a two-layer»', Comment.Single, "comment.line.number-sign"),
        ('«spec» gpt_tiny', Keyword.Declaration, "keyword.other.declaration"),
        ('spec «gpt_tiny»', Name.Namespace, "entity.name.namespace"),
        ('«vocab»  = 256', Name.Variable, "variable.parameter"),
        ('vocab  «=» 256', Operator, "keyword.operator.assignment"),
        ('vocab  = «256»', Number.Integer, "constant.numeric.integer"),
        ('«block» Block(d, heads)', Keyword.Declaration, "keyword.other.declaration"),
        ('block «Block»(d, heads)', Name.Class, "entity.name.type.block"),
        ('block Block(d, «heads»)', Name.Variable, "variable.parameter"),
        ('  «residual» {', Keyword.Pseudo, "keyword.other.construct"),
        ('  residual «{»', Punctuation, "punctuation.section.block.begin"),
        ('«attn»: attention(heads', Name.Label, "entity.name.label"),
        ('attn«:» attention(heads', Punctuation, "punctuation.separator.label"),
        ('attn: «attention»(heads', Name.Builtin, "support.function.builtin.op"),
        ('attention«(»heads = heads)', Punctuation, "punctuation.section.parens.begin"),
        ('attention(«heads» = heads)', Name.Attribute, "entity.other.attribute-name"),
        ('(heads = «heads»)', Name.Other, "variable.other"),
        ('mlp(hidden = 4 «*» d)', Operator, "keyword.operator.arithmetic"),
        ('    «Block»(d = d', Name.Class, "entity.name.type.block"),
        ('blocks: «repeat»(layers)', Keyword.Pseudo, "keyword.other.construct"),
        ('\n«model» {', Keyword.Reserved, "keyword.control.section"),
        ('\n«data» {', Keyword.Reserved, "keyword.control.section"),
        ('«source»    = "stories"', Name.Property, "variable.other.property"),
        ('source    = «"stories"»', String.Double, "string.quoted.double"),
        ('lr    = «3e-3»', Number.Float, "constant.numeric.float"),
    ],
    "specs/default.morph": [
        ('\n«grow» {', Keyword.Reserved, "keyword.control.section"),
        ('«step»(200) -> add_head', Name.Decorator, "support.function.trigger"),
        ('step(200) «->» add_head', Operator, "keyword.operator.arrow"),
        ('step(200) -> «add_head»', Name.Function.Magic, "support.function.rewrite"),
        ('add_head(«blocks».0.attn', Name.Other, "variable.other"),
        ('add_head(blocks«.»0.attn', Punctuation, "punctuation.accessor"),
        ('add_head(blocks.«0».attn', Number.Integer, "constant.numeric.integer"),
        ('widen_mlp(blocks.«*».mlp', Operator, "keyword.operator.wildcard"),
        ('widen_mlp(blocks.*.«mlp»', Name.Other, "variable.other"),
        ('«plateau»(patience = 2, min_delta', Name.Decorator, "support.function.trigger"),
        ('min_delta = «0.03»', Number.Float, "constant.numeric.float"),
    ],
    "specs/convex_lanes.morph": [
        ('«convex» mlp: hull', Keyword, "storage.modifier.convex"),
        ('convex «mlp»: hull', Name.Label, "entity.name.label"),
        ('pool = «max»)', Name.Other, "variable.other"),
    ],
    "specs/pyramid.morph": [
        ('p0: pyramid(«block» = PBlock', Name.Attribute, "entity.other.attribute-name"),
        ('p0: pyramid(block = «PBlock»', Name.Class, "entity.name.type.block"),
    ],
    "docs/language.md": [
        ('«use» "../specs/gpt_tiny.morph"', Keyword.Namespace, "keyword.control.import"),
        ('bias = «false»)', Keyword.Constant, "constant.language"),
        ('  «right» {', Name.Label, "entity.name.label"),
        ('hidden = (8 * d) «//» 3', Operator, "keyword.operator.arithmetic"),
        ('mlp: «mlpp»(hidden', Name.Function, "entity.name.function"),
    ],
}
KEY_CASES = [(path, *case) for path, cases in KEY_TOKENS.items() for case in cases]


def _at(path, marked):
    """The text (the fenced block, in a .md file) and the position of the «word» in it."""
    context = marked.replace("«", "").replace("»", "")
    text = (ROOT / path).read_text()
    if path.endswith(".md"):
        text = next(b for b in _FENCE.findall(text) if context in b)
    return text, text.index(context) + marked.index("«"), marked.split("«")[1].split("»")[0]


@pytest.mark.parametrize("path,marked,token,scope", KEY_CASES, ids=[c[1] for c in KEY_CASES])
def test_key_tokens(tm, path, marked, token, scope):
    text, pos, word = _at(path, marked)
    scope += ".morph"
    (tok,) = [(t, v) for off, t, v in lex(text) if off <= pos < off + len(v)]
    assert tok[1] == word or tok[0] is Comment.Single and tok[1].startswith(word), tok
    assert tok[0] is token, tok
    chars = tm.scopes(text)
    assert [innermost(s) for s in chars[pos:pos + len(word)]] == [scope] * len(word)
    if word.isidentifier() and text[pos + len(word)].isalnum():
        assert innermost(chars[pos + len(word)]) != scope  # the scope stops with the word


def test_string_escapes():
    toks = [(t, v) for _, t, v in lex('data { source = "a\\"b\\u00e9c\\q" }\n') if v.strip()]
    assert (String.Escape, '\\"') in toks and (String.Escape, "\\u00e9") in toks
    assert (highlight.Error, "\\q") in toks  # not a JSON escape: the parser rejects it too


def test_lowercase_block_is_a_block():
    toks = {v: t for _, t, v in lex("block enc(w) {\n  relu\n}\nmodel {\n  e: enc(w = 4)\n}\n")}
    assert toks["enc"] is Name.Class and toks["relu"] is Name.Builtin


# ----------------------------------------------------------------------------------- TextMate
@pytest.mark.parametrize("name,text", SOURCES, ids=IDS)
def test_textmate_scopes_every_character(tm, name, text):
    chars = tm.scopes(text)
    assert len(chars) == len(text)
    for (off, tok, value) in lex(text):
        for i in range(off, off + len(value)):
            if text[i].isspace():
                continue
            scope = innermost(chars[i])
            line = text.count("\n", 0, i) + 1
            assert scope and not scope.startswith("invalid"), (name, line, text[i], chars[i])
            # ... and agrees with the Pygments lexer about it
            assert scope.startswith(SCOPES[tok]), (name, line, value, tok, chars[i])


def _rules(x):
    """Every rule (dict) of a grammar, however deep."""
    if isinstance(x, dict):
        yield x
    for v in x.values() if isinstance(x, dict) else x if isinstance(x, list) else ():
        yield from _rules(v)


def _grammar_words(grammar, scope):
    """The names in the `\\b(?:a|b|c)\\b` rules of the grammar that give `scope`."""
    return {w for r in _rules(grammar) if r.get("name") == scope and "match" in r
            for w in re.match(r"\\b\(\?:([\w|]+)\)\\b", r["match"]).group(1).split("|")}


def test_word_lists_match_the_registries():
    g = json.loads(GRAMMAR.read_text())
    assert _grammar_words(g, SCOPES[Name.Builtin]) == set(user_ops())
    assert _grammar_words(g, SCOPES[Name.Function.Magic]) == set(REWRITES)
    assert _grammar_words(g, SCOPES[Name.Decorator]) == set(TRIGGERS)
    assert _grammar_words(g, SCOPES[Name.Builtin.Pseudo]) == set(FUNCS)
    assert _grammar_words(g, SCOPES[Keyword.Pseudo]) == set(CONSTRUCTS)
    # and both highlight every one of them where it is used
    ops = "\n".join(f"  x{i}: {op}\n  {op}(lanes = 1)" for i, op in enumerate(user_ops()))
    trig, rew = sorted(TRIGGERS), sorted(REWRITES)
    rules = "\n".join(f"  {trig[i % len(trig)]}(1) -> {rew[i % len(rew)]}(blocks.0, n = 1)"
                      for i in range(max(len(trig), len(rew))))
    calls = " + ".join(f"{f}(1)" for f in FUNCS)
    for text, words, token in [(f"model {{\n{ops}\n}}\n", user_ops(), Name.Builtin),
                               (f"grow {{\n{rules}\n}}\n", REWRITES, Name.Function.Magic),
                               (f"grow {{\n{rules}\n}}\n", TRIGGERS, Name.Decorator),
                               (f"x = {calls}\n", FUNCS, Name.Builtin.Pseudo)]:
        kinds, chars = {}, TextMate(g).scopes(text)
        for off, tok, v in lex(text):
            kinds.setdefault(v, set()).add((tok, innermost(chars[off])))
        for word in words:
            assert kinds[word] == {(token, SCOPES[token])}, (word, kinds[word])


def test_reserved_words_do_not_collide():
    reserved = set(KEYWORDS) | set(SECTIONS) | set(CONSTRUCTS)
    assert not reserved & set(user_ops()) and not set(TRIGGERS) & set(REWRITES)
    assert not reserved & (set(TRIGGERS) | set(REWRITES))


def test_committed_grammar_is_generated(capsys):
    assert highlight.main(["--textmate"]) == 0
    assert GRAMMAR.read_text() == capsys.readouterr().out, (
        "regenerate: python -m morphdsl.syntax.highlight --textmate > "
        "editors/vscode/syntaxes/morph.tmLanguage.json")
    assert json.loads(GRAMMAR.read_text()) == textmate()


def test_grammar_regexes_are_portable():
    """Python `re` compiles them, and they avoid what Oniguruma reads differently."""
    regexes = [r[k] for r in _rules(json.loads(GRAMMAR.read_text()))
               for k in ("match", "begin", "end") if k in r]
    assert len(regexes) > 40
    for rx in regexes:
        re.compile(rx)
        assert not re.search(r"\\[wWdDhHAzZG]|\(\?P|\(\?<[A-Za-z]|\(\?[imx]", rx), rx


def test_vscode_extension_manifest():
    pkg = json.loads((VSCODE / "package.json").read_text())
    (lang,) = pkg["contributes"]["languages"]
    (gram,) = pkg["contributes"]["grammars"]
    assert lang["id"] == gram["language"] == "morph" and lang["extensions"] == [".morph"]
    assert (VSCODE / gram["path"]).resolve() == GRAMMAR.resolve()
    assert gram["scopeName"] == json.loads(GRAMMAR.read_text())["scopeName"] == "source.morph"
    conf = json.loads((VSCODE / lang["configuration"]).read_text())
    assert conf["comments"]["lineComment"] == "#"
    assert {tuple(b) for b in conf["brackets"]} == {("{", "}"), ("[", "]"), ("(", ")")}
    assert {p["open"] for p in conf["autoClosingPairs"]} == {"{", "[", "(", '"'}


@pytest.fixture
def plugin(monkeypatch):
    """The entry point that pyproject.toml declares, as `pip install -e .` installs it (stale
    metadata, such as an old morphdsl.egg-info in the working directory, cannot hide it)."""
    eps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    ep = EntryPoint("morph", eps["pygments.lexers"]["morph"], "pygments.lexers")
    monkeypatch.setattr(pygments.plugin, "iter_entry_points",
                        lambda group: [ep] if group == ep.group else [])
    return ep


def test_pygments_finds_the_lexer(plugin):
    """Pygments finds MorphLexer by name and by file name, as pygmentize, Sphinx and nbconvert
    look lexers up."""
    assert plugin.load() is MorphLexer
    assert type(get_lexer_by_name("morph")) is MorphLexer
    assert find_lexer_class_for_filename("specs/gpt_tiny.morph") is MorphLexer


def test_editors_doc_examples_run(plugin, monkeypatch, capsys):
    """The Python examples of docs/editors.md run (IPython is stood in for)."""
    shown = []
    display = types.ModuleType("IPython.display")
    display.HTML, display.display = str, shown.append
    monkeypatch.setitem(sys.modules, "IPython", types.ModuleType("IPython"))
    monkeypatch.setitem(sys.modules, "IPython.display", display)
    monkeypatch.chdir(ROOT)
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "editors.md").read_text(), re.S)
    assert len(blocks) >= 4
    for block in blocks:
        exec(compile(block, "docs/editors.md", "exec"), {})
    assert '<span style="' in shown[0] and "attention" in shown[0]
    assert "attention" in capsys.readouterr().out
