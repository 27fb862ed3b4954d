"""A growth transaction: rewrite -> static checks -> compile -> move weights and optimizer state
-> identity check -> commit, or raise leaving the model, optimizer and metadata untouched.

    txn = GrowthTransaction(module, optimizer, meta, step=step)
    r = txn.apply("widen_mlp", {"target": "blocks.*.mlp", "by": 64})
    module, optimizer, meta = r.module, r.optimizer, r.meta      # or txn.module, ...
    r.report.max_abs_err; r.before, r.after                      # the identity probe's outputs

Nothing of the old model is written at any stage: the rewrite works on a copy of the IR graph,
the new module is freshly compiled, weights and state are copied into it, and one new optimizer
is built (param groups and their hyperparameters kept; see rewrites.transfer.transfer_optimizer).
So a failure at any stage is a rollback by construction; the error names the rewrite, the stage
and, where there is one, the IR node (`err.node`). Identity failures of exact rewrites raise
`IdentityError` (a VerifyError and a GrowthError). With `share=True` unchanged tensors (their
Parameter objects and their optimizer state) are handed over without a copy (faster; the old
model and optimizer must not be trained afterwards — the engine drops them).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import GrowthError, MorphError, VerifyError
from .control import attach
from .metadata import ParamMeta


class IdentityError(VerifyError, GrowthError):
    """An exact rewrite changed the function (its transfer is wrong)."""


@dataclass
class GrowthResult:
    module: object
    optimizer: object
    meta: ParamMeta
    rewrite: object                    # the RewriteResult (graph, plan, exact, notes)
    report: object = None              # IdentityReport (None when not verified)
    before: torch.Tensor | None = None  # the probe's output before growth (eval mode)
    after: torch.Tensor | None = None   # ... and after
    times: dict = field(default_factory=dict)  # seconds per stage


def describe(op: str, args: dict) -> str:
    parts = [str(args["target"])] if args.get("target") is not None else []
    parts += [f"{k}={v}" for k, v in args.items() if k not in ("target", "state")]
    return f"{op}({', '.join(parts)})"


def _device_dtype(module):
    p = next(iter(module.parameters()), None)
    return (p.device, p.dtype) if p is not None else (None, None)


class GrowthTransaction:
    """Grows `module` (a compiled GraphModule) with its `optimizer` (or None) and metadata
    (None: `module.morph_meta`, else every tensor `init`). `step` stamps new slices; `probe` is
    the identity check's input (default: a seeded 2 x 16 batch); `new_lr_scale` puts brand-new
    tensors in a `new` group with lr x s and stamps new slices with it; `before_compile(graph)`
    sees the grown graph before anything is allocated (a memory check that raises)."""

    def __init__(self, module, optimizer=None, meta: ParamMeta | None = None, *, step: int = 0,
                 verify: bool = True, atol: float = 1e-5, probe=None,
                 new_lr_scale: float | None = None, before_compile=None, share: bool = False):
        self.module, self.optimizer = module, optimizer
        if meta is None:
            meta = getattr(module, "morph_meta", None)
        self.meta = meta.conform(module, optimizer) if meta is not None else \
            ParamMeta.initial(module, optimizer)
        self.step, self.verify, self.atol, self.probe = step, verify, atol, probe
        self.new_lr_scale, self.before_compile, self.share = new_lr_scale, before_compile, share
        self.results: list[GrowthResult] = []

    # ------------------------------------------------------------------ one rewrite
    def apply(self, op: str, args: dict | None = None) -> GrowthResult:
        """Apply one rewrite `op(**args)`; on success the transaction holds the grown module,
        optimizer and metadata (so calls chain); on failure it raises and holds the old ones."""
        import time

        from ..compile import compile_graph
        from ..rewrites import rewrite_only
        from ..rewrites.transfer import apply_plan, transfer_optimizer
        from ..verify import static_checks

        args = dict(args or {})
        old, what = self.module, describe(op, args)
        times: dict = {}
        t0 = time.perf_counter()

        def lap(name):
            nonlocal t0
            t = time.perf_counter()
            times[name] = t - t0
            t0 = t

        res = rewrite_only(old.morph_graph, op, args, old)  # its own errors name op and target
        lap("rewrite")
        with _stage(what, "failed the static checks on the grown graph"):
            static_checks(res.graph)
        lap("checks")
        if self.before_compile is not None:
            self.before_compile(res.graph)  # its errors are its own (e.g. TrainingStopped)
        with _stage(what, "could not be compiled"):
            new = compile_graph(res.graph)
            dev, dt = _device_dtype(old)
            if dev is not None:
                new = new.to(device=dev, dtype=dt)
            new.train(old.training)
        lap("compile")
        movers: dict = {}
        with _stage(what, "could not move the weights"):
            apply_plan(res.plan, old, new, movers, share=self.share)
        lap("weights")
        opt = None
        if self.optimizer is not None:
            with _stage(what, "could not move the optimizer state"):
                opt = transfer_optimizer(res.plan, self.optimizer, old, new, self.new_lr_scale,
                                         movers=movers, share_state=self.share)
        lap("optimizer")
        meta = self.meta.follow(res.plan, new, op=op, target=args.get("target"), args=args,
                                step=self.step, optimizer=opt,
                                lr_scale=1.0 if self.new_lr_scale is None else self.new_lr_scale,
                                movers=movers)
        lap("meta")
        rep = before = after = None
        if self.verify:
            rep, before, after = self._identity(old, new, res, what)
        lap("identity")
        # commit
        if opt is not None:
            attach(new, opt, meta)
        new.morph_meta = meta
        self.module, self.optimizer, self.meta = new, opt, meta
        r = GrowthResult(new, opt, meta, res, rep, before, after, times)
        self.results.append(r)
        return r

    @torch.no_grad()
    def _identity(self, old, new, res, what):
        """One forward of each model on the probe; the node-by-node search only on a mismatch."""
        from ..verify.identity import IdentityReport, close, identity, sample_inputs

        x = sample_inputs(old) if self.probe is None else self.probe
        dev, _ = _device_dtype(old)
        x = x.to(dev) if dev is not None else x
        modes = old.training, new.training
        old.eval(), new.eval()
        try:
            yb, ya = old(x), new(x)
        finally:
            old.train(modes[0]), new.train(modes[1])
        hist = res.graph.history
        same = ya.shape == yb.shape
        err = (ya - yb).abs().max().item() if same else float("inf")
        if close(ya, yb, self.atol, self.atol):
            return IdentityReport(True, err, rewrite=hist[-1] if hist else None), yb, ya
        rep = identity(old, new, inputs=x, atol=self.atol, rtol=self.atol)
        if res.exact and not rep.ok:
            raise IdentityError(f"`{what}` changed the function: {rep}", node=rep.node,
                                hint="the rewrite's transfer plan is not function-preserving "
                                     "here; the model and optimizer are unchanged")
        return rep, yb, ya


class _stage:
    """Re-raise an error of one stage of a transaction naming the rewrite and the stage: a
    MorphError keeps its type, node and span; any other exception becomes a GrowthError."""

    def __init__(self, what: str, stage: str):
        self.what, self.stage = what, stage

    def __enter__(self):
        return self

    def __exit__(self, typ, e, tb):
        if e is None:
            return False
        if isinstance(e, MorphError):
            msg = f"`{self.what}` {self.stage}: {e.message}"
            try:
                err = type(e)(msg, span=e.span, hint=e.hint, source=e.source, node=e.node)
            except TypeError:  # a subclass with its own constructor
                err = GrowthError(msg, span=e.span, hint=e.hint, source=e.source, node=e.node)
        elif isinstance(e, (ValueError, KeyError, RuntimeError, TypeError, IndexError)):
            msg = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
            err = GrowthError(f"`{self.what}` {self.stage}: {msg.splitlines()[0] if msg else type(e).__name__}",
                              node=getattr(e, "node", None),
                              hint="the rewrite's transfer plan does not fit the grown module; "
                                   "the model and optimizer are unchanged")
        else:
            return False
        raise err from None
