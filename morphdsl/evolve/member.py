"""One member's generation: start it (from a spec) or continue it (from its parent's checkpoint,
mutated or bred by crossover), train it to `stop_at`, evaluate, and write `result.json`.

    result = run_generation(job)     # job: a JSON-able dict (population.py makes them)

A job is a pure function of its inputs: the parent checkpoints are never written, the output
directory is its own, and the training RNG comes from the checkpoint (or the seed), so a job
that is run again — after a worker died, or after the driver was killed — computes the same
member bit for bit. A finished job (its result.json present) is not run again.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import torch

RESULT = "result.json"
_DATA: dict = {}  # data key -> (tokenizer, stream): a worker loads a corpus once


def _data(cfg, graph, tokenizer=None):
    """(tokenizer, stream) of a job, loaded once per process; a checkpoint's tokenizer that
    differs from the cached one gets a stream of its own."""
    from ..train.data import prepare_data

    key = (cfg.source, cfg.tokenizer, cfg.vocab_size, cfg.max_docs, cfg.val_fraction)
    if key not in _DATA:
        _DATA[key] = prepare_data(cfg, graph, tokenizer)
    tok, stream = _DATA[key]
    if tokenizer is not None and tokenizer is not tok:
        probe = tok.decode(list(range(tok.vocab_size)))
        if tokenizer.vocab_size != tok.vocab_size or tokenizer.encode(probe) != tok.encode(probe):
            return prepare_data(cfg, graph, tokenizer)
    return tok, stream


def _write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True))
    os.replace(tmp, path)


def read_result(out) -> dict | None:
    p = Path(out) / RESULT
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def _load(run_dir, cfg_over: dict):
    """A parent checkpoint as the engine's resume dict, and its config with `cfg_over`."""
    from ..train import checkpoint as ckpt
    from ..train.config import from_dict

    r = ckpt.load_checkpoint(run_dir, training=True)
    cfg = from_dict({**r["state"]["config"], "stop_at": None, "stop_at_flops": None}, cfg_over)
    return r, cfg


def _optimizer(r, cfg):
    from ..train.optim import load_state_by_name, make_optimizer

    opt = make_optimizer(r["module"], cfg)
    load_state_by_name(r["module"], opt, r["optimizer"]["state"])
    return opt


class _Growths:
    """The engine's growth events during a job (a mutation's measured change)."""

    def __init__(self):
        self.events: list = []

    def on_growth(self, engine, event):
        self.events.append(event)

    def on_growth_failed(self, engine, event):
        self.events.append(event)


def _mutate(engine, growths: _Growths, mutation: dict) -> dict:
    """Apply a structural mutation the way training grows: `engine.grow` (one transaction, new
    units seeded by (seed, step), the identity probe on the fixed batch, the event in the
    member's events.jsonl); its measured output change."""
    from ..rewrites import get_rewrite
    from ..train.growth import GrowthAction

    engine.grow(GrowthAction(mutation["op"], kwargs=dict(mutation["args"]),
                             reason=f"mutation {mutation['name']}"))
    engine.snapshot = engine._snap()  # a rollback returns to the mutated member
    ev = growths.events[-1]
    if ev["type"] == "growth_failed":
        return {"exact": get_rewrite(mutation["op"]).exact, "failed": ev["error"]}
    return {"exact": get_rewrite(mutation["op"]).exact, "max_abs_change": ev["max_verify_error"],
            "loss_before": ev["loss_before"], "loss_after": ev["loss_after"]}


def _breed(r, cfg, mate_dir, cross: dict) -> dict:
    """Replace r's module (and optimizer state) by a crossover child of it and the mate's
    checkpoint; the engine builds the child's optimizer from that state."""
    import random

    from .crossover import crossover

    m, mcfg = _load(mate_dir, {})
    child = crossover(r["module"], m["module"], random.Random(cross["seed"]),
                      opt_a=_optimizer(r, cfg), opt_b=_optimizer(m, mcfg), p=cross.get("p", 0.5))
    r["module"] = child.module
    r["optimizer"] = {"state": child.opt_state}
    return {"taken": {str(k): v for k, v in child.taken.items()}, "notes": child.notes}


def _engine(job: dict):
    """The Engine for a job, its model built, mutated or bred as the job says."""
    import morphdsl

    from ..train.config import from_sections
    from ..train.engine import Engine

    out = Path(job["out"])
    over = dict(job.get("overrides") or {})
    report: dict = {}
    if job.get("spec") is not None:  # a new member: trained from its spec
        graph = morphdsl.build(job["spec"])
        cfg = from_sections(graph.sections, {**over, "seed": job["seed"]}, graph.setting_spans)
        torch.set_num_threads(cfg.threads)
        tok, stream = _data(cfg, graph)
        torch.manual_seed(cfg.seed)
        module = morphdsl.compile(graph)
        return Engine(module, cfg, out, tokenizer=tok, stream=stream), report
    r, cfg = _load(job["parent"], over)
    torch.set_num_threads(cfg.threads)
    tok, stream = _data(cfg, r["module"].morph_graph, r["tokenizer"])
    if job.get("mate"):
        report["crossover"] = _breed(r, cfg, job["mate"], job["crossover"])
    r["state"]["config"] = cfg.to_dict()
    growths = _Growths()
    engine = Engine(r["module"], cfg, out, tokenizer=tok, stream=stream, resume=r,
                    callbacks=[growths])
    if job.get("data_seed") is not None:  # a child draws its own batches: siblings diverge
        engine.gen.manual_seed(job["data_seed"])
    mut = job.get("mutation")
    if mut and mut.get("op"):
        report["mutation"] = _mutate(engine, growths, mut)
    return engine, report


def run_generation(job: dict) -> dict:
    """Run one job (see the module doc); the member's result (also in out/result.json)."""
    done = read_result(job["out"])
    if done is not None:
        return done
    out = Path(job["out"])
    if out.exists():  # a partial attempt (a dead worker): start the job over
        shutil.rmtree(out)
    out.mkdir(parents=True)
    _die_once(job)
    t0 = time.time()
    engine, report = _engine(job)
    flops0 = engine.flops
    summary = engine.run()
    res = {"out": str(out), "val_loss": summary["val_loss"], "params": summary["params"],
           "step": summary["step"], "flops": summary["flops"],
           "flops_spent": summary["flops"] - flops0, "lr": engine.cfg.lr,
           "time_s": time.time() - t0, "blocks": _blocks(engine.model.morph_graph), **report}
    _write_json(out / RESULT, res)
    return res


def _blocks(g) -> int | None:
    from .mutations import repeat_group

    grp = repeat_group(g, {})
    return grp[1] if grp else None


def _die_once(job: dict) -> None:
    """Test hook: the first attempt of a job with `die_once` kills its own process (a worker
    lost mid-generation); the retry finds the marker and runs."""
    marker = job.get("die_once")
    if marker and not Path(marker).exists():
        Path(marker).write_text("died")
        os._exit(1)
