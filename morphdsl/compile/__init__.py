from .fx import compile_graph
from .inputs import example_input

__all__ = ["compile_graph", "example_input"]
