"""morphdsl: a declarative language and compiler for growing neural networks."""
# Load the `compile` subpackage first: importing it later would rebind `morphdsl.compile`
# (the function below) to the subpackage.
from . import compile as _compile_pkg  # noqa: F401
from .api import build, compile, emit, load, parse
from .errors import GrowthError, MorphError, ShapeError, SpecError, VerifyError
from .ir.graph import MorphGraph

__version__ = "0.1.0"
__all__ = ["parse", "load", "build", "compile", "emit", "MorphGraph", "MorphError", "SpecError",
           "ShapeError", "GrowthError", "VerifyError"]
