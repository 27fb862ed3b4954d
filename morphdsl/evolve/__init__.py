"""Evolution of populations of specs: mutation by exact rewrites, crossover, tournaments.

    from morphdsl.evolve import evolve, evolve_resume
    summary = evolve("spec.morph", "runs/pop", executor="ray")   # summary["best"], ["best_spec"]

config.py (the `evolve { }` section), mutations.py (the menu), member.py (one member, one
generation), population.py (selection, state, resume), executors.py (local, Ray),
crossover.py (two parents, one child), lineage.py (lineage.json, evolution.png).
"""
from .population import evolve, evolve_resume  # noqa: E402,F401

__all__ = ["evolve", "evolve_resume"]
