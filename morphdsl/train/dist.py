"""Data-parallel training across processes: `torchrun --nproc_per_node N morphc train ...`.

`Dist.from_env()` reads torchrun's RANK / WORLD_SIZE / LOCAL_RANK (a plain process is rank 0
of 1 and every method is a no-op). The train section's `batch` is the GLOBAL batch: every rank
draws the same global batch from the same seeded sampler and trains on its own rows, and DDP
averages the gradients, so N ranks x batch/N equal 1 process x batch (to float rounding), and
a run resumes on any number of processes. Logged losses are averaged over the ranks. Growth is
decided on rank 0 and broadcast; every rank applies the same rewrite (new units seeded by
(seed, step)), re-wraps DDP (whose constructor broadcasts rank 0's weights) and rebuilds the
optimizer. Only rank 0 writes files. Collectives time out after MORPHDSL_DIST_TIMEOUT seconds
(default 300): a rank that dies makes the others stop with a clear error.

Why DDP and not FSDP2 (`fully_shard`): growth rewrites and the name-keyed optimizer-state
transfer read and write whole tensors; sharded DTensor parameters would need a gather before
every growth and a re-shard after, for models that fit one device comfortably.
"""
from __future__ import annotations

import datetime
import os
import re

import torch

from ..errors import MorphError

ENV_TIMEOUT = "MORPHDSL_DIST_TIMEOUT"
_COMM = re.compile(r"gloo|nccl|connection|timed out|timeout|socket|peer|broken pipe|"
                   r"closed|unreachable", re.I)


def _env_int(name: str, default: int) -> int:
    v = os.environ.get(name)
    try:
        return int(v) if v not in (None, "") else default
    except ValueError:
        raise MorphError(f"environment variable {name}={v!r} is not an integer",
                         hint="launch with torchrun, which sets RANK, WORLD_SIZE and "
                              "LOCAL_RANK") from None


class Dist:
    """This process's place in a data-parallel run (rank 0 of 1 when not launched by torchrun)."""

    def __init__(self, rank: int = 0, world: int = 1, local_rank: int = 0):
        self.rank, self.world, self.local_rank = rank, world, local_rank
        self.active = False  # a process group is up

    @classmethod
    def from_env(cls) -> Dist:
        world = _env_int("WORLD_SIZE", 1)
        rank, local = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
        if world < 1 or not 0 <= rank < world:
            raise MorphError(f"RANK={rank} and WORLD_SIZE={world} do not fit together",
                             hint="launch with torchrun --nproc_per_node N")
        return cls(rank, world, local)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def start(self, device: torch.device) -> None:
        """Join the process group (gloo on the CPU, nccl on cuda)."""
        if self.world == 1 or self.active:
            return
        import torch.distributed as td

        timeout = datetime.timedelta(seconds=_env_int(ENV_TIMEOUT, 300))
        backend = "nccl" if device.type == "cuda" else "gloo"
        try:
            td.init_process_group(backend, timeout=timeout, rank=self.rank,
                                  world_size=self.world)
        except (RuntimeError, ValueError) as e:
            raise MorphError(f"rank {self.rank} could not join the {self.world}-process group "
                             f"({str(e).splitlines()[0][:160]})",
                             hint="launch with torchrun --nproc_per_node N (and --nnodes, "
                                  "--rdzv-endpoint HOST:PORT on several machines)") from None
        self.active = True

    def close(self) -> None:
        if self.active:
            import torch.distributed as td

            td.destroy_process_group()
            self.active = False

    # ------------------------------------------------------------------ data
    def local_batch(self, batch: int) -> int:
        if batch % self.world:
            e = MorphError(f"batch = {batch} is not divisible by the {self.world} processes",
                           hint=f"batch is the global batch; use a multiple of {self.world}")
            e.setting = "batch"
            raise e
        return batch // self.world

    def shard(self, x: torch.Tensor, y: torch.Tensor):
        """This rank's rows of a global batch."""
        if self.world == 1:
            return x, y
        b = x.shape[0] // self.world
        return x[self.rank * b:(self.rank + 1) * b], y[self.rank * b:(self.rank + 1) * b]

    # ------------------------------------------------------------------ collectives
    def mean(self, t: torch.Tensor) -> float:
        """A scalar tensor averaged over the ranks, as a float (`t.item()` for one process)."""
        if not self.active:
            return t.item()
        import torch.distributed as td

        v = t.detach().float().reshape(1).clone()
        td.all_reduce(v)
        return (v / self.world).item()

    def sum(self, *values: float) -> list[float]:
        if not self.active:
            return list(values)
        import torch.distributed as td

        dev = "cuda" if td.get_backend() == "nccl" else "cpu"
        v = torch.tensor(values, dtype=torch.float64, device=dev)
        td.all_reduce(v)
        return v.tolist()

    def broadcast(self, obj):
        """Rank 0's `obj` on every rank."""
        if not self.active:
            return obj
        import torch.distributed as td

        box = [obj]
        td.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as td

            td.barrier()

    def wrap(self, module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """The module under DistributedDataParallel (itself for one process)."""
        if not self.active:
            return module
        from torch.nn.parallel import DistributedDataParallel as DDP

        import inspect

        ids = [device.index] if device.type == "cuda" else None
        # buffers (rope tables, masks) are constants: no sync before each forward
        params = inspect.signature(DDP.__init__).parameters
        nosync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in params
                  else {"broadcast_buffers": False})
        return DDP(module, device_ids=ids, **nosync)


def lost_peer(e: BaseException) -> bool:
    """Whether an exception raised in a distributed run is a failed collective (a dead or
    unreachable rank, a timeout) rather than a bug."""
    import torch.distributed as td

    dist_error = getattr(td, "DistError", None)
    if dist_error is not None and isinstance(e, dist_error):
        return True
    return isinstance(e, RuntimeError) and bool(_COMM.search(str(e)))
