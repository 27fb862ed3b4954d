"""The record of a population: `lineage.json` (every member of every generation: parent,
mutation and its measured output change, fitness, size) and `evolution.png` (fitness per
generation, parameters per generation, the family tree)."""
from __future__ import annotations

import json
import os
from pathlib import Path


def write_lineage(out, history: list) -> Path:
    out = Path(out)
    rows = [r for gen in history for r in gen]
    tmp = out / "lineage.json.tmp"
    tmp.write_text(json.dumps(rows, indent=1))
    os.replace(tmp, out / "lineage.json")
    try:
        plot(out, history)
    except Exception:  # noqa: BLE001 - a plot is a convenience: never lose a population to it
        pass
    return out / "lineage.json"


def plot(out, history: list) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(15, 4.2))
    for g, recs in enumerate(history):
        a1.scatter([g] * len(recs), [r["fitness"] for r in recs], s=14, color="0.6")
        a2.scatter([g] * len(recs), [r["params"] for r in recs], s=14, color="0.6")
    a1.plot(range(len(history)), [min(r["fitness"] for r in recs) for recs in history], "o-",
            color="C0", label="best")
    a1.set(xlabel="generation", ylabel="fitness (val loss + penalties)", title="fitness")
    a1.legend()
    a2.set(xlabel="generation", ylabel="parameters", title="architecture size")
    pos = {r["id"]: (r["gen"], r["slot"]) for recs in history for r in recs}
    colors = {"-": "0.75", "crossover": "C3"}
    for recs in history:
        for r in recs:
            x, y = pos[r["id"]]
            for par, c in ((r.get("parent"), colors.get(r["mutation"], "C2")), (r.get("mate"), "C3")):
                if par in pos:
                    a3.plot([pos[par][0], x], [pos[par][1], y], color=c, lw=1)
            a3.scatter([x], [y], s=20, color="C0")
            if r["mutation"] not in ("-", None):
                a3.annotate(r["mutation"].split("(")[0], (x, y), fontsize=6, xytext=(2, 3),
                            textcoords="offset points")
    a3.set(xlabel="generation", ylabel="slot", title="family tree (green: mutation, red: crossover)")
    fig.tight_layout()
    p = Path(out) / "evolution.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return p
