"""Where members train: in this process, or as Ray tasks (`EXECUTORS`, one entry each).

    ex = make_executor("ray", workers=2, address=None)   # ray.init() locally, or join a cluster
    results = ex.map(run_generation, jobs)              # one result per job, in order
    ex.close()

Ray: each member's generation is one task (`num_cpus=1`, `max_retries`). A worker that dies
(killed, out of memory) loses only that task: Ray runs it again, and the job starts over from
its parent's checkpoint, which it never writes (member.py), so the retry computes the same
member. Why tasks and not Tune's PBT scheduler: PBT's exploit step copies a trial's checkpoint
into another trial of the *same* model; here a child's architecture differs from its parent's
(the mutation is a graph rewrite applied when the child starts) and a crossover child has two
parents, so selection is our own loop over Ray tasks. Members read and write run directories
on a file system every worker sees (one machine, or a shared mount on a cluster).
"""
from __future__ import annotations

from ..errors import MorphError


class LocalExecutor:
    """Members one after another in this process (tests, debugging, one core)."""

    name = "local"

    def __init__(self, workers: int = 1, address: str | None = None):
        self.workers = 1

    def map(self, fn, jobs: list) -> list:
        return [fn(j) for j in jobs]

    def close(self) -> None:
        pass


class RayExecutor:
    """Members as Ray tasks on `workers` CPUs of a local Ray (`ray.init()`), or on the cluster
    at `address` (`ray.init(address=...)`)."""

    name = "ray"
    max_retries = 3

    def __init__(self, workers: int = 2, address: str | None = None):
        try:
            import ray
        except ImportError:
            raise MorphError("the Ray executor needs the `ray` package",
                             hint="pip install 'morphdsl[evolve]', or use --executor local") from None
        self.ray, self.workers, self._started = ray, workers, False
        if not ray.is_initialized():
            kw = {"address": address} if address else {"num_cpus": workers}
            try:
                ray.init(include_dashboard=False, log_to_driver=False,
                         configure_logging=False, **kw)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise MorphError(f"could not start or join Ray ({' '.join(str(e).split())[:200]})",
                                 hint="check --address (e.g. 127.0.0.1:6379 of `ray start --head`)"
                                 if address else None) from None
            self._started = True

    def map(self, fn, jobs: list) -> list:
        task = self.ray.remote(num_cpus=1, max_retries=self.max_retries)(fn)
        refs = [task.remote(j) for j in jobs]
        try:
            return self.ray.get(refs)
        except self.ray.exceptions.RayTaskError as e:  # the job's own error: re-raise it
            cause = e.as_instanceof_cause()
            raise cause from None
        except self.ray.exceptions.WorkerCrashedError:
            raise MorphError(f"a Ray worker died {self.max_retries + 1} times running one member",
                             hint="the population state is saved: `morphc evolve --resume` "
                                  "continues it") from None

    def close(self) -> None:
        if self._started:
            self.ray.shutdown()


EXECUTORS = {"local": LocalExecutor, "ray": RayExecutor}


def make_executor(name: str, workers: int = 2, address: str | None = None):
    if name not in EXECUTORS:
        raise MorphError(f"unknown executor `{name}`", hint="executors: " + ", ".join(EXECUTORS))
    return EXECUTORS[name](workers=workers, address=address)
