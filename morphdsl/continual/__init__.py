"""Continual learning: keep what was learnt while learning more (CONCEPTS §4, issue 17).

visco.py (the ViscoElastic optimizer: directional resistance, temperature, crystal divider),
crystal.py (petals crystallize when their weights are cold; thaw; the frozen shares the
`frozen()` growth trigger reads; new petals blended in after `add_petals`).
"""
from .visco import CONSTANTS, ViscoElastic

__all__ = ["CONSTANTS", "ViscoElastic"]
