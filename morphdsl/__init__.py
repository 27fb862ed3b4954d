"""morphdsl: a declarative language and compiler for growing neural networks."""
# Load the `compile` subpackage first: importing it later would rebind `morphdsl.compile`
# (the function below) to the subpackage.
from . import compile as _compile_pkg  # noqa: F401
from .api import build, compile, emit, load, parse
from .errors import GrowthError, MorphError, ShapeError, SpecError, VerifyError
from .ir.graph import MorphGraph
from . import verify  # noqa: E402  (morphdsl.verify.identity, .jensen, ...)
from .rewrites import grow, grow_model  # noqa: E402

__version__ = "0.1.0"
__all__ = ["parse", "load", "build", "compile", "emit", "grow", "grow_model", "verify", "MorphGraph", "MorphError", "SpecError",
           "ShapeError", "GrowthError", "VerifyError"]
