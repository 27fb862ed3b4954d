"""Entry points used by the CLI: train a spec, resume a run, sample from it, evaluate it."""
from __future__ import annotations

import math
import random
from pathlib import Path

import torch

from ..errors import MorphError
from . import checkpoint as ckpt
from .config import from_dict, from_sections
from .data import prepare_data
from .growth import RuleController, known_ops
from .dist import Dist
from .engine import Engine as Trainer
from .progress import Reporter
from .sample import generate


def _with_source(e: MorphError, graph) -> MorphError:
    fn = e.span.filename if e.span else None
    if fn and not e.source and Path(fn).exists():
        return e.with_source(Path(fn).read_text(encoding="utf-8"))
    return e


def check_rules(graph) -> None:
    """Unknown triggers or growth ops are errors at their rule, before training starts."""
    rules = graph.sections.get("grow") or []
    try:
        RuleController(rules)
        ops = known_ops()
        from ..garden import check_declarations

        check_declarations(rules)
        for r in rules:
            for a in r.get("actions", ()):
                if a["name"] not in ops:
                    raise MorphError(f"unknown growth rewrite '{a['name']}'", span=a.get("span"),
                                     hint=f"available: {', '.join(sorted(ops))}")
    except MorphError as e:
        raise _with_source(e, graph) from None


def _finish(trainer: Trainer, reporter: Reporter) -> dict:
    try:
        summary = trainer.run()
    except BaseException:  # a stopped run, Ctrl-C, ...: leave the terminal clean
        reporter.stop()
        raise
    cfg = trainer.cfg
    sample = None
    if not trainer.dist.is_main:  # rank 0 samples, plots and prints the summary
        summary["sample"] = None
        return summary
    if cfg.sample_tokens > 0:
        sample = generate(trainer.model, trainer.tokenizer, "Once upon a time", cfg.sample_tokens,
                          cfg.ctx, cfg.temperature, seed=cfg.seed)
    summary["sample"] = sample
    from .plot import plot_run

    plot_run(trainer.run_dir)
    reporter.finish(summary, sample, trainer.run_dir)
    return summary


def _check_memory(graph, cfg, force: bool, what: str, device="cpu") -> None:
    """Refuse (MemoryLimitError) a run whose estimated peak memory exceeds the machine's
    (`device`'s free memory for a GPU)."""
    from ..ir.memory import ensure_fits, train_memory

    est = train_memory(graph, cfg.batch, cfg.ctx)
    ensure_fits(est.total, f"{what} (batch {cfg.batch} x ctx {cfg.ctx}, {est.params:,} params)",
                device=str(device), force=force, detail=f" ({est.parts()})")


def _setup(cfg, graph=None):
    """(Dist, device) of this process: torchrun's rank, its device, the process group joined.
    Errors about a setting point at its line in the spec."""
    from .devices import resolve_device

    try:
        dist = Dist.from_env()
        device = resolve_device(cfg.device, dist.local_rank)
        dist.local_batch(cfg.batch)
    except MorphError as e:
        key = getattr(e, "setting", None)
        if graph is not None and e.span is None and key:
            e.span = graph.setting_spans.get(key)
            e = _with_source(e, graph)
        raise e from None
    dist.start(device)
    return dist, device


def _run_dir_for(run_dir, replace: bool) -> Path:
    p = Path(run_dir)
    if p.exists() and not p.is_dir():
        raise MorphError(f"the run directory {run_dir} is a file",
                         hint="give --out a directory (new or empty)")
    if ckpt.existing_run(p) and not replace:
        raise MorphError(f"{run_dir} already holds a training run; it was left as it is",
                         hint=f"continue it: morphc train --resume {run_dir}; start it over "
                              f"(replacing it): add --force; or choose another --out")
    return p


def train_spec(spec, run_dir, overrides: dict | None = None, *, reporter: Reporter | None = None,
               controllers=None, callbacks=(), replace: bool = True,
               force_memory: bool = False, init=None) -> dict:
    """Train `spec` (path, text or MorphGraph) from scratch into `run_dir`. A run already
    there is replaced when `replace` (`morphc train` passes False unless --force), else it is
    an error. The run is refused before anything is allocated when its estimated memory
    exceeds what the machine has, unless `force_memory`. `callbacks` are objects with engine
    hooks (callbacks.py); `controllers` decide growth (default: the spec's grow rules).
    `init` starts from weights instead of a random init: a safetensors file in morphdsl's names
    or a Hugging Face model directory (train/init.py). Under torchrun every process calls this; rank 0 writes the run directory."""
    import morphdsl

    graph = morphdsl.build(spec)
    try:
        cfg = from_sections(graph.sections, overrides, graph.setting_spans)
    except MorphError as e:
        raise _with_source(e, graph) from None
    check_rules(graph)
    dist, device = _setup(cfg, graph)
    run = _run_dir_for(run_dir, replace)
    cfg.force_memory = bool(force_memory or cfg.force_memory)
    _check_memory(graph, cfg, cfg.force_memory, f"training {graph.name}", device)
    torch.manual_seed(cfg.seed)  # the model's initial weights
    random.seed(cfg.seed)
    module = morphdsl.compile(graph)
    if init is not None:  # before the run directory is cleared: bad weights lose nothing
        from .init import load_init

        load_init(module, init)
    dist.barrier()  # every rank has looked at the run directory before rank 0 clears it
    if dist.is_main and ckpt.existing_run(run):
        ckpt.clear_run(run)
    reporter = reporter or Reporter(enabled=False)
    trainer = Trainer(module, cfg, run, controllers=controllers, reporter=reporter,
                      callbacks=callbacks, dist=dist)
    out = _finish(trainer, reporter)
    dist.close()
    return out


def resume(run_dir, overrides: dict | None = None, *, reporter: Reporter | None = None,
           controllers=None, callbacks=(), force_memory: bool = False) -> dict:
    """Continue a run from its latest good checkpoint; same losses as an uninterrupted run
    (on any device and any number of torchrun processes: `batch` is the global batch).
    A damaged latest checkpoint is skipped (with a warning) for the one before it, and moved
    aside to checkpoints/damaged-step-N before training continues."""
    run = ckpt.run_root(run_dir)
    r = ckpt.load_checkpoint(run_dir, training=True, force_memory=force_memory)
    saved = dict(r["state"]["config"])
    saved["stop_at"], saved["force_memory"] = None, bool(force_memory)
    saved["stop_at_flops"] = None
    cfg = from_dict(saved, overrides)
    torch.set_num_threads(cfg.threads)
    dist, _ = _setup(cfg)
    reporter = reporter or Reporter(enabled=False)
    trainer = Trainer(r["module"], cfg, run, tokenizer=r["tokenizer"], controllers=controllers,
                      reporter=reporter, resume=r, callbacks=callbacks, dist=dist)
    root = run / "checkpoints"
    if root.is_dir() and dist.is_main:
        ckpt.clean_stale(root)
        ckpt.set_aside(run, r["skipped"], r["dir"])
    out = _finish(trainer, reporter)
    dist.close()
    return out


def sample_run(run_dir, prompt: str, tokens: int, temperature: float = 0.8,
               seed: int = 0) -> str:
    r = ckpt.load_checkpoint(run_dir)  # no optimizer or RNG needed
    ctx = r["state"]["config"]["ctx"]
    return generate(r["module"], r["tokenizer"], prompt, tokens, ctx, temperature, seed)


def evaluate_run(run_dir, data: str | None = None) -> dict:
    """Validation loss and perplexity of a run's latest checkpoint (on `data` if given)."""
    r = ckpt.load_checkpoint(run_dir)
    cfg = from_dict(r["state"]["config"], {"source": data})
    torch.set_num_threads(cfg.threads)
    _, stream = prepare_data(cfg, r["module"].morph_graph, r["tokenizer"])
    model = r["module"].eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for x, y in stream.iter_eval_batches("val", cfg.batch, cfg.ctx,
                                             max_batches=cfg.eval_batches):
            logits = model(x)
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
            total, n = total + loss.item() * y.numel(), n + y.numel()
    val = total / max(n, 1)
    return {"step": r["state"]["step"], "val_loss": val, "val_ppl": math.exp(min(val, 50)),
            "params": sum(p.numel() for p in model.parameters()), "tokens": n}
