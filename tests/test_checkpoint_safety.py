"""Checkpoints: nothing in a run directory is unpickled (planted code never runs), damaged
files are one-line errors naming the file with the checkpoint left untouched, a damaged latest
checkpoint falls back to the previous one, stale temp dirs are removed, and an existing run is
never overwritten without --force."""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from morphdsl.cli import main
from morphdsl.train import resume, train_spec
from morphdsl.train.checkpoint import load_checkpoint
from morphdsl.train.loop import read_jsonl
from tests.test_train import _env, cache, spec  # noqa: F401

FILES = ["model.safetensors", "spec.morph", "optimizer.safetensors", "optimizer.json",
         "rng.safetensors", "rng.json", "state.json", "tokenizer.json", "meta.json"]
TRAINING_ONLY = {"optimizer.safetensors", "optimizer.json", "rng.safetensors", "rng.json"}
COMMANDS = {"eval": lambda run: ["eval", run, "--json"],
            "sample": lambda run: ["sample", run, "--tokens", "4"],
            "resume": lambda run: ["train", "--resume", run, "--quiet"]}


class Payload:
    """Unpickling this creates the marker file: proof that a file was unpickled."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def base_run(tmp_path_factory, cache):  # noqa: F811
    """A 20-step run with checkpoints at steps 10 and 20 (both kept)."""
    root = tmp_path_factory.mktemp("base")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MORPHDSL_CACHE", str(cache))
        mp.setenv("HF_DATASETS_OFFLINE", "1")
        mp.setenv("HF_HUB_OFFLINE", "1")
        s = spec(root, "")
        train_spec(s, root / "run", {"steps": 20, "sample_tokens": 0})
    return root / "run", s


@pytest.fixture
def run(base_run, tmp_path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(base_run[0], dst, symlinks=True)
    return dst


def ckpts(run: Path) -> list[Path]:
    return sorted((run / "checkpoints").glob("step-*"))


def digest(run: Path) -> dict:
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((run / "checkpoints").rglob("*")) if p.is_file()}


def invoke(capsys, argv) -> tuple[int, str, str]:
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(err: str, name: str):
    lines = err.strip().splitlines()
    assert "Traceback" not in err and "internal error" not in err, err
    assert lines[0].startswith("error: ") and name in lines[0], err
    assert len(lines) <= 2 and (len(lines) == 1 or lines[1].startswith("  hint:")), err


def test_two_checkpoints_kept_and_no_pickle_files(base_run):
    run = base_run[0]
    assert [p.name for p in ckpts(run)] == ["step-000010", "step-000020"]
    assert (run / "checkpoints/latest").resolve().name == "step-000020"
    for d in ckpts(run):
        assert sorted(p.name for p in d.iterdir()) == sorted(FILES)
        for f in d.iterdir():  # safetensors, JSON or text: no pickle, no torch.save zip
            if f.suffix == ".safetensors":
                with safe_open(str(f), "pt") as st:
                    assert all(st.get_tensor(k).dtype != torch.int64 for k in st.keys())
            elif f.suffix == ".json":
                assert isinstance(json.loads(f.read_text()), dict)
            else:
                assert "\nspec tiny\n" in f.read_text()


@pytest.mark.parametrize("name", FILES)
def test_planted_code_in_any_checkpoint_file_never_runs(run, tmp_path, capsys, name):
    marker = tmp_path / "PWNED"
    blobs = [pickle.dumps(Payload(str(marker)))]
    for d in ckpts(run):  # in every checkpoint, so there is nothing to fall back to
        torch.save(Payload(str(marker)), d / name)  # a torch.save zip of the payload
        (d / "optimizer.pt").write_bytes(blobs[0])  # old-format pickle names, planted too
        (d / "rng.pt").write_bytes(blobs[0])
    for variant in ("zip", "raw"):
        if variant == "raw":
            for d in ckpts(run):
                (d / name).write_bytes(blobs[0])
        before = digest(run)
        for cmd, argv in COMMANDS.items():
            rc, out, err = invoke(capsys, argv(str(run)))
            assert not marker.exists(), f"{cmd} unpickled {name}"
            if cmd != "resume" and name in TRAINING_ONLY:
                assert rc == 0, err  # eval and sample never read the optimizer or RNG
            else:
                assert rc == 1, (cmd, err)
                assert_one_line_error(err, f"step-000020/{name}")
            assert digest(run) == before, f"{cmd} changed the checkpoint"


DAMAGE = {
    "truncated weights": ("model.safetensors", lambda p: p.write_bytes(p.read_bytes()[:500]),
                          "not a readable safetensors file"),
    "spec no longer matches": ("spec.morph",
                               lambda p: p.write_text(p.read_text().replace("hidden = 64",
                                                                            "hidden = 80")),
                               "does not match spec.morph"),
    "spec does not parse": ("spec.morph", lambda p: p.write_text("model {\n  tok: embed(\n"),
                            "does not build"),
    "missing state": ("state.json", lambda p: p.unlink(), "missing"),
    "garbage state": ("state.json", lambda p: p.write_text('{"step": "ten"}'), "'step'"),
    "garbage tokenizer": ("tokenizer.json", lambda p: p.write_bytes(b"\x00\xff" * 50),
                          "not valid JSON"),
    "missing optimizer": ("optimizer.safetensors", lambda p: p.unlink(), "missing"),
    "optimizer shapes": ("optimizer.json",
                         lambda p: p.write_text(p.read_text().replace("blocks.0.mlp.fc.weight",
                                                                      "nope.weight")),
                         "not a parameter"),
    "garbage rng": ("rng.json", lambda p: p.write_text('{"version": 1, "python": [3, [1], null]}'),
                    "not a Python random state"),
    "bad generator state": ("rng.safetensors", lambda p: _bad_generator(p),
                            "not a CPU random generator state"),
}


def _bad_generator(p: Path):
    from safetensors.torch import save_file

    save_file({"torch": torch.zeros(7, dtype=torch.uint8),
               "data": torch.zeros(5056, dtype=torch.uint8)}, str(p))


@pytest.mark.parametrize("case", DAMAGE)
def test_damaged_checkpoint_is_one_line_error_and_left_untouched(run, capsys, case):
    name, damage, words = DAMAGE[case]
    for d in ckpts(run):
        damage(d / name)
    before = digest(run)
    for cmd, argv in COMMANDS.items():
        rc, out, err = invoke(capsys, argv(str(run)))
        if cmd != "resume" and name in TRAINING_ONLY:
            assert rc == 0, err
        else:
            assert rc == 1, (cmd, err)
            named = "model.safetensors" if case == "spec no longer matches" else name
            assert_one_line_error(err, f"step-000020/{named}")
            assert words in err.splitlines()[0], err
        assert digest(run) == before


def test_damaged_latest_falls_back_to_previous_and_says_so(run, base_run, capsys):
    latest = run / "checkpoints/step-000020/model.safetensors"
    latest.write_bytes(latest.read_bytes()[:1000])
    before = digest(run)
    rc, out, err = invoke(capsys, ["eval", str(run), "--json"])
    assert rc == 0 and '"step": 10' in out
    assert "warning: checkpoint step-000020 is damaged" in err and "using step-000010" in err
    assert "model.safetensors" in err and digest(run) == before  # eval changes nothing
    # resuming trains on from step 10 and reproduces the original losses exactly
    full = [r["loss"] for r in read_jsonl(base_run[0] / "metrics.jsonl")]
    resume(run)
    assert [r["loss"] for r in read_jsonl(run / "metrics.jsonl")] == full
    kept = run / "checkpoints/damaged-step-000020/model.safetensors"  # moved aside, not deleted
    assert hashlib.sha256(kept.read_bytes()).hexdigest() == \
        before["checkpoints/step-000020/model.safetensors"]
    assert load_checkpoint(run)["state"]["step"] == 20


def test_stale_temp_dirs_of_killed_writes_are_removed(run, capsys):
    root = run / "checkpoints"
    dead = root / ".tmp-step-000030-4194303"  # above any pid in use: its writer is gone
    dead.mkdir()
    (dead / "model.safetensors").write_bytes(b"partial")
    os.symlink("step-000020", root / ".latest-4194303")
    live = root / f".tmp-step-000030-{os.getppid()}"  # a live process may still be writing it
    live.mkdir()
    assert main(["eval", str(run)]) == 0 and dead.exists()  # reading never cleans up
    capsys.readouterr()
    resume(run, {"steps": 21})
    assert not dead.exists() and not (root / ".latest-4194303").is_symlink()
    assert live.exists()
    assert [p.name for p in ckpts(run)] == ["step-000020", "step-000021"]


def test_existing_run_needs_force_or_resume(run, base_run, capsys):
    before = digest(run)
    rc, _, err = invoke(capsys, ["train", base_run[1], "--out", str(run), "--steps", "3"])
    assert rc == 1 and "already holds a training run" in err
    assert "--force" in err and "--resume" in err and digest(run) == before
    rc, _, err = invoke(capsys, ["train", base_run[1], "--out", str(run), "--steps", "3",
                                 "--force", "--quiet"])
    assert rc == 0, err
    assert load_checkpoint(run)["state"]["step"] == 3 and [p.name for p in ckpts(run)] == [
        "step-000003"]
    assert [r["step"] for r in read_jsonl(run / "metrics.jsonl")] == [1, 2, 3]
    rc, _, err = invoke(capsys, ["train", "--resume", str(run), "--force"])
    assert rc == 2 and "give one" in err


def test_old_pickle_checkpoint_is_refused_for_resume_but_evaluates(run, capsys):
    for d in ckpts(run):
        for stem in ("optimizer", "rng"):
            for ext in ("safetensors", "json"):
                (d / f"{stem}.{ext}").unlink()
            (d / f"{stem}.pt").write_bytes(b"\x80\x04N.")  # a pickle of None
    rc, _, err = invoke(capsys, ["train", "--resume", str(run)])
    assert rc == 1 and "optimizer.pt" in err and "never loaded" in err
    assert main(["eval", str(run)]) == 0
