"""`morphc verify FILE [--json] [--static]`: every verifier on one spec.

Static: the curvature of each named block/region and each `convex` op (convex / concave /
affine / unknown and why), causality (ops that see the future), lane isolation. Dynamic (on the
compiled model, float64): the causality probe, the lane Jacobian block structure, and a Jensen
audit of each `convex` region. Exit 1 if any check fails.
"""
from __future__ import annotations

import json

from ..errors import VerifyError
from .common import read_text


def register(sub):
    p = sub.add_parser("verify", help="prove convexity, causality and lane isolation; run probes",
                       description="Run the static verifiers and dynamic probes on a spec. "
                                   "Exit code 1 if any check fails.")
    p.add_argument("file", metavar="FILE", help="a .morph file")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--static", action="store_true", help="skip the dynamic probes (no weights)")
    p.add_argument("--pairs", type=int, default=256, help="Jensen audit pairs per region (256)")
    p.set_defaults(func=run)


def verify_graph(g, probes: bool = True, pairs: int = 256) -> dict:
    """All verifier results for a graph, as a JSON-able dict with an overall `ok`."""
    from .. import verify as V

    res: dict = {"spec": g.name, "regions": [r.as_dict() for r in V.curvatures(g)]}
    try:
        V.check_lanes(g)
        res["lanes"] = {"ok": True}
    except VerifyError as e:
        res["lanes"] = {"ok": False, "message": e.message, "node": e.node,
                        "span": str(e.span) if e.span else None}
    found = V.causality(g)
    res["causality"] = {"ok": not found, "findings": [f.as_dict() for f in found]}
    if probes:
        from ..compile import compile_graph

        m = compile_graph(g)
        res["causality_probe"] = V.causality_probe(m).as_dict()
        res["lane_probe"] = [r.as_dict() for r in V.lane_probe(m)]
        res["jensen"] = {}
        for r in res["regions"]:
            if r["convex"]:
                try:
                    res["jensen"][r["path"]] = V.jensen(m, region=r["path"], n_pairs=pairs).as_dict()
                except VerifyError as e:  # e.g. a region that takes token ids
                    res["jensen"][r["path"]] = {"ok": False, "error": e.message}
    oks = [r["ok"] for r in res["regions"]] + [res["lanes"]["ok"], res["causality"]["ok"]]
    if probes:
        oks += [res["causality_probe"]["ok"]] + [r["ok"] for r in res["lane_probe"]]
        oks += [j["ok"] for j in res["jensen"].values()]
    res["ok"] = all(oks)
    return res


def _mark(ok: bool) -> str:
    return "ok" if ok else "FAIL"


def render(res: dict, file: str) -> str:
    out = [f"{file}: spec {res['spec']}", "curvature (in each region's input):"]
    width = max([len(r["path"]) for r in res["regions"]] + [4])
    for r in res["regions"]:
        kind = ("convex " if r["convex"] else "") + r["kind"]
        why = f"  {r['why']} [at {r['node']}, {r['span']}]" if r["why"] else ""
        flag = f"  {_mark(r['ok'])}" if r["convex"] else ""
        out.append(f"  {r['path']:<{width}}  {kind:<18} {r['curvature']:<8}{flag}{why}")
    c = res["causality"]
    out.append(f"causality (static): {'causal' if c['ok'] else 'NOT causal'}")
    out += [f"  {f['span']}: {f['message']} [at {f['node']}]" for f in c["findings"]]
    ln = res["lanes"]
    out.append("lane isolation (static): " + ("ok" if ln["ok"] else
               f"FAIL  {ln['span']}: {ln['message']} [at {ln['node']}]"))
    if "causality_probe" in res:
        p = res["causality_probe"]
        out.append(f"causality probe (T={p['T']}): {_mark(p['ok'])}  max leak {p['max_leak']:.3g}")
        for r in res["lane_probe"]:
            start = r.get("start") or "its input"
            out.append(f"lane probe `{r['path']}` ({r['lanes']} lanes, from {start} up to {r['upto']}): "
                       f"{_mark(r['ok'])}  max cross-lane {r['max_cross']:.3g}, own {r['max_own']:.3g}")
        for path, j in res["jensen"].items():
            if "error" in j:
                out.append(f"jensen `{path}`: FAIL  {j['error']}")
                continue
            out.append(f"jensen `{path}`: {_mark(j['ok'])}  {j['violations']}/{j['n_checks']} "
                       f"violations, worst gap {j['worst_gap']:.3g} (x output scale {j['out_scale']:.3g})")
    out.append(f"result: {'ok' if res['ok'] else 'FAILED'}")
    return "\n".join(out)


def run(args) -> int:
    from .. import api
    from ..ir.build import build

    module = api.parse(read_text(args.file), args.file)
    try:
        g = build(module)  # without the static checks: they are reported, not raised
    except Exception as e:
        raise e.with_source(module.source) if hasattr(e, "with_source") and module.source else e
    res = verify_graph(g, probes=not args.static, pairs=args.pairs)
    print(json.dumps(res, indent=2, default=str) if args.json else render(res, args.file))
    return 0 if res["ok"] else 1
