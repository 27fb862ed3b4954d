"""The plasticity diagnostic of the continual benchmark: a low-rank delta starts exactly at the
host, a part trained leaves every other weight (and the host module) as it was, and the
report has a row per part."""
from __future__ import annotations

import torch

from benchmarks import continual as C
from benchmarks import continual_plasticity as P


class _Stream:  # random bytes: enough for a few steps
    def get_batch(self, split, batch, ctx, gen):
        x = torch.randint(0, 256, (batch, ctx + 1), generator=gen)
        return x[:, :-1], x[:, 1:]


def test_low_rank_deltas_start_at_the_host_and_count_their_parameters():
    m = C.build(C.HOST, 0)
    train, full = P.trainables(m, "rank 4 deltas")
    base = dict(m.named_parameters())
    got = full(train)
    assert set(got) == set(base)
    for n, p in base.items():
        assert torch.equal(got[n], p.detach()), n  # A = 0: the delta is exactly zero
    a, b = train["tok.weight:A"], train["tok.weight:B"]
    assert a.shape == (256, 4) and b.shape == (4, 64)
    assert train["lanes.blocks.0.mlp.w0:A"].shape == (2, 4, 32, 4)  # per lane and petal
    assert "lanes.blocks.0.ln1.weight" in train  # vectors are trained in full
    n = sum(t.numel() for t in train.values())
    assert n < sum(p.numel() for p in base.values())


def test_training_a_part_moves_only_that_part_and_never_the_host():
    m = C.build(C.HOST, 0)
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    params, n = P.learn(m, _Stream(), "hulls", 3, 0)
    assert n == sum(p.numel() for k, p in before.items() if ".mlp." in k)
    moved = {k for k in before if not torch.equal(params[k], before[k])}
    assert moved and all(".mlp." in k for k in moved)
    for k, p in m.named_parameters():
        assert torch.equal(p, before[k])  # functional_call: the module's weights untouched
    lo = P.loss_on(m, params, [_Stream().get_batch("val", 4, 64, torch.Generator())])
    assert lo > 0


def test_schedule_and_report():
    assert P.lr_at(0, 100, 1.0) == 1.0 / 20 and P.lr_at(19, 100, 1.0) == 1.0
    assert abs(P.lr_at(100, 100, 1.0) - 0.1) < 1e-9  # fully decayed to lr / 10
    run = {d: {p: {"loss": 1.5, "trained": 10, "s": 0.1} for p in P.PARTS} for d in C.DOMAINS[1:]}
    run["routed_deltas"] = {"rank": 8, "matrix": [[2.0, 3.0, 4.0]] * 3, "acc": 3.0, "bwt": 0.5,
                            "params_added": 1234}
    text = P.report([run, run], 7)
    assert text.count("\n|") == len(P.PARTS) + 2 + len(C.DOMAINS) + 2 and "S = 7, 2 seed(s)" in text
    assert "ACC 3.0000 ± 0.0000, BWT +0.5000 ± 0.0000" in text and "1,234 parameters" in text


def test_routing_picks_per_window_the_generation_that_predicts_its_prefix_best():
    import pytest

    a, b = C.build(C.HOST, 0), C.build(C.HOST, 1)
    ga = {n: p.detach().clone() for n, p in a.named_parameters()}
    gb = {n: p.detach().clone() for n, p in b.named_parameters()}
    g = torch.Generator().manual_seed(1)
    val = {d: [_Stream().get_batch("val", 6, 64, g)] for d in C.DOMAINS}
    # one generation: the module's own loss on the second halves (the independent check)
    assert P.routed_losses(a, [ga], val) == pytest.approx(C.evaluate(a, val, C.ROUTE_PREFIX), abs=1e-5)
    # two: window by window, the module whose prefix NLL is lower scores that window's tail
    got = P.routed_losses(a, [ga, gb], val)
    picked = 0
    for j, d in enumerate(C.DOMAINS):
        (x, y), = val[d]
        want = []
        for w in range(x.shape[0]):
            one = dict.fromkeys(C.DOMAINS, [(x[w:w + 1], y[w:w + 1])])
            with torch.no_grad():
                na, nb = (C.window_scores(m, x[w:w + 1])[0]["nll"].item() for m in (a, b))
            m = a if na <= nb else b
            picked += m is b
            want.append(C.evaluate(m, one, C.ROUTE_PREFIX)[j])
        assert got[j] == pytest.approx(sum(want) / len(want), abs=1e-5)
    assert 0 < picked < 6 * len(C.DOMAINS)  # both generations were chosen somewhere
