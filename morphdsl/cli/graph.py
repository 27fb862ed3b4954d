"""`morphc graph FILE -o OUT.dot|OUT.mmd`: the model DAG as graphviz or a mermaid flowchart.

Op nodes are labelled with their path and op; structural nodes (`blocks.0#add0`, joins,
slices) are small circles; named regions (blocks, repeats, partitions) and composite ops (an
attention and its parts) become nested clusters.
Edges carry the tensor width.
"""
from __future__ import annotations

from pathlib import Path

from .common import UsageError, load_graph, region_kind

_SYMBOL = {"add": "+", "sub": "−", "mul": "×", "div": "÷", "max": "max", "mean": "mean",
           "concat": "cat", "slice": "slice"}


def register(sub):
    p = sub.add_parser("graph", help="draw the model DAG (.dot graphviz or .mmd mermaid)",
                       description="Write the model's DAG. The format follows the extension of "
                                   "OUT: .dot (graphviz; render with `dot -Tsvg`) or .mmd "
                                   "(mermaid).")
    p.add_argument("file", metavar="FILE", help="a .morph file")
    p.add_argument("-o", "--out", required=True, metavar="OUT", help="output file (.dot or .mmd)")
    p.set_defaults(func=run)


def region_tree(g) -> dict:
    """Nested clusters: {"nodes": [keys], "kids": {path: subtree}} following named regions."""
    tree = {"nodes": [], "kids": {}}
    for key, d in g.nodes():
        cur, last = tree, None
        for region, path in d.get("regions", []):
            if not hasattr(region, "kind") or not path or path == last:
                continue  # ops marked convex are not clusters; unnamed regions share a path
            new = {"nodes": [], "kids": {}, "kind": region_kind(region)}
            cur = cur["kids"].setdefault(path, new)
            last = path
        if d.owner:  # a composite's parts (attention's qkv, sdpa, proj) sit in a cluster of it
            cur = cur["kids"].setdefault(d.owner, {"nodes": [], "kids": {}, "kind": g.unit(d.owner).op})
        cur["nodes"].append(key)
    return tree


def label(key: str, d: dict) -> tuple[str, bool]:
    """(label, structural?) of a DAG node."""
    if d.kind == "input":
        return f"input {d['type']}", False
    if "#" in key:
        sym = _SYMBOL.get(d.op, d.op)
        if d.op == "slice":
            sym = f"{d['resolved']['start']}:{d['resolved']['stop']}"
        return sym, True
    return f"{key}\n{d['op']}", False


def _width(d) -> str:
    c = d.type.channels
    return "ids" if c is None else str(c)


def to_dot(g) -> str:
    ids = {k: f"n{i}" for i, (k, _) in enumerate(g.nodes())}
    q = lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    out = [f"digraph {q(g.name)} {{", "  rankdir=TB;",
           '  node [shape=box, style="rounded,filled", fillcolor="#eef3fb", fontname="Helvetica", '
           "fontsize=10];", '  edge [fontname="Helvetica", fontsize=8, color="#667788"];']
    counter = [0]

    def emit(tree, ind):
        for key in tree["nodes"]:
            d = g.dag.nodes[key]
            text, small = label(key, d)
            attrs = [f"label={q(text)}"]
            if small:
                attrs += ["shape=circle", "width=0.3", "fixedsize=false", 'fillcolor="#ffffff"']
            if d.kind == "input":
                attrs += ["shape=ellipse", 'fillcolor="#e8f5e9"']
            if key == g.output:
                attrs += ["peripheries=2"]
            out.append(f"{ind}{ids[key]} [{', '.join(attrs)}];")
        for path, sub in tree["kids"].items():
            counter[0] += 1
            title = q(path + " (" + sub["kind"] + ")")
            out.append(f"{ind}subgraph cluster_{counter[0]} {{")
            out.append(f'{ind}  label={title}; style="rounded,dashed"; '
                       'color="#99aabb"; fontname="Helvetica"; fontsize=9;')
            emit(sub, ind + "  ")
            out.append(f"{ind}}}")

    emit(region_tree(g), "  ")
    for key, d in g.nodes():
        for src in d.get("inputs", []):
            out.append(f"  {ids[src]} -> {ids[key]} [label={q(_width(g.dag.nodes[src]))}];")
    out.append("}")
    return "\n".join(out) + "\n"


def to_mermaid(g) -> str:
    ids = {k: f"n{i}" for i, (k, _) in enumerate(g.nodes())}
    q = lambda s: '"' + s.replace('"', "#quot;").replace("\n", "<br/>") + '"'
    out = ["flowchart TB"]
    counter = [0]

    def emit(tree, ind):
        for key in tree["nodes"]:
            d = g.dag.nodes[key]
            text, small = label(key, d)
            if small:
                out.append(f"{ind}{ids[key]}(({q(text)}))")
            elif d.kind == "input":
                out.append(f"{ind}{ids[key]}([{q(text)}])")
            else:
                out.append(f"{ind}{ids[key]}[{q(text)}]")
        for path, sub in tree["kids"].items():
            counter[0] += 1
            title = q(path + " (" + sub["kind"] + ")")
            out.append(f"{ind}subgraph c{counter[0]}[{title}]")
            emit(sub, ind + "  ")
            out.append(f"{ind}end")

    emit(region_tree(g), "  ")
    for key, d in g.nodes():
        for src in d.get("inputs", []):
            out.append(f"  {ids[src]} -->|{_width(g.dag.nodes[src])}| {ids[key]}")
    return "\n".join(out) + "\n"


def run(args) -> int:
    ext = Path(args.out).suffix.lower()
    if ext not in (".dot", ".gv", ".mmd", ".mermaid"):
        raise UsageError(f"cannot tell the format of {args.out}: use a .dot or .mmd extension")
    g = load_graph(args.file)
    text = to_dot(g) if ext in (".dot", ".gv") else to_mermaid(g)
    try:
        Path(args.out).write_text(text, encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot write {args.out}: {e.strerror}") from None
    print(f"wrote {args.out} ({g.dag.number_of_nodes()} nodes, {g.dag.number_of_edges()} edges)")
    return 0
