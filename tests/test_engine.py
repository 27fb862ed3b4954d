"""The training engine: callbacks see its events, a failed growth changes nothing, the
optimizer factory (any torch.optim optimizer or an importable class, with state transfer on
growth), and clear errors for bad optimizer / callback settings."""
from __future__ import annotations

import pytest
import torch

import morphdsl
from morphdsl.cli import main
from morphdsl.errors import MorphError
from morphdsl.train import Callback, GrowthAction, resume, train_spec
from morphdsl.train.checkpoint import load_checkpoint
from morphdsl.train.config import from_sections
from morphdsl.train.loop import read_jsonl
from morphdsl.train.optim import make_optimizer, state_by_name
from tests.test_train import _env, cache, spec  # noqa: F401

FAST = {"sample_tokens": 0}


def edit(path: str, old: str, new: str) -> str:
    """Replace `old` by `new` in the spec file at `path`; returns the new text."""
    text = open(path).read()
    assert old in text
    text = text.replace(old, new)
    with open(path, "w") as f:
        f.write(text)
    return text


def metrics(run):
    """metrics.jsonl without its timing columns."""
    return [{k: v for k, v in r.items() if k not in ("tok_s", "train_s")}
            for r in read_jsonl(run / "metrics.jsonl")]


class Recorder(Callback):
    def __init__(self):
        self.seen = []

    def on_train_start(self, engine):
        self.seen.append(("start", engine.step))

    def on_step(self, engine, row):
        self.seen.append(("step", row["step"]))

    def on_decide(self, engine, state, actions):
        if actions:
            self.seen.append(("decide", state.step, [a.op for a in actions]))

    def on_growth(self, engine, event):
        self.seen.append(("growth", event["step"], event["op"], engine.n_params()))

    def on_eval(self, engine, row):
        self.seen.append(("eval", row["step"], round(row["val_loss"], 6)))

    def on_checkpoint(self, engine, path):
        self.seen.append(("checkpoint", engine.step, path.name))

    def on_train_end(self, engine):
        self.seen.append(("end", engine.step))


def test_custom_callback_sees_the_events(tmp_path):
    rec = Recorder()
    run = tmp_path / "run"
    train_spec(spec(tmp_path, "  step(6) -> widen_mlp(blocks.*.mlp, by = 8)"), run,
               {"steps": 12, **FAST}, callbacks=[rec])
    kinds = [e[0] for e in rec.seen]
    assert rec.seen[0] == ("start", 0) and rec.seen[-1] == ("end", 12)
    assert [e[1] for e in rec.seen if e[0] == "step"] == list(range(1, 13))
    assert ("decide", 6, ["widen_mlp"]) in rec.seen
    (g,) = [e for e in rec.seen if e[0] == "growth"]
    assert g[:3] == ("growth", 6, "widen_mlp") and g[3] == read_jsonl(run / "events.jsonl")[0][
        "params_after"]
    vals = {r["step"]: round(r["val_loss"], 6) for r in read_jsonl(run / "metrics.jsonl")
            if "val_loss" in r}
    assert [e[1:] for e in rec.seen if e[0] == "eval"] == list(vals.items()) == [
        (10, vals[10]), (12, vals[12])]
    assert [e[1:] for e in rec.seen if e[0] == "checkpoint"] == [
        (10, "step-000010"), (12, "step-000012")]
    assert kinds.index("growth") < kinds.index("eval") < kinds.index("checkpoint")


def test_callback_by_importable_name(tmp_path, monkeypatch):
    mod = tmp_path / "my_callbacks.py"
    mod.write_text("import json\nfrom morphdsl.train import Callback\n"
                   "class Steps(Callback):\n"
                   "    def on_step(self, engine, row):\n"
                   "        with open(engine.run_dir / 'seen.txt', 'a') as f:\n"
                   "            f.write(f\"{row['step']} {row['loss']}\\n\")\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    run = tmp_path / "run"
    assert main(["train", spec(tmp_path, ""), "--out", str(run), "--steps", "5", "--quiet",
                 "--callback", "my_callbacks:Steps"]) == 0
    seen = (run / "seen.txt").read_text().split()
    assert seen[0::2] == ["1", "2", "3", "4", "5"]
    assert [float(x) for x in seen[1::2]] == [r["loss"] for r in read_jsonl(run / "metrics.jsonl")]
    assert load_checkpoint(run)["state"]["config"]["callbacks"] == ["my_callbacks:Steps"]


class BadGrowth:
    """A controller that asks for rewrites that cannot apply (no such layer; no such op)."""

    def __init__(self):
        self.fired = []

    def decide(self, state):
        if state.event == "step" and state.step in (4, 7) and state.step not in self.fired:
            self.fired.append(state.step)
            return [GrowthAction("widen_mlp", ["blocks.9.mlp"], {"by": 8}, reason="bad target"),
                    GrowthAction("grow_wings", ["blocks"], {}, reason="no such op")]
        return []

    def state_dict(self):
        return {"fired": self.fired}

    def load_state_dict(self, d):
        self.fired = list(d["fired"])


def test_failed_growth_leaves_the_run_exactly_as_without_it(tmp_path):
    from morphdsl.train.growth import RuleController

    s = spec(tmp_path)  # the spec's own rule widens at step 20
    rules = morphdsl.build(s).sections["grow"]
    plain = train_spec(s, tmp_path / "plain", FAST)
    bad = train_spec(s, tmp_path / "bad", FAST, controllers=[RuleController(rules), BadGrowth()])
    assert metrics(tmp_path / "plain") == metrics(tmp_path / "bad")  # bit for bit
    assert (plain["growth_failed"], bad["growth_failed"]) == (0, 4)  # the summary says so
    assert plain["growth_events"] == bad["growth_events"] >= 1
    good = [e for e in read_jsonl(tmp_path / "plain/events.jsonl")]
    events = read_jsonl(tmp_path / "bad/events.jsonl")
    assert [e for e in events if e["type"] == "growth"] == good
    failed = [e for e in events if e["type"] == "growth_failed"]
    assert [(e["step"], e["op"]) for e in failed] == [
        (4, "widen_mlp"), (4, "grow_wings"), (7, "widen_mlp"), (7, "grow_wings")]
    assert "blocks.9.mlp" in failed[0]["error"] and "grow_wings" in failed[1]["error"]
    a, b = load_checkpoint(tmp_path / "plain", training=True), \
        load_checkpoint(tmp_path / "bad", training=True)
    for k, v in a["module"].state_dict().items():
        assert torch.equal(v, b["module"].state_dict()[k]), k
    for name, st in a["optimizer"]["state"].items():
        for k, v in st.items():
            assert torch.equal(v, b["optimizer"]["state"][name][k]) if torch.is_tensor(v) \
                else v == b["optimizer"]["state"][name][k]


def test_growth_failure_is_reported_on_the_console(tmp_path, capsys):
    from morphdsl.train.progress import Reporter

    train_spec(spec(tmp_path, ""), tmp_path / "run", {"steps": 8, **FAST},
               controllers=[BadGrowth()], reporter=Reporter(live=False))
    out = capsys.readouterr().out
    assert "step 4: growth widen_mlp(blocks.9.mlp) failed and was skipped" in out


# --------------------------------------------------------------------------- optimizers

def test_sgd_with_momentum_trains_grows_and_resumes_exactly(tmp_path):
    grow = "  step(6) -> widen_mlp(blocks.*.mlp, by = 8), add_head(blocks.0.attn, n = 1)"
    s = spec(tmp_path, grow)
    edit(s, "  lr = 3e-3\n", "  lr = 0.05\n  optimizer = \"sgd\"\n"
                              "  optimizer_momentum = 0.9\n  optimizer_nesterov = true\n")
    full = train_spec(s, tmp_path / "full", {"steps": 14, **FAST})
    train_spec(s, tmp_path / "cut", {"steps": 14, "stop_at": 8, **FAST})
    resume(tmp_path / "cut")
    assert metrics(tmp_path / "full") == metrics(tmp_path / "cut")
    rows = read_jsonl(tmp_path / "full/metrics.jsonl")
    assert rows[-1]["loss"] < rows[0]["loss"] and full["growth_events"] == 2
    r = load_checkpoint(tmp_path / "full", training=True)
    assert {k for st in r["optimizer"]["state"].values() for k in st} == {"momentum_buffer"}
    assert r["state"]["config"]["optimizer_args"] == {"momentum": 0.9, "nesterov": True}


def _opt_cfg(tmp_path, **train):
    g = morphdsl.build(spec(tmp_path, ""))
    return g, from_sections({**g.sections, "train": {**g.sections["train"], **train}})


@pytest.mark.parametrize("name,extra,key", [
    ("sgd", {"optimizer_momentum": 0.9}, "momentum_buffer"),
    ("torch.optim.RMSprop", {"optimizer_alpha": 0.9}, "square_avg"),
    ("adamw", {}, "exp_avg"),
])
def test_optimizer_state_follows_the_slices_on_growth(tmp_path, name, extra, key):
    """State tensors shaped like a parameter follow its slices (new ones start at zero)."""
    from morphdsl.train.growth import apply_growth

    g, cfg = _opt_cfg(tmp_path, optimizer=name, **extra)
    torch.manual_seed(0)
    model = morphdsl.compile(g)
    opt = make_optimizer(model, cfg)
    assert type(opt).__name__.lower() == name.split(".")[-1].lower()
    x = torch.randint(0, 256, (2, 8))
    model(x).square().mean().backward()
    opt.step()
    old = state_by_name(model, opt)
    new, states = apply_growth(model, opt, "widen_mlp", {"target": "blocks.0.mlp", "by": 8})
    w = "blocks.0.mlp.fc.weight"  # (hidden, d): 8 new hidden units, appended
    before, after = old[w][key], states[w][key]
    assert after.shape[0] == before.shape[0] + 8
    assert torch.equal(after[:before.shape[0]], before) and not after[before.shape[0]:].any()


def test_optimizer_by_importable_class(tmp_path, monkeypatch):
    (tmp_path / "my_opt.py").write_text(
        "import torch\n"
        "class Signum(torch.optim.SGD):\n"
        "    '''SGD on the sign of the gradient (momentum state like SGD's).'''\n"
        "    def step(self, closure=None):\n"
        "        for g in self.param_groups:\n"
        "            for p in g['params']:\n"
        "                if p.grad is not None:\n"
        "                    p.grad.sign_()\n"
        "        return super().step(closure)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    s = spec(tmp_path, "  step(4) -> widen_mlp(blocks.*.mlp, by = 8)")
    edit(s, "  lr = 3e-3\n", "  lr = 1e-3\n  optimizer = \"my_opt:Signum\"\n"
                              "  optimizer_momentum = 0.5\n")
    train_spec(s, tmp_path / "run", {"steps": 8, **FAST})
    r = load_checkpoint(tmp_path / "run", training=True)
    fc = [st["momentum_buffer"] for n, st in r["optimizer"]["state"].items() if "mlp" in n]
    assert fc and all(torch.isfinite(t).all() for t in fc)
    assert read_jsonl(tmp_path / "run/events.jsonl")[0]["op"] == "widen_mlp"


@pytest.mark.parametrize("setting,message,hint", [
    ('optimizer = "sgdd"', "unknown optimizer 'sgdd'", "did you mean 'sgd'?"),
    ('optimizer = "no_such_pkg.mod:Opt"', "cannot import optimizer 'no_such_pkg.mod:Opt'",
     "package.module:Class"),
    ('optimizer = "json:JSONDecoder"', "'json:JSONDecoder' is not a torch.optim.Optimizer", None),
    ('optimizer = "sgd"\n  optimizer_momentun = 0.9', "optimizer SGD has no argument 'momentun'",
     "did you mean 'optimizer_momentum'?"),
    ('optimizer = "sgd"\n  optimizer_momentum = -1', "optimizer SGD refused its arguments",
     None),
    ("optimizer_lr = 0.1", "'optimizer_lr' cannot be set", "set the train setting 'lr'"),
    ('device = "tpu"', "unknown device 'tpu'", "auto, cpu, cuda"),
    ('dtype = "int8"', "unknown dtype 'int8'", "bfloat16"),
    ("compile = 1", "'compile' must be true or false", None),
    ('callbacks = ["nope"]', "unknown callback 'nope'", "tensorboard"),
])
def test_bad_engine_settings_are_errors_at_their_line(tmp_path, capsys, setting, message, hint):
    s = spec(tmp_path, "", name="bad.morph")
    text = edit(s, "  threads = 1\n", f"  threads = 1\n  {setting}\n")
    line = text.splitlines().index("  " + setting.split("\n")[-1].strip()) + 1
    assert main(["train", s, "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"bad.morph:{line}:3: error: " in err and message in err
    assert hint is None or hint in err
    assert not (tmp_path / "run").exists()


def test_bad_engine_flags_are_one_line_errors(tmp_path, capsys):
    s = spec(tmp_path, "")
    assert main(["train", s, "--out", str(tmp_path / "r"), "--optimizer", "lamb"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: unknown optimizer 'lamb'") and "Traceback" not in err
    assert main(["train", s, "--out", str(tmp_path / "r"), "--device", "gpu"]) == 1
    assert "unknown device 'gpu'" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["train", s, "--out", str(tmp_path / "r"), "--device", "cuda"]) == 1
        err = capsys.readouterr().err
        assert "device 'cuda' was asked for, but CUDA is not available" in err
        assert "--device cpu" in err and "Traceback" not in err
    train_spec(s, tmp_path / "ok", {"steps": 2, **FAST})
    assert main(["train", "--resume", str(tmp_path / "ok"), "--optimizer", "sgd"]) == 2
    assert "--optimizer cannot change when resuming" in capsys.readouterr().err


def test_batch_must_split_over_the_processes(tmp_path, monkeypatch, capsys):
    s = spec(tmp_path, "", name="b.morph")
    edit(s, "  batch = 8\n", "  batch = 7\n")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert main(["train", s, "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "b.morph:" in err and "batch = 7 is not divisible by the 2 processes" in err
    assert "global batch" in err



def test_docs_training_examples_build_and_validate():
    """```morph blocks in docs/training.md build and their train settings are valid."""
    import re
    from pathlib import Path

    doc = Path(__file__).resolve().parents[1] / "docs" / "training.md"
    blocks = re.findall(r"```morph\n(.*?)```", doc.read_text(), re.S)
    assert len(blocks) == 2
    for body in blocks:
        g = morphdsl.build(morphdsl.parse(body, str(doc)))
        cfg = from_sections(g.sections, {}, g.setting_spans)
        assert cfg.optimizer in ("adamw", "sgd") and cfg.dtype in ("bfloat16", "float32")


THREE = ("  step(4) -> add_head(blocks.0.attn, n = 1)\n  step(8) -> widen_mlp(blocks.*.mlp, by = 16)\n"
         "  step(12) -> insert_block(blocks, at = 1)")


def test_growth_in_training_stamps_each_slice_with_its_rewrite_and_step(tmp_path):
    """add_head + widen_mlp + insert_block inside a run: every new slice names its rewrite and
    the training step; the stamps survive checkpoint -> resume -> more steps, and emit ->
    recompile (the names are the spec's paths)."""
    s = spec(tmp_path, grow=THREE)
    train_spec(s, tmp_path / "run", {**FAST, "steps": 14, "checkpoint_every": 14})
    meta = load_checkpoint(tmp_path / "run")["meta"]

    def origins(name):
        return {(sl.op, sl.step) for sl in meta.slices(name)}

    assert origins("blocks.0.attn.qkv.weight") == {("init", 0), ("add_head", 4)}
    assert origins("blocks.0.mlp.fc.weight") == {("init", 0), ("widen_mlp", 8)}
    assert origins("blocks.1.attn.qkv.weight") == {("insert_block", 12)}  # a whole new block
    assert origins("tok.weight") == {("init", 0)}
    resume(tmp_path / "run", {**FAST, "steps": 18})
    r = load_checkpoint(tmp_path / "run")
    assert r["state"]["step"] == 18 and r["meta"] == meta
    back = morphdsl.compile(morphdsl.emit(r["module"].morph_graph))
    assert set(dict(back.named_parameters())) == set(r["meta"].params)


def test_quiet_prints_only_the_summary_line(tmp_path, capsys):
    assert main(["train", spec(tmp_path), "--out", str(tmp_path / "run"), "--steps", "6", "--quiet"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("step 6: final val loss ") and "params" in out[0]
