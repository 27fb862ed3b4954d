"""The evolution benchmark's harness on a tiny budget: every method runs, the baselines get the
evolved population's FLOPs, held-out windows are not the selection's, the report renders."""
from __future__ import annotations

import torch

from benchmarks import evolution as B

TINY = dict(seeds=1, corpora=("stories",), population=2, generations=2, steps=4, lrs=(3e-3,),
            heldout_batches=2)


def test_every_method_runs_at_the_evolved_populations_flops(tmp_path, monkeypatch):
    monkeypatch.setattr(B, "RUNS", tmp_path)
    r = B.run_combo({"corpus": "stories", "seed": 0, "cfg": TINY})
    m = r["methods"]
    assert set(B.METHODS) <= set(m) and m["static"] in (m["static_base"], m["static_target"])
    E = m["evolution"]["flops"]
    import morphdsl
    from morphdsl.ir.cost import train_flops

    f = train_flops(morphdsl.build(str(B.SPEC)), 16, 64)
    assert abs(m["pbt"]["flops"] - E) <= TINY["population"] * TINY["generations"] * f
    assert m["static_base"]["flops"] >= E and m["static_target"]["flops"] >= E
    for e in m.values():
        assert e["heldout"] > 0 and e["heldout"] != e["val"] and e["arch"].startswith("d ")
    res = {"date": "today", "command": "c", "code_sha": "x", "cfg": TINY, "runs": [r]}
    text = B.report(res)
    assert "| evolution |" in text and "evolution beats: pbt" in text
    B.plot(res, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_heldout_windows_are_none_of_the_selection_windows():
    from morphdsl.data import TokenStream, make_tokenizer
    from morphdsl.data.sources import load_texts

    texts = load_texts("stories", max_docs=300)
    stream = TokenStream(texts, make_tokenizer("chars", texts, None), 0.1)
    X, _ = B.heldout_windows(stream, 16, 4, 3, 5)
    sel = torch.cat([x for x, _ in stream.iter_eval_batches("val", 4, 16, max_batches=3)])
    assert len(X) == 20 and len(sel) == 12
    assert not any(torch.equal(a, b) for a in X for b in sel)  # no window scored twice
    assert len({tuple(a.tolist()) for a in X}) == len(X)
