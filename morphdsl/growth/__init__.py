"""Growth as a transaction, with per-parameter metadata.

    from morphdsl.growth import GrowthTransaction, ParamMeta, attach, set_lr
    txn = GrowthTransaction(module, optimizer, meta, step=step)
    r = txn.apply("add_head", {"target": "blocks.0.attn", "n": 1})   # -> GrowthResult

transaction.py (rewrite -> checks -> compile -> transfer -> identity -> commit or raise),
metadata.py (slices per parameter: origin, step, group, lr_scale, frozen), control.py (the
optimizer hooks that keep frozen slices unchanged and scale LR per slice).
"""
from .control import SliceControl, attach, set_lr
from .metadata import ParamMeta, Slice
from .transaction import GrowthResult, GrowthTransaction, IdentityError, describe

__all__ = ["GrowthTransaction", "GrowthResult", "IdentityError", "ParamMeta", "Slice",
           "SliceControl", "attach", "set_lr", "describe"]
