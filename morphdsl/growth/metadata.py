"""Per-parameter metadata: which rewrite made each slice of each parameter, when, and how it trains.

    meta = ParamMeta.initial(module, optimizer)        # every tensor one `init` slice
    meta.slices("blocks.0.attn.qkv.weight")            # [Slice(index=((0, 192), (0, 64)), op="init", ...), ...]
    meta.update("blocks.0.attn.qkv.weight", index=((128, 192), None), frozen=True)
    meta.to_json() / ParamMeta.from_json(d)             # JSON, stored as meta.json in a checkpoint

A parameter's slices are boxes (a [start, stop) range per dimension) that tile it exactly: no
overlap, nothing uncovered (`check`). Each carries its origin (`op` "init" or the rewrite's name,
its `target` and `args`), the training `step` it was made at, its optimizer param `group`, an
`lr_scale` (1.0: the group's LR), `crystal` (a crystallized petal: continual/crystal.py) and
`frozen` (no optimizer step changes it; see
growth/control.py). Growth carries it (`follow`): an old slice keeps its origin at the places its
entries moved to, entries no old one lands on get the rewrite's; keyed by name, it survives
checkpoints and emit -> recompile (the names are the spec's paths).
"""
from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field, replace

from ..errors import GrowthError

VERSION = 1
Box = tuple  # ((start, stop), ...) per dimension


@dataclass(frozen=True)
class Slice:
    index: Box                      # ((start, stop), ...) per dimension
    op: str = "init"                # "init" or the rewrite that made these entries
    target: str | None = None       # the rewrite's target
    args: dict = field(default_factory=dict, hash=False)
    step: int = 0                   # the training step it was made at
    group: int | None = None        # optimizer param group of the tensor
    lr_scale: float = 1.0           # x the group's LR
    frozen: bool = False
    crystal: bool = False           # a crystallized petal (continual/crystal.py): hard to move

    @property
    def origin(self) -> str:
        if self.op == "init":
            return "init"
        return f"{self.op}({self.target})" if self.target else self.op

    def attrs(self) -> tuple:
        """What two slices must share to be merged into one."""
        return (self.op, self.target, tuple(sorted(self.args.items())), self.step, self.group,
                self.lr_scale, self.frozen, self.crystal)

    def numel(self) -> int:
        n = 1
        for a, b in self.index:
            n *= b - a
        return n


def full(shape) -> Box:
    return tuple((0, int(s)) for s in shape)


def _norm_index(index, shape) -> Box:
    """A user's index: None (all), or per dim None | (start, stop) | slice."""
    if index is None:
        return full(shape)
    index = tuple(index) + (None,) * (len(shape) - len(index))
    if len(index) != len(shape):
        raise GrowthError(f"index {index!r} has more dimensions than the tensor ({tuple(shape)})")
    out = []
    for d, (r, n) in enumerate(zip(index, shape)):
        if r is None:
            out.append((0, n))
            continue
        a, b = (r.start or 0, n if r.stop is None else r.stop) if isinstance(r, slice) else r
        if not (0 <= a < b <= n):
            raise GrowthError(f"index range {a}:{b} is outside dimension {d} of size {n}",
                              hint="give [start, stop) ranges inside the tensor's shape")
        out.append((int(a), int(b)))
    return tuple(out)


def _cut(box: Box, cut: Box) -> tuple[Box | None, list[Box]]:
    """(box ∩ cut, the rest of box as disjoint boxes)."""
    inter = tuple((max(a, c), min(b, d)) for (a, b), (c, d) in zip(box, cut))
    if any(a >= b for a, b in inter):
        return None, [box]
    rest, cur = [], list(box)
    for d, ((a, b), (c, e)) in enumerate(zip(box, inter)):
        if a < c:
            rest.append(tuple(cur[:d]) + ((a, c),) + tuple(cur[d + 1:]))
        if e < b:
            rest.append(tuple(cur[:d]) + ((e, b),) + tuple(cur[d + 1:]))
        cur[d] = (c, e)
    return inter, rest


def merge(slices: list[Slice]) -> list[Slice]:
    """Join neighbours with the same attributes that differ in one dimension only."""
    out = list(slices)
    changed = True
    while changed:
        changed = False
        for i, j in itertools.combinations(range(len(out)), 2):
            a, b = out[i], out[j]
            if a.attrs() != b.attrs():
                continue
            diff = [d for d, (x, y) in enumerate(zip(a.index, b.index)) if x != y]
            if len(diff) != 1:
                continue
            d = diff[0]
            (a0, a1), (b0, b1) = a.index[d], b.index[d]
            if a1 == b0 or b1 == a0:
                idx = list(a.index)
                idx[d] = (min(a0, b0), max(a1, b1))
                out[i] = replace(a, index=tuple(idx))
                del out[j]
                changed = True
                break
    return sorted(out, key=lambda s: s.index)


def _intervals(runs, lo, hi):
    """The new-index ranges that old indices [lo, hi) land on, per run (old_start, new_start, k)."""
    out = []
    for o, n, k in runs:
        a, b = max(o, lo), min(o + k, hi)
        if a < b:
            out.append((n + a - o, n + b - o))
    return out


def _complement(covered: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    out, at = [], 0
    for a, b in sorted(covered):
        if a > at:
            out.append((at, a))
        at = max(at, b)
    if at < size:
        out.append((at, size))
    return out


def _union(iv):
    out = []
    for a, b in sorted(iv):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def carry(old: list[Slice], per_dim, new_shape, made: Slice) -> list[Slice]:
    """Slices of a tensor whose entries move by `per_dim` (per dim: None, unchanged, or runs
    (old_start, new_start, length) as in rewrites.transfer.runs): each old slice lands where its
    entries land; the entries no old one lands on get `made`'s attributes."""
    out = []
    for s in old:
        per = []
        for d, (lo, hi) in enumerate(s.index):
            per.append([(lo, hi)] if per_dim[d] is None else _intervals(per_dim[d], lo, hi))
        for combo in itertools.product(*per):
            out.append(replace(s, index=tuple(combo)))
    covered = [[(0, n)] if per_dim[d] is None else _union((ns, ns + k) for _, ns, k in per_dim[d])
               for d, n in enumerate(new_shape)]
    for d, n in enumerate(new_shape):  # new = full minus the product of the covered sets
        holes = _complement(covered[d], n)
        dims = covered[:d] + [holes] + [[(0, m)] for m in new_shape[d + 1:]]
        for combo in itertools.product(*dims):
            out.append(replace(made, index=tuple(combo)))
    return merge(out)


class ParamMeta:
    """Slices per parameter name (see module doc)."""

    def __init__(self, params: dict[str, list[Slice]] | None = None):
        self.params: dict[str, list[Slice]] = dict(params or {})

    # ------------------------------------------------------------------ building
    @classmethod
    def initial(cls, module, optimizer=None, step: int = 0) -> "ParamMeta":
        """Every parameter one `init` slice (in its optimizer group, when an optimizer is given)."""
        groups = group_index(module, optimizer)
        return cls({n: [Slice(full(p.shape), step=step, group=groups.get(n))]
                    for n, p in module.named_parameters()})

    def conform(self, module, optimizer=None) -> "ParamMeta":
        """This metadata for `module`: names it lacks start as `init`, names the module lacks are
        dropped, groups follow `optimizer` (when given); raises GrowthError when the slices of a
        known name do not tile its tensor."""
        groups = group_index(module, optimizer)
        out = {}
        for n, p in module.named_parameters():
            if n in self.params:
                sl = self.params[n]
                if optimizer is not None:
                    sl = [replace(s, group=groups.get(n)) for s in sl]
                out[n] = sl
            else:
                out[n] = [Slice(full(p.shape), group=groups.get(n))]
        m = ParamMeta(out)
        m.check({n: tuple(p.shape) for n, p in module.named_parameters()})
        return m

    def follow(self, plan, new_module, *, op: str, target=None, args=None, step: int = 0,
               lr_scale: float = 1.0, optimizer=None, movers=None) -> "ParamMeta":
        """The metadata after a rewrite with transfer `plan` made `new_module` (from the module
        this metadata describes); `movers` from rewrites.transfer.apply_plan (index maps)."""
        from ..rewrites.transfer import Mover

        groups = group_index(new_module, optimizer)
        args = {k: v for k, v in (args or {}).items() if k not in ("target", "state")}
        out = {}
        for n, p in new_module.named_parameters():
            shape = tuple(p.shape)
            e = plan.entries.get(n)
            src = e.src if e is not None else (n if n in self.params else None)
            g = groups.get(n)
            made = Slice(full(shape), op=op, target=target, args=dict(args), step=step, group=g,
                         lr_scale=lr_scale)
            old = self.params.get(src) if src is not None else None
            if old is None:
                out[n] = [made]
                continue
            old = [replace(s, group=g) if optimizer is not None else s for s in old]
            if e is not None and e.fn is not None:  # a transform of the whole tensor
                kinds = {(s.group, s.lr_scale, s.frozen) for s in old}
                if len(kinds) > 1:
                    raise GrowthError(f"`{op}` transforms all of `{n}`, whose slices train "
                                      "differently (frozen or LR scale); their metadata cannot "
                                      "follow", node=n.rsplit(".", 1)[0],
                                      hint="unfreeze the tensor's slices (or give them one LR "
                                           "scale) before this rewrite")
                _, lr, fz = kinds.pop()
                out[n] = [replace(made, lr_scale=lr, frozen=fz)]
                continue
            mv = (movers or {}).get(n)
            if mv is None:
                old_shape = tuple(b for _, b in _bounds(old))
                mv = Mover(e or _entry(src), old_shape, shape)
            out[n] = [replace(s) for s in old] if mv.full else carry(old, mv.per_dim, shape, made)
        return ParamMeta(out)

    # ------------------------------------------------------------------ reading, editing
    def slices(self, name: str) -> list[Slice]:
        if name not in self.params:
            from ..errors import did_you_mean

            raise GrowthError(f"no parameter `{name}` in the metadata",
                              hint=did_you_mean(name, self.params) or "names are "
                              "module.named_parameters() names, e.g. blocks.0.attn.qkv.weight")
        return list(self.params[name])

    def update(self, name: str, index=None, **attrs) -> "ParamMeta":
        """Set attributes (frozen, lr_scale, ...) on the part `index` of tensor `name`, splitting
        slices where needed; in place, returns self."""
        bad = set(attrs) - {"frozen", "crystal", "lr_scale", "group", "op", "target", "args", "step"}
        if bad:
            raise GrowthError(f"unknown slice attribute(s) {', '.join(sorted(bad))}",
                              hint="frozen, crystal, lr_scale, group, op, target, args, step")
        if "lr_scale" in attrs and not float(attrs["lr_scale"]) >= 0:
            raise GrowthError(f"lr_scale must be a number >= 0, got {attrs['lr_scale']!r}")
        sl = self.slices(name)
        shape = tuple(b for _, b in _bounds(sl))
        box = _norm_index(index, shape)
        out = []
        for s in sl:
            inter, rest = _cut(s.index, box)
            out += [replace(s, index=r) for r in rest]
            if inter is not None:
                out.append(replace(s, index=inter, **attrs))
        self.params[name] = merge(out)
        return self

    def freeze(self, name: str, index=None, frozen: bool = True) -> "ParamMeta":
        return self.update(name, index, frozen=frozen)

    def check(self, shapes: dict[str, tuple]) -> None:
        """Raise GrowthError unless every name's slices tile its shape exactly."""
        for n, shape in shapes.items():
            if n not in self.params:
                raise GrowthError(f"metadata has no slices for `{n}`")
            total, sl = 0, self.params[n]
            for s in sl:
                if len(s.index) != len(shape) or any(not (0 <= a < b <= m)
                                                     for (a, b), m in zip(s.index, shape)):
                    raise GrowthError(f"metadata slice {s.index} of `{n}` is outside its shape "
                                      f"{tuple(shape)}")
                total += s.numel()
            for a, b in itertools.combinations(sl, 2):
                if _cut(a.index, b.index)[0] is not None:
                    raise GrowthError(f"metadata slices {a.index} and {b.index} of `{n}` overlap")
            want = 1
            for m in shape:
                want *= m
            if total != want:
                raise GrowthError(f"metadata slices of `{n}` cover {total} of its {want} entries")

    # ------------------------------------------------------------------ JSON
    def to_json(self) -> dict:
        def one(s: Slice) -> dict:
            d = asdict(s)
            d["index"] = [list(r) for r in s.index]
            return d

        return {"version": VERSION, "params": {n: [one(s) for s in sl]
                                               for n, sl in self.params.items()}}

    @classmethod
    def from_json(cls, d) -> "ParamMeta":
        """Raises ValueError on a malformed object (a checkpoint reader names the file)."""
        if not isinstance(d, dict) or d.get("version") != VERSION \
                or not isinstance(d.get("params"), dict):
            raise ValueError("not a morphdsl metadata object (no version 1 'params')")
        out = {}
        for n, sl in d["params"].items():
            if not isinstance(sl, list) or not sl:
                raise ValueError(f"'{n}' has no slice list")
            got = []
            for s in sl:
                if not isinstance(s, dict) or not isinstance(s.get("index"), list):
                    raise ValueError(f"a slice of '{n}' is malformed")
                idx = tuple((int(a), int(b)) for a, b in s["index"])
                step, lr = s.get("step", 0), s.get("lr_scale", 1.0)
                if not isinstance(step, int) or not isinstance(lr, (int, float)) \
                        or isinstance(lr, bool) or not isinstance(s.get("frozen", False), bool) \
                        or not isinstance(s.get("crystal", False), bool):
                    raise ValueError(f"a slice of '{n}' has a bad step, lr_scale, frozen or crystal")
                got.append(Slice(idx, str(s.get("op", "init")), s.get("target"),
                                 dict(s.get("args") or {}), step, s.get("group"), float(lr),
                                 s.get("frozen", False), s.get("crystal", False)))
            out[n] = got
        return cls(out)

    def __eq__(self, other) -> bool:
        return isinstance(other, ParamMeta) and self.params == other.params

    def __repr__(self) -> str:
        n = sum(len(v) for v in self.params.values())
        return f"ParamMeta({len(self.params)} tensors, {n} slices)"


def _bounds(sl: list[Slice]) -> Box:
    """The box spanned by a tensor's slices (its shape, when they tile it)."""
    dims = len(sl[0].index)
    return tuple((min(s.index[d][0] for s in sl), max(s.index[d][1] for s in sl))
                 for d in range(dims))


def _entry(src):
    from ..rewrites.transfer import Entry

    return Entry(src)


def group_index(module, optimizer) -> dict[str, int]:
    """Parameter name -> index of its param group in `optimizer` ({} without one)."""
    if optimizer is None:
        return {}
    gid = {id(p): gi for gi, g in enumerate(optimizer.param_groups) for p in g["params"]}
    return {n: gid[id(p)] for n, p in module.named_parameters() if id(p) in gid}
