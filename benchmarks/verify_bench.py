"""Cost of the static verifiers relative to build + compile.

    python -m benchmarks.verify_bench [--repeats 5]

For a gpt_host-like spec (4 layers, d = 256), a 48-layer one, and a 48-layer convex-lanes spec
(every block has a `convex` hull, so the convexity proof has work to do), times:
  build    spec text -> MorphGraph (parse, elaborate, lower; no static checks)
  compile  MorphGraph -> torch.fx.GraphModule (allocates and initialises weights)
  static   `verify.static_checks(g)` (what every build/compile runs)
  report   `verify.curvatures(g)` (every named region's curvature, as `morphc verify` prints)
Medians over repeats; prints a markdown table.
"""
from __future__ import annotations

import argparse
import statistics
import time

from morphdsl import api, verify
from morphdsl.compile import compile_graph
from morphdsl.ir.build import build

GPT = """spec gpt_{L}
block Block(d, heads) {{
  residual {{
    ln1: layernorm
    attn: attention(heads = heads)
  }}
  residual {{
    ln2: layernorm
    mlp: mlp(hidden = 4 * d)
  }}
}}
model {{
  tok: embed(vocab = 256, dim = {d})
  pos: pos_embed(ctx = 256)
  blocks: repeat({L}) {{
    Block(d = {d}, heads = 4)
  }}
  ln_f: layernorm
  head: unembed(vocab = 256, tie = tok)
}}
"""

CONVEX = """spec convex_{L}
block LaneBlock(heads) {{
  residual {{
    ln1: layernorm
    attn: attention(heads = heads)
  }}
  residual {{
    ln2: layernorm
    convex mlp: hull(petals = 4, width = 16, pool = max)
  }}
}}
model {{
  tok: embed(vocab = 256, dim = {d})
  pos: pos_embed(ctx = 128)
  lanes: partition(lanes = 4) {{
    blocks: repeat({L}) {{
      LaneBlock(heads = 4)
    }}
    mixer: mix(kind = sinkhorn)
    ln_f: layernorm
  }}
  head: unembed(vocab = 256, tie = tok)
}}
"""


def _time(fn, repeats):
    ts, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts), out


def bench(name, text, repeats):
    t_build, g = _time(lambda: build(api.parse(text)), repeats)
    t_comp, _ = _time(lambda: compile_graph(g), max(1, repeats // 2))
    t_static, _ = _time(lambda: verify.static_checks(g), repeats)
    t_report, _ = _time(lambda: verify.curvatures(g), repeats)
    return {"spec": name, "nodes": g.dag.number_of_nodes(), "params": g.n_params(),
            "build": t_build, "compile": t_comp, "static": t_static, "report": t_report,
            "frac": t_static / (t_build + t_comp)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args(argv)
    rows = [bench("gpt_host-like 4L d=256", GPT.format(L=4, d=256), a.repeats),
            bench("gpt 48L d=256", GPT.format(L=48, d=256), a.repeats),
            bench("convex lanes 48L d=64", CONVEX.format(L=48, d=64), a.repeats)]
    print("| spec | DAG nodes | params | build ms | compile ms | static_checks ms | "
          "curvature report ms | static / build | static / (build+compile) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['spec']} | {r['nodes']} | {r['params']:,} | {1e3 * r['build']:.1f} | "
              f"{1e3 * r['compile']:.1f} | {1e3 * r['static']:.2f} | {1e3 * r['report']:.2f} | "
              f"{100 * r['static'] / r['build']:.1f}% | {100 * r['frac']:.2f}% |")
    return rows


if __name__ == "__main__":
    main()
