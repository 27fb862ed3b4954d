from .fx import compile_graph

__all__ = ["compile_graph"]
