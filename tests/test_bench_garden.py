"""benchmarks/garden.py: the experiment's specs for another host (--host) are its own: the
static target doubles that host's blocks and the fixed schedules plant where it has blocks."""
import re

import pytest

import morphdsl
from benchmarks import garden as G
from morphdsl.rewrites import grow


@pytest.mark.parametrize("host, layers", [(G.HOST, 2), (G.ROOT / "specs/bench/garden_tiny.morph", 1)])
def test_specs_follow_the_host(host, layers):
    target = morphdsl.build(G.spec_text("static_target", G.FULL, None, host))
    assert len([p for p, _ in target.units() if re.fullmatch(r"blocks\.\d+\.attn", p)]) == 2 * layers
    for m in G.FIXED:
        text = G.spec_text(m, G.FULL, None, host)
        g = morphdsl.build(text)
        sites = re.findall(r"germinate\((blocks\.\d+)", text)
        assert sites and f"blocks.{layers - 1}" in sites
        for site in sites:  # every planted site exists in this host (exact: the IR grows)
            assert len(grow(g, "germinate", target=site, kind="mlp", hidden=64).graph.units()) > \
                len(g.units())
