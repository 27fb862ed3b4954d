"""germinate(target, kind, name, hidden, heads): plant a seed at the end of a block (exact).

The seed is a new residual sub-block whose output passes through a seed gate at stage
`training`, so the model computes exactly what the host computed (the gate's forward is 0)
while the seed's weights get the gradient they would get at full strength:

    kind = mlp    residual { NAME: seed(stage = training) { ln: layernorm  mlp: mlp(hidden = H) } }
                  (H = `hidden`, default 4 x the width)
    kind = attn   residual { NAME: seed(stage = training) { ln: layernorm  attn: attention(heads = n) } }

`target` is a region (a block of a repeat, `blocks.1`, or a named group); the seed goes last in
its body. `name` defaults to the first free `seed<k>`. The seed's weights take their modules'
ordinary init (no zeroing is needed: the gate hides them until the lifecycle blends them in).
"""
from __future__ import annotations

from ..errors import GrowthError, did_you_mean
from ..ir.graph import OpInst, Region
from ..ir.lower import find
from ..ir.seeds import seed_paths
from .registry import finish, is_repeat, rewrite
from .transfer import TransferPlan

KINDS = ("mlp", "attn")


def seed_body(kind: str, hidden: int | None, heads: int | None) -> list:
    """The ops of a seed of `kind` (the body its gate follows)."""
    ln = OpInst("ln", "layernorm", {})
    if kind == "mlp":
        return [ln, OpInst("mlp", "mlp", {"mult": 4} if hidden is None else {"hidden": int(hidden)})]
    return [ln, OpInst("attn", "attention", {"heads": int(heads or 1)})]


@rewrite("germinate", applies_to=["group"], exact=True)
def germinate(graph, target=None, kind: str = "mlp", name: str | None = None,
              hidden: int | None = None, heads: int | None = None):
    """Plant a seed (stage training: the host's function exactly) at the end of block `target`."""
    if kind not in KINDS:
        raise GrowthError(f"germinate: unknown seed kind `{kind}`",
                          hint=did_you_mean(str(kind), KINDS) or f"kinds: {', '.join(KINDS)}")
    for k, v in (("hidden", hidden), ("heads", heads)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise GrowthError(f"germinate: `{k}` must be a positive integer, got {v!r}")
    if target is None:
        raise GrowthError("germinate needs a target block", hint="e.g. germinate(blocks.1, kind = mlp)")
    g = graph.copy()
    path = str(target)
    host = find(g.root, path)
    if not isinstance(host, Region) or host.kind not in ("group", "residual") or (
            host.kind == "group" and host.children and is_repeat(host)):
        raise GrowthError(f"germinate: `{path}` is not a block", hint="plant a seed in a block of a "
                          "repeat (`blocks.1`) or a named group; a seed goes where its output is added")
    used = {p.rsplit(".", 1)[-1] for p, _ in seed_paths(g.root)} | _scope_names(host)
    if name is None:
        name = next(f"seed{k}" for k in range(len(used) + 1) if f"seed{k}" not in used)
    elif str(name) in used:
        raise GrowthError(f"germinate: `{name}` is taken in `{path}`",
                          hint="give the seed another name, or omit `name` for the next free `seed<k>`")
    seed = Region("seed", seed_body(kind, hidden, heads), name=str(name),
                  attrs={"stage": "training", "alpha": 0.0})
    host.children.append(Region("residual", [seed]))
    where = f"{path}.{name}"
    return finish(graph, g, TransferPlan(), "germinate",
                  {"target": path, "kind": kind, "name": str(name), "hidden": hidden,
                   "heads": heads}, True, [f"{where}: a {kind} seed at stage training (the host's function)"])


def _scope_names(r: Region) -> set:
    """The names a new child of `r` would clash with: its children's, through unnamed regions."""
    out = set()
    for c in r.children:
        if getattr(c, "name", None):
            out.add(c.name)
        elif isinstance(c, Region):
            out |= _scope_names(c)
    return out
