"""MorphGraph → .morph text that compiles back to the same graph (same names and shapes).

Emission is flat and literal: block instances are written out, values are numbers, and a group
whose children are identical copies named 0..n-1 is written back as `repeat(n)`. Data, train and
grow sections are kept.
"""
from __future__ import annotations

from ..syntax import ast as A
from ..syntax.printer import format_module
from .graph import MorphGraph, OpInst, Region


def literal(v) -> A.Node:
    if isinstance(v, bool):
        return A.Path(parts=["true" if v else "false"])
    if v is None:
        return A.Path(parts=["none"])
    if isinstance(v, int):
        return A.Num(value=v, text=str(v)) if v >= 0 else A.Neg(operand=literal(-v))
    if isinstance(v, float):
        if v < 0:
            return A.Neg(operand=literal(-v))
        return A.Num(value=v, text=repr(v))
    if isinstance(v, (list, tuple)):
        return A.ListExpr(items=[literal(x) for x in v])
    s = str(v)
    if s.replace(".", "").replace("_", "").replace("*", "").isalnum() and not s[0].isdigit() and \
            all(p and (p.isidentifier() or p.isdigit() or p == "*") for p in s.split(".")):
        return A.Path(parts=s.split("."))
    return A.Str(value=s)


def _args(d: dict, positional=()) -> list[A.Arg]:
    out = [A.Arg(value=literal(v)) for v in positional]
    return out + [A.Arg(name=k, value=literal(v)) for k, v in d.items()]


def _mods(x) -> list[str]:
    return ["convex"] if x.convex else []


def items(children) -> list:
    out = []
    for it in children:
        if isinstance(it, Region) and it.kind == "group" and it.name is None:
            out.extend(items(it.children))  # transparent group (an unnamed block instance)
            if it.convex and out:
                out[-1].modifiers = ["convex"]
        else:
            out.append(stmt(it))
    return out


def stmt(it) -> A.Stmt:
    if isinstance(it, OpInst):
        label = None if it.name == it.op else it.name
        return A.Stmt(label=label, name=it.op, args=_args(it.args) or None, modifiers=_mods(it))
    if it.kind == "group":
        rep = _repeat(it)
        if rep is not None:
            return A.Stmt(label=it.name, name="repeat", args=_args({}, [len(it.children)]),
                          body=rep, modifiers=_mods(it))
        return A.Stmt(name=it.name, body=items(it.children), modifiers=_mods(it))
    if it.kind == "residual":
        return A.Stmt(label=it.name, name="residual", body=items(it.children), modifiers=_mods(it))
    if it.kind == "partition":
        return A.Stmt(label=it.name, name="partition", args=_args({"lanes": it.attrs["lanes"]}),
                      body=items(it.children), modifiers=_mods(it))
    if it.kind == "parallel":
        a = {"join": it.attrs["join"]}
        if it.attrs.get("split"):
            a["split"] = len(it.children)
        body = []
        for br in it.children:
            if br.name is None and len(br.children) == 1:
                body.append(stmt(br.children[0]))
            elif br.name is None:
                raise ValueError("an unnamed parallel branch with several layers cannot be emitted")
            else:
                body.append(A.Stmt(name=br.name, body=items(br.children), modifiers=_mods(br)))
        return A.Stmt(label=it.name, name="parallel", args=_args(a), body=body, modifiers=_mods(it))
    raise ValueError(f"cannot emit region kind {it.kind}")


def _repeat(g: Region):
    kids = g.children
    if not kids or not all(isinstance(k, Region) and k.kind == "group" and k.name == str(i) and not k.convex
                           for i, k in enumerate(kids)):
        return None
    bodies = [items(k.children) for k in kids]
    texts = {format_module(A.Module(items=b)) if b else "" for b in bodies}
    return bodies[0] if len(texts) == 1 and bodies[0] else None


def _rule(r: dict) -> A.Rule:
    def call(c):
        return A.Call(name=c["name"], args=_args(c["kwargs"], c["args"]) or None)

    return A.Rule(trigger=call(r["trigger"]), actions=[call(a) for a in r["actions"]])


def to_module(g: MorphGraph) -> A.Module:
    out: list = [A.SpecName(name=g.name)]
    margs = None
    if g.input_type.channels is not None:
        margs = _args({"features": g.input_type.channels})
    out.append(A.Stmt(name="model", args=margs, body=items(g.root.children)))
    for sec in ("data", "train"):
        if g.sections.get(sec):
            out.append(A.Stmt(name=sec, body=[A.Entry(key=k, value=A.Str(value=v) if isinstance(v, str)
                                                      else literal(v))
                                              for k, v in g.sections[sec].items()]))
    if g.sections.get("grow"):
        out.append(A.Stmt(name="grow", body=[_rule(r) for r in g.sections["grow"]]))
    return A.Module(items=out)


def emit(g: MorphGraph) -> str:
    header = f"# {g.name}: emitted by morphdsl"
    if g.history:
        header += " after " + ", ".join(h if isinstance(h, str) else h.get("op", "?") for h in g.history)
    return header + "\n" + format_module(to_module(g))
