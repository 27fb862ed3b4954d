"""Syntax highlighting for `.morph`: a Pygments lexer and the VS Code (TextMate) grammar.

    pygmentize -l morph specs/gpt_tiny.morph             # via the `pygments.lexers` entry point
    python -m morphdsl.syntax.highlight --textmate > editors/vscode/syntaxes/morph.tmLanguage.json

Both classify the same way (SCOPES maps each Pygments token to its TextMate scope) and take the
names of ops, growth rewrites, triggers and expression functions from the registries, so a new
op is highlighted without touching this file; the TextMate JSON is generated from the same lists
(tests/test_highlight.py checks that the committed file is up to date).
"""
from __future__ import annotations

import json
import re
import sys
from functools import lru_cache

from pygments.lexer import RegexLexer, bygroups, include
from pygments.token import (Comment, Error, Keyword, Name, Number, Operator, Punctuation,
                            String, Whitespace)

NAME = r"[A-Za-z_][A-Za-z0-9_]*"
KEYWORDS = ("use", "spec", "block", "convex")
SECTIONS = ("model", "data", "train", "grow", "evolve")
CONSTRUCTS = ("residual", "parallel", "partition", "repeat", "pyramid", "seed")
FLOAT = r"[0-9]+\.[0-9]+(?:[eE][-+]?[0-9]+)?|[0-9]+[eE][-+]?[0-9]+"
ESCAPE = r'\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})'  # JSON escapes (strings are decoded by json.loads)
_BLOCKDEF = re.compile(rf"\bblock\s+({NAME})")

# Pygments token -> TextMate scope (a prefix for operators and punctuation)
SCOPES = {
    Comment.Single: "comment.line.number-sign.morph",
    String.Double: "string.quoted.double.morph",
    String.Escape: "constant.character.escape.morph",
    Number.Float: "constant.numeric.float.morph",
    Number.Integer: "constant.numeric.integer.morph",
    Keyword.Constant: "constant.language.morph",
    Keyword.Namespace: "keyword.control.import.morph",        # use
    Keyword.Declaration: "keyword.other.declaration.morph",   # spec, block
    Keyword.Reserved: "keyword.control.section.morph",        # model data train grow { }
    Keyword.Pseudo: "keyword.other.construct.morph",          # residual parallel ...
    Keyword: "storage.modifier.convex.morph",                 # convex
    Name.Namespace: "entity.name.namespace.morph",            # spec NAME
    Name.Class: "entity.name.type.block.morph",               # block names
    Name.Builtin: "support.function.builtin.op.morph",        # ops
    Name.Builtin.Pseudo: "support.function.builtin.math.morph",  # min(...), sqrt(...)
    Name.Decorator: "support.function.trigger.morph",         # step(...) -> ...
    Name.Function.Magic: "support.function.rewrite.morph",    # ... -> add_head(...)
    Name.Function: "entity.name.function.morph",              # an unknown op or call
    Name.Label: "entity.name.label.morph",                    # `attn:` and groups `name {`
    Name.Attribute: "entity.other.attribute-name.morph",      # key = in an argument list
    Name.Property: "variable.other.property.morph",           # key = in data / train
    Name.Variable: "variable.parameter.morph",                # parameter definitions
    Name.Other: "variable.other.morph",                       # names used as values, paths
    Operator: "keyword.operator",
    Punctuation: "punctuation",
    Error: "invalid.illegal.morph",
}


@lru_cache(maxsize=None)
def words() -> dict[str, frozenset]:
    """The names the highlighters know, read from the registries (imported on first use)."""
    from morphdsl.ir.evaluate import CONSTS, FUNCS  # absolute: `pygmentize -x` loads this file
    from morphdsl.ops import user_ops
    from morphdsl.rewrites import REWRITES
    from morphdsl.train.growth import TRIGGERS
    return {"op": frozenset(user_ops()), "rewrite": frozenset(REWRITES),
            "trigger": frozenset(TRIGGERS), "function": frozenset(FUNCS),
            "constant": frozenset(CONSTS)}


def _nothing(lexer, m):  # a zero-width match that only changes state
    return iter(())


def _name(kind: str):
    def callback(lexer, m):
        yield m.start(), lexer.classify(m.group(), kind), m.group()
    return callback


def _key(token):  # `key =`
    return rf"({NAME})([ \t]*)(=)", bygroups(token, Whitespace, Operator)


def _braces(*rules):  # a `{ }` body: its own rules, then expressions
    return [include("space"), (r"\}", Punctuation, "#pop"), (r"\{", Punctuation, "#push"), *rules,
            include("expr")]


def _parens(*rules):
    return [include("space"), (r"\)", Punctuation, "#pop"), *rules, include("expr")]


def _head(then):  # after a section keyword: optional arguments, then its body
    return [include("space"), (r"\(", Punctuation, "args"), (r"\{", Punctuation, ("#pop", then))]


class MorphLexer(RegexLexer):
    """Lexer for morphdsl `.morph` network specs."""

    name = "morph"
    aliases = ["morph"]
    filenames = ["*.morph"]
    mimetypes = ["text/x-morph"]

    def get_tokens_unprocessed(self, text, stack=("root",)):
        self.blocks = set(_BLOCKDEF.findall(text))  # lower-case block names are blocks too
        self.words = words()
        yield from super().get_tokens_unprocessed(text, stack)

    def classify(self, word: str, kind: str):
        """The token of a name, by the names the registries know and where it stands."""
        w = self.words
        if kind == "grow":
            return (Name.Decorator if word in w["trigger"] else
                    Name.Function.Magic if word in w["rewrite"] else Name.Function)
        if kind in ("value", "target") and word in w["constant"]:
            return Keyword.Constant
        if kind == "target":
            return Name.Other
        if kind == "call" and word in w["function"]:
            return Name.Builtin.Pseudo
        if word in self.blocks or word[0].isupper():
            return Name.Class
        if word in w["op"]:
            return Name.Builtin
        return {"value": Name.Other, "group": Name.Label}.get(kind, Name.Function)

    tokens = {
        "space": [
            (r"\s+", Whitespace),
            (r"#[^\n]*", Comment.Single),
            (r'"[^"\\\n]*"', String.Double),  # no escapes: one token
            (r'"', String.Double, "string"),
        ],
        "string": [
            (r'"', String.Double, "#pop"),
            (ESCAPE, String.Escape),
            (r"\\.", Error),                 # not a JSON escape: the parser rejects it
            (r'[^"\\\n]+', String.Double),
            (r"\n", Error, "#pop"),          # unterminated
        ],
        "expr": [
            include("space"),
            (FLOAT, Number.Float),
            (r"[0-9]+", Number.Integer),
            (r"(\.)([0-9]+)", bygroups(Punctuation, Number.Integer)),   # blocks.0
            (r"(\.)(\*)", bygroups(Punctuation, Operator)),            # blocks.*
            (rf"(\.)({NAME})", bygroups(Punctuation, Name.Other)),     # blocks.0.attn
            (rf"{NAME}(?=\.)", Name.Other),
            (rf"{NAME}(?=[ \t]*\()", _name("call")),
            (NAME, _name("value")),
            (r"->|\*\*|//|[-+*/%=]", Operator),
            (r"\(", Punctuation, "args"),
            (r"\[", Punctuation, "list"),
            (r"[,.]", Punctuation),
        ],
        "root": [
            include("space"),
            (r"use\b", Keyword.Namespace),
            (rf"(spec)(\s+)({NAME})", bygroups(Keyword.Declaration, Whitespace, Name.Namespace)),
            (rf"(block)(\s+)({NAME})", bygroups(Keyword.Declaration, Whitespace, Name.Class),
             "blockdef"),
            (r"convex\b", Keyword),
            (r"model\b(?=[ \t]*(?:[({]|$))", Keyword.Reserved, "model"),
            (r"(?:data|train)\b(?=[ \t]*(?:[({]|$))", Keyword.Reserved, "settings-head"),
            (r"(?:grow|evolve)\b(?=[ \t]*(?:[({]|$))", Keyword.Reserved, "grow-head"),
            _key(Name.Variable),
            (rf"({NAME})([ \t]*)(:)", bygroups(Name.Label, Whitespace, Punctuation)),
            (r"\{", Punctuation, "body"),
            include("expr"),
        ],
        "model": _head("body"),
        "settings-head": _head("settings"),
        "grow-head": _head("grow"),
        "blockdef": [include("space"), (r"\(", Punctuation, "params"),
                     (r"\{", Punctuation, ("#pop", "body"))],
        "params": [include("space"), (r"\)", Punctuation, "#pop"), (NAME, Name.Variable),
                   (r"=", Operator, "default"), (r",", Punctuation)],
        "default": [(r"(?=[,)])", _nothing, "#pop"), include("expr")],
        "list": [(r"\]", Punctuation, "#pop"), include("expr")],
        "args": _parens(_key(Name.Attribute)),
        "body": _braces(
            (r"convex\b", Keyword),
            (rf"({NAME})([ \t]*)(:)", bygroups(Name.Label, Whitespace, Punctuation)),
            (rf"(?:{'|'.join(CONSTRUCTS)})\b", Keyword.Pseudo),
            _key(Name.Property),
            (rf"{NAME}(?=[ \t]*\{{)", _name("group")),
            (NAME, _name("stmt"))),
        "settings": _braces(_key(Name.Property)),
        "grow": _braces(_key(Name.Property), (r"\(", Punctuation, "targets"), (NAME, _name("grow"))),
        "targets": _parens(  # growth targets are paths, even `mlp`
            (r"\(", Punctuation, "#push"), _key(Name.Attribute),
            (rf"{NAME}(?=[ \t]*\()", _name("call")), (rf"{NAME}\b", _name("target"))),
    }


# ---------------------------------------------------------------------------- TextMate grammar
# The same classification as MorphLexer, as begin/end regions. The regexes are Oniguruma and
# Python `re` alike (no \w or \d, whose meaning differs); tests run them with a small interpreter.
ASSIGN, ARROW = "keyword.operator.assignment.morph", "keyword.operator.arrow.morph"


def _words(names) -> str:
    return r"\b(?:" + "|".join(sorted(names)) + r")\b"


def _tok(regex: str, token) -> dict:
    return {"match": regex, "name": SCOPES.get(token, token)}


def _caps(regex: str, *tokens) -> dict:
    return {"match": regex, "captures": {str(i): {"name": SCOPES.get(t, t)}
                                         for i, t in enumerate(tokens, 1)}}


def _region(begin: str, end: str, patterns: list, kind: str | None = "parens") -> dict:
    r = {"begin": begin, "end": end,
         "patterns": [{"include": "#" + p} if isinstance(p, str) else p for p in patterns]}
    if kind:
        r["beginCaptures"] = {"0": {"name": f"punctuation.section.{kind}.begin.morph"}}
        r["endCaptures"] = {"0": {"name": f"punctuation.section.{kind}.end.morph"}}
    return r


def _opening(begin: str, captures: dict, name: str, patterns: list) -> dict:
    """A region from a keyword to the `}` that closes its body."""
    return {"begin": begin, "end": r"(?<=\})", "name": name,
            "beginCaptures": {str(i): {"name": SCOPES[t]} for i, t in captures.items()},
            "patterns": [{"include": "#" + p} for p in patterns]}


def _section(words_: str, body: str) -> dict:
    return _opening(rf"\b({words_})\b(?=[ \t]*(?:[({{]|$))", {1: Keyword.Reserved},
                    f"meta.section.{body}.morph", ["comment", "args", body])


def textmate() -> dict:
    """The TextMate grammar of `.morph` (scopeName source.morph), as a JSON-ready dict."""
    w, call = words(), r"(?=[ \t]*\()"
    key = lambda token: _caps(rf"\b({NAME})[ \t]*(=)", token, ASSIGN)  # noqa: E731
    name = lambda token, after="": _tok(rf"\b{NAME}\b{after}", token)  # noqa: E731
    label = _caps(rf"\b({NAME})[ \t]*(:)", Name.Label, "punctuation.separator.label.morph")
    block, op = _tok(r"\b[A-Z][A-Za-z0-9_]*\b", Name.Class), _tok(_words(w["op"]), Name.Builtin)
    constant = _tok(_words(w["constant"]) + r"(?![ \t]*\()", Keyword.Constant)
    math = _tok(_words(w["function"]) + call, Name.Builtin.Pseudo)
    calls = [math, _tok(block["match"] + call, Name.Class), _tok(op["match"] + call, Name.Builtin),
             name(Name.Function, call)]
    comma, dot = "punctuation.separator.comma.morph", "punctuation.accessor.morph"
    repo = {
        "comment": _tok(r"#.*$", Comment.Single),
        "string": {"begin": '"', "end": '"|$', "name": SCOPES[String.Double], "patterns": [
            _tok(ESCAPE, String.Escape), _tok(r"\\.", Error)]},
        "number": {"patterns": [_tok(rf"\b(?:{FLOAT})", Number.Float),
                                _tok(r"\b[0-9]+", Number.Integer)]},
        "path": {"patterns": [_caps(r"(\.)([0-9]+)", dot, Number.Integer),
                              _caps(r"(\.)(\*)", dot, "keyword.operator.wildcard.morph"),
                              _caps(rf"(\.)({NAME})", dot, Name.Other),
                              _tok(rf"\b{NAME}(?=\.)", Name.Other)]},
        "names": {"patterns": [constant, math, block, op, *calls[3:], name(Name.Other)]},
        "operator": {"patterns": [_tok("->", ARROW), _tok("=", ASSIGN),
                                  _tok(r"\*\*|//|[-+*/%]", "keyword.operator.arithmetic.morph")]},
        "punctuation": {"patterns": [_tok(",", comma), _tok(r"\.", dot)]},
        "expression": {"patterns": [{"include": f"#{n}"} for n in (
            "comment", "string", "number", "path", "names", "operator", "args", "list",
            "punctuation")]},
        "args": _region(r"\(", r"\)", ["comment", key(Name.Attribute), "expression"]),
        "list": _region(r"\[", r"\]", ["expression"], kind="brackets"),
        "params": _region(r"\(", r"\)", [
            "comment", {**_region("=", r"(?=[,)])", ["expression"], kind=None),
                        "beginCaptures": {"0": {"name": ASSIGN}}},
            name(Name.Variable), _tok(",", comma)]),
        "blockdef": _opening(rf"\b(block)[ \t]+({NAME})", {1: Keyword.Declaration, 2: Name.Class},
                             "meta.block.morph", ["comment", "params", "body"]),
        "body": _region(r"\{", r"\}", [
            "comment", "string", "body", _tok(r"\bconvex\b", Keyword),
            label, _tok(_words(CONSTRUCTS), Keyword.Pseudo), key(Name.Property), block, op,
            name(Name.Label, r"(?=[ \t]*\{)"), name(Name.Function), "expression"], kind="block"),
        "settings": _region(r"\{", r"\}", ["comment", "settings", key(Name.Property),
                                             "expression"], kind="block"),
        "grow": _region(r"\{", r"\}", [
            "comment", "grow", key(Name.Property), "targets",
            _tok(_words(w["trigger"]), Name.Decorator), _tok(_words(w["rewrite"]), Name.Function.Magic),
            name(Name.Function), "expression"], kind="block"),
        "targets": _region(r"\(", r"\)", [  # growth targets are paths, even `mlp`
            "comment", "targets", key(Name.Attribute), constant, *calls, name(Name.Other),
            "expression"]),
    }
    top = ["comment", "string", _tok(r"\buse\b", Keyword.Namespace),
           _caps(rf"\b(spec)[ \t]+({NAME})", Keyword.Declaration, Name.Namespace),
           "blockdef", _tok(r"\bconvex\b", Keyword), _section("model", "body"),
           _section("data|train", "settings"), _section("grow|evolve", "grow"),
           key(Name.Variable), label, "body", "expression"]
    return {"$schema": "https://raw.githubusercontent.com/martinring/tmlanguage/master/tmlanguage.json",
            "name": "morph", "scopeName": "source.morph", "fileTypes": ["morph"],
            "comment": "Generated by `python -m morphdsl.syntax.highlight --textmate`; do not edit.",
            "patterns": [{"include": "#" + p} if isinstance(p, str) else p for p in top],
            "repository": repo}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv != ["--textmate"]:
        print("usage: python -m morphdsl.syntax.highlight --textmate > morph.tmLanguage.json",
              file=sys.stderr)
        return 2
    print(json.dumps(textmate(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
