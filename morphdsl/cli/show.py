"""`morphc show FILE [--json]`: the model as a table of nodes and region totals."""
from __future__ import annotations

import json

from ..ir.memory import fmt_bytes
from ..ir.seeds import seed_rows
from .common import console, fmt_int, load_graph, prod, region_kind


def register(sub):
    p = sub.add_parser("show", help="show a model's nodes, shapes and parameter counts",
                       description="List every node of the compiled DAG (path, op, output shape, "
                                   "parameters) and the parameter totals of blocks and regions.")
    p.add_argument("file", metavar="FILE", help="a .morph file")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=run)


def node_rows(g) -> list[dict]:
    """One dict per DAG node in topological order: path, op, shape, params, lanes, inputs."""
    rows = []
    for key, d in g.nodes():
        t = d.type
        rows.append({"path": key, "op": d.op, "shape": list(t.dims),
                     "params": sum(prod(s) for s in d.get("param_shapes", {}).values()),
                     "lanes": d.get("lanes"), "inputs": list(d.get("inputs", [])),
                     "part_of": d.owner,
                     "line": d.span.line if d.get("span") else None})
    return rows


def region_rows(g) -> list[dict]:
    """Parameter totals per region (named groups, block instances, partitions, ...)."""
    totals: dict[str, dict] = {}
    for key, d in g.nodes():
        n = sum(prod(s) for s in d.get("param_shapes", {}).values())
        seen = set()
        for region, path in d.get("regions", []):
            # skip ops marked `convex` (not regions) and unnamed regions sharing a path
            if not hasattr(region, "kind") or not path or path in seen:
                continue
            seen.add(path)
            kind = region_kind(region)
            r = totals.setdefault(path, {"path": path, "kind": kind, "nodes": 0, "params": 0})
            r["nodes"] += 1
            r["params"] += n
    return list(totals.values())


def memory(g) -> dict:
    """The training memory estimate (bytes by part) at the spec's batch and ctx."""
    from ..ir.memory import train_memory, train_shape

    return train_memory(g, *train_shape(g)).to_dict()


def summary(g) -> dict:
    return {"name": g.name, "file": g.filename, "params": g.n_params(), "memory": memory(g),
            "input": list(g.input_type.dims), "output": g.output,
            "nodes": node_rows(g), "regions": region_rows(g), "seeds": seed_rows(g),
            "data": g.sections.get("data", {}), "train": g.sections.get("train", {}),
            "grow": len(g.sections.get("grow", []))}


def run(args) -> int:
    g = load_graph(args.file)
    if args.json:
        print(json.dumps(summary(g), indent=2, default=str))
        return 0
    from rich.table import Table

    out = console()
    t = Table(title=f"{g.name}: {fmt_int(g.n_params())} parameters", title_justify="left")
    t.add_column("node", overflow="fold")
    t.add_column("op")
    t.add_column("output shape")
    t.add_column("params", justify="right")
    for r in node_rows(g):
        structural = "#" in r["path"]
        shape = "(" + ", ".join(map(str, r["shape"])) + ")"
        if len(r["shape"]) == 2:
            shape += " ids"
        if r["lanes"]:
            shape += f" in {r['lanes']} lanes"
        t.add_row(r["path"], r["op"], shape, fmt_int(r["params"]) if r["params"] else "",
                  style="dim" if structural else None)
    out.print(t)
    regions = region_rows(g)
    if regions:
        rt = Table(title="regions", title_justify="left")
        rt.add_column("region", overflow="fold")
        rt.add_column("kind")
        rt.add_column("nodes", justify="right")
        rt.add_column("params", justify="right")
        rt.add_column("share", justify="right")
        total = max(1, g.n_params())
        for r in regions:
            rt.add_row(r["path"], r["kind"], str(r["nodes"]), fmt_int(r["params"]),
                       f"{100 * r['params'] / total:.1f}%")
        out.print(rt)
    seeds = seed_rows(g)
    if seeds:
        st = Table(title="seeds", title_justify="left")
        for c, j in (("seed", "left"), ("stage", "left"), ("alpha", "right"), ("params", "right")):
            st.add_column(c, justify=j, overflow="fold")
        for r in seeds:
            st.add_row(r["path"], r["stage"], f"{r['alpha']:g}", fmt_int(r["params"]))
        out.print(st)
    from ..ir.memory import train_memory, train_shape

    est = train_memory(g, *train_shape(g))
    out.print(f"memory to train at batch {est.batch} x {est.ctx}: ~{fmt_bytes(est.total)} "
              f"({est.parts()})", markup=False, highlight=False)
    return 0
