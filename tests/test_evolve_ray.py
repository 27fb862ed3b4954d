"""The Ray executor on a local Ray instance (2 CPUs): members as tasks give the population the
in-process executor gives, and a worker killed mid-generation is retried (one test: one Ray
start, about 6 s)."""
from __future__ import annotations

import json

import pytest

ray = pytest.importorskip("ray")

import morphdsl  # noqa: E402
from morphdsl.evolve import evolve  # noqa: E402
from morphdsl.evolve.config import EvolveConfig  # noqa: E402
from morphdsl.evolve.executors import RayExecutor  # noqa: E402
from morphdsl.evolve.member import run_generation  # noqa: E402
from morphdsl.evolve.population import _train_overrides, first_jobs  # noqa: E402
from morphdsl.ir.emit import emit  # noqa: E402

from test_evolve import SPEC, _lineage  # noqa: E402


def test_ray_tasks_match_local_and_a_killed_worker_is_retried(tmp_path):
    spec = tmp_path / "evo.morph"
    spec.write_text(SPEC.replace("generations = 3", "generations = 2"))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        # a worker that dies (os._exit, as if killed) loses only its job, which Ray runs again
        g = morphdsl.build(str(spec))
        cfg = EvolveConfig.from_section(g.sections["evolve"])
        tr = _train_overrides(cfg, g, "ray", None)
        jobs = first_jobs(cfg, tmp_path / "dies", emit(g), tr)[:2]
        jobs[1]["die_once"] = str(tmp_path / "died-once")
        ex = RayExecutor(workers=2)
        got = ex.map(run_generation, jobs)
        assert (tmp_path / "died-once").read_text() == "died"
        calm = [{**j, "out": str(tmp_path / "calm" / str(i)), "die_once": None}
                for i, j in enumerate(jobs)]
        want = [run_generation(j) for j in calm]  # in this process
        assert [r["val_loss"] for r in got] == [r["val_loss"] for r in want]
        # the whole population on Ray is the population made in-process
        evolve(str(spec), tmp_path / "ray", executor="ray")
        assert ray.is_initialized()  # an executor leaves a Ray it did not start running
    finally:
        ray.shutdown()
    evolve(str(spec), tmp_path / "local", executor="local", train={"threads": 1})
    assert _lineage(tmp_path / "ray") == _lineage(tmp_path / "local")
    rows = json.loads((tmp_path / "ray" / "lineage.json").read_text())
    assert len(rows) == 6
