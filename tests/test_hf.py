"""Hugging Face interop (morphdsl/hf): tiny random GPT-2 and Llama models built from configs with
`transformers` (no download), saved locally, imported, grown, exported and loaded back.

- import equals HF's logits within 1e-5 for several shapes (GQA on/off, tied/untied heads,
  biases on/off, head_dim != hidden / heads; GPT-2, Llama, Qwen2);
- import -> every applicable rewrite -> unchanged logits -> export -> HF loads it and equals the
  grown model; what HF cannot express is a clear error;
- import -> export of an unchanged model gives the original tensors, bit for bit;
- bad input is a one-line error naming the file and field (exit 1, no traceback);
- the core never imports transformers.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")

import morphdsl  # noqa: E402
from morphdsl import grow_model  # noqa: E402
from morphdsl import hf  # noqa: E402
from morphdsl.cli import main  # noqa: E402
from morphdsl.errors import MorphError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
V = 64

GPT2 = {
    "gpt2_tied": dict(n_embd=32, n_layer=2, n_head=4, n_positions=32),
    "gpt2_untied_inner": dict(n_embd=32, n_layer=1, n_head=2, n_positions=16, n_inner=48,
                              tie_word_embeddings=False),
}
LLAMA = {
    "llama_gqa": dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2),
    "llama_mha_tied_bias": dict(hidden_size=32, intermediate_size=40, num_hidden_layers=1,
                                num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=True,
                                attention_bias=True, mlp_bias=True),
    "llama_head_dim": dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2,
                           num_key_value_heads=1, head_dim=24, rope_theta=500.0),
    # Qwen2: Llama with q/k/v biases and none on o_proj (`attention(proj_bias = false)`)
    "qwen2_tied": dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, tie_word_embeddings=True),
}


def _quiet():
    transformers.logging.set_verbosity_error()
    try:
        transformers.utils.logging.disable_progress_bar()
    except AttributeError:
        pass


def _make(kind, kw, d: Path):
    _quiet()
    torch.manual_seed(hash(d.name) % 1000)
    if kind == "gpt2":
        cfg = transformers.GPT2Config(vocab_size=V, bos_token_id=0, eos_token_id=0, **kw)
        m = transformers.GPT2LMHeadModel(cfg)
    else:
        kw = dict(kw)
        theta = kw.pop("rope_theta", None)
        cls = transformers.Qwen2Config if d.name.startswith("qwen2") else transformers.LlamaConfig
        cfg = cls(vocab_size=V, max_position_embeddings=64, bos_token_id=0, eos_token_id=0, **kw)
        if theta is not None:  # transformers 4 (rope_theta) and 5 (rope_parameters)
            cfg.rope_theta = theta
            if isinstance(getattr(cfg, "rope_parameters", None), dict):
                cfg.rope_parameters["rope_theta"] = theta
        m = (transformers.Qwen2ForCausalLM if d.name.startswith("qwen2") else transformers.LlamaForCausalLM)(cfg)
    with torch.no_grad():  # move gains and biases off their init so a wrong mapping shows
        for p in m.parameters():
            p.add_(0.02 * torch.randn_like(p))
    m.save_pretrained(d)
    return m.eval()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    out = {}
    for name, kw in {**GPT2, **LLAMA}.items():
        out[name] = (root / name, _make("gpt2" if name.startswith("gpt2") else "llama", kw, root / name))
    return out


def logits(m, idx):
    with torch.no_grad():
        y = m(idx)
    return y.logits if hasattr(y, "logits") else y


IDX = torch.randint(0, V, (2, 13), generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("name", sorted({**GPT2, **LLAMA}))
def test_import_equals_hf(models, name):
    d, ref = models[name]
    m = hf.load(d).eval()
    torch.testing.assert_close(logits(m, IDX), logits(ref, IDX), rtol=0, atol=1e-5)
    text, _ = hf.import_dir(d)
    assert "repeat(layers)" in text and text.count("block ") == 1  # readable: one block, a repeat
    assert morphdsl.build(morphdsl.parse(text)).n_params() == sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("name", sorted({**GPT2, **LLAMA}))
def test_round_trip_gives_the_original_tensors(models, name, tmp_path):
    from safetensors.torch import load_file

    d, _ = models[name]
    hf.save(hf.load(d), tmp_path / "out")
    a, b = load_file(str(d / "model.safetensors")), load_file(str(tmp_path / "out" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


GROWTHS = {
    "gpt2_tied": [("widen_mlp", {"target": "blocks.*.mlp", "by": 16}), ("insert_block", {"target": "blocks", "at": 1}),
                  ("widen_embed", {"factor": 2})],
    # (transformers needs hidden_size divisible by the heads, so heads grow by what keeps it)
    "llama_gqa": [("add_head", {"target": "blocks.*.attn", "n": 2}), ("widen_mlp", {"target": "blocks.*.mlp", "by": 8}),
                  ("insert_block", {"target": "blocks", "at": 2}), ("widen_embed", {"factor": 2})],
    "llama_mha_tied_bias": [("add_head", {"target": "blocks.*.attn", "n": 4, "kv": True}), ("widen_embed", {"factor": 2})],
    "qwen2_tied": [("add_head", {"target": "blocks.*.attn", "n": 2}), ("widen_mlp", {"target": "blocks.*.mlp", "by": 8})],
}


@pytest.mark.parametrize("name", sorted(GROWTHS))
def test_import_grow_export_loads_in_hf_with_the_grown_logits(models, name, tmp_path):
    d, ref = models[name]
    m = hf.load(d).eval()
    for op, args in GROWTHS[name]:
        out = grow_model(m, op, **args)
        assert out.reports[0].ok, (op, out.reports[0])
        m = out.module.eval()
    torch.testing.assert_close(logits(m, IDX), logits(ref, IDX), rtol=0, atol=1e-5)  # still the import
    hf.save(m, tmp_path / "grown")
    _quiet()
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "grown").eval()
    assert sum(p.numel() for p in back.parameters()) == sum(p.numel() for p in m.parameters())
    torch.testing.assert_close(logits(back, IDX), logits(m, IDX), rtol=0, atol=1e-5)


def test_what_hf_cannot_express_is_a_clear_error(models, tmp_path):
    d, _ = models["gpt2_tied"]
    m = hf.load(d)
    one = grow_model(m, "add_head", target="blocks.0.attn", n=1).module
    with pytest.raises(MorphError) as e:  # GPT-2 ties head_dim to n_embd / n_head
        hf.save(one, tmp_path / "x")
    assert "heads x head_dim = n_embd" in e.value.message and "widen_embed" in e.value.hint
    dl, _ = models["llama_gqa"]
    ml = hf.load(dl)
    uneven = grow_model(ml, "add_head", target="blocks.0.attn", n=2).module
    with pytest.raises(MorphError) as e:  # HF layers are all alike
        hf.save(uneven, tmp_path / "y")
    assert "blocks.1.attn" in e.value.message and "blocks.*" in e.value.hint
    odd = grow_model(ml, "add_head", target="blocks.*.attn", n=1).module  # 6 heads on width 32
    with pytest.raises(MorphError) as e:
        hf.save(odd, tmp_path / "w")
    assert "divisible" in e.value.message and "num_attention_heads" in e.value.message
    lanes = morphdsl.compile(str(ROOT / "specs" / "convex_lanes.morph"))
    with pytest.raises(MorphError) as e:
        hf.save(lanes, tmp_path / "z")
    assert "expected" in e.value.message or "no place" in e.value.message
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_import_check_grow_export(models, tmp_path, capsys):
    d, ref = models["llama_gqa"]
    spec, w = tmp_path / "m.morph", tmp_path / "m.safetensors"
    assert run_cli(capsys, "import", d, "-o", spec)[0] == 0 and w.is_file()
    assert run_cli(capsys, "check", spec)[0] == 0
    grown, gw = tmp_path / "g.morph", tmp_path / "g.safetensors"
    code, out, err = run_cli(capsys, "grow", spec, "--weights", w, "--op", "widen_mlp(blocks.*.mlp, by = 16)",
                             "-o", grown, "--save", gw)
    assert code == 0, err
    assert run_cli(capsys, "export", grown, "--weights", gw, "-o", tmp_path / "hfout")[0] == 0
    _quiet()
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hfout").eval()
    assert back.config.intermediate_size == 48 + 16 and back.config.max_position_embeddings == 64
    torch.testing.assert_close(logits(back, IDX), logits(ref, IDX), rtol=0, atol=1e-5)


def _truncate(d: Path):
    p = d / "model.safetensors"
    p.write_bytes(p.read_bytes()[:200])


def _unknown(d: Path):
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, "model_type": "bert"}))


def _shape(d: Path):
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, "n_inner": 64}))


def _pickle_only(d: Path):
    (d / "model.safetensors").rename(d / "pytorch_model.bin")


def _act(d: Path):
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, "activation_function": "quick_gelu"}))


@pytest.mark.parametrize("damage, says", [
    (lambda d: (d / "config.json").unlink(), "config.json: missing"),
    (_unknown, "config field `model_type` = 'bert' is not supported"),
    (_truncate, "model.safetensors: not a readable safetensors file"),
    (_shape, "but config.json says `blocks.0.mlp.fc.weight` is (64, 32)"),
    (_pickle_only, "pickle file"),
    (_act, "config field `activation_function` = \"quick_gelu\""),
    (lambda d: (d / "config.json").write_text("{ not json"), "config.json: not valid JSON"),
])
def test_bad_input_is_one_clear_line(models, tmp_path, capsys, damage, says):
    import shutil

    d = tmp_path / "bad"
    shutil.copytree(models["gpt2_tied"][0], d)
    damage(d)
    code, out, err = run_cli(capsys, "import", d, "-o", tmp_path / "x.morph")
    assert code == 1 and says in err, err
    assert "Traceback" not in err and err.splitlines()[0].startswith("error:")
    assert not (tmp_path / "x.morph").exists()
    code, _, err = run_cli(capsys, "import", tmp_path / "nowhere", "-o", tmp_path / "x.morph")
    assert code == 1 and "no such directory" in err


def test_mismatched_weights_for_export_are_an_error(models, tmp_path, capsys):
    d, _ = models["gpt2_tied"]
    spec = tmp_path / "m.morph"
    assert run_cli(capsys, "import", d, "-o", spec)[0] == 0
    other = tmp_path / "o.morph"
    assert run_cli(capsys, "import", models["gpt2_untied_inner"][0], "-o", other)[0] == 0
    code, _, err = run_cli(capsys, "export", spec, "--weights", tmp_path / "o.safetensors", "-o", tmp_path / "e")
    assert code == 1 and "the weights do not belong to this spec" in err and "Traceback" not in err


def test_hf_tokenizer_comes_along(models, tmp_path):
    import shutil

    from tokenizers import Tokenizer, models as tm, pre_tokenizers

    d = tmp_path / "withtok"
    shutil.copytree(models["gpt2_tied"][0], d)
    vocab = {c: i for i, c in enumerate("abcdefghijklmnopqrstuvwxyz .,")}
    vocab["<|endoftext|>"] = len(vocab)
    tok = Tokenizer(tm.WordLevel(vocab, unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tok.save(str(d / "tokenizer.json"))
    text, _ = hf.import_dir(d)
    assert f'tokenizer = "hf:{d.resolve()}"' in text
    from morphdsl.data import make_tokenizer

    t = make_tokenizer(f"hf:{d}")
    assert t.encode("abc") == [0, 1, 2] and t.decode([7, 4]).replace(" ", "") == "he"
    m = morphdsl.compile(text)
    m.load_state_dict(hf.import_dir(d)[1])
    hf.save(m, tmp_path / "out")
    assert (tmp_path / "out" / "tokenizer.json").read_text() == (d / "tokenizer.json").read_text()
    with pytest.raises(MorphError) as e:
        make_tokenizer(f"hf:{tmp_path}")
    assert "no tokenizer.json" in e.value.message


def test_the_core_does_not_import_transformers():
    code = ("import sys, morphdsl, morphdsl.hf, morphdsl.cli, morphdsl.train; "
            "morphdsl.cli.make_parser(); assert 'transformers' not in sys.modules, 'imported'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_the_docs_example_spec_builds():
    import re

    text = (ROOT / "docs" / "hf.md").read_text()
    (block,) = re.findall(r"```morph\n(.*?)```", text, re.S)
    g = morphdsl.build(morphdsl.parse(block))
    assert [k for k, _ in g.op_nodes("attention")] == ["blocks.0.attn", "blocks.1.attn"]


def test_train_init_starts_from_the_given_weights(models, tmp_path, capsys):
    from morphdsl.train import train_spec
    from morphdsl.train.checkpoint import load_checkpoint

    d, _ = models["gpt2_tied"]
    text, state = hf.import_dir(d)
    spec = tmp_path / "m.morph"
    spec.write_text(text + '\ndata {\n  source = "stories"\n  tokenizer = "chars"\n  max_docs = 50\n}\n'
                    "train {\n  steps = 2\n  batch = 2\n  ctx = 16\n  lr = 1e-30\n  warmup = 0\n}\n")
    train_spec(str(spec), tmp_path / "run", {"sample_tokens": 0}, init=d)  # a directory works too
    got = load_checkpoint(tmp_path / "run")["module"].state_dict()
    assert all(torch.equal(got[k], v) for k, v in state.items())  # lr 1e-30: still the imported weights
    other = tmp_path / "o.morph"
    assert run_cli(capsys, "import", models["gpt2_untied_inner"][0], "-o", other)[0] == 0
    code, _, err = run_cli(capsys, "train", spec, "--init", tmp_path / "o.safetensors", "--out",
                           tmp_path / "run", "--force")
    assert code == 1 and "the weights do not belong to this spec" in err and "Traceback" not in err
    assert (tmp_path / "run" / "checkpoints" / "latest").exists()  # the run there is kept


def test_the_example_runs_the_four_commands(tmp_path):
    import importlib.util

    path = ROOT / "examples" / "hf_import_grow_export.py"
    mod = importlib.util.spec_from_file_location("hf_example", path)
    ex = importlib.util.module_from_spec(mod)
    mod.loader.exec_module(ex)
    assert ex.main(tmp_path) < 1e-5
    assert (tmp_path / "hf-grown" / "config.json").is_file()
