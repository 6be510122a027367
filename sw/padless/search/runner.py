"""Where trials run: in-process (tests), a local process pool (default) or Ray tasks on a cluster.

Each executor has ``submit(payload) -> handle``, ``wait_any(handles) -> (handle, result)`` and ``close()``.
The result is :func:`padless.search.objectives.safe_evaluate`'s dict; a worker that dies (killed, out of
memory) gives ``{"status": "failed", "error": ..., "lost_worker": True}`` so the driver re-queues the trial.

Ray (docs/search.md "Cluster"): Optuna stays in the driver (ask/tell); each expensive stage is one Ray task
with a CPU reservation (``num_cpus``), on the cluster at ``address`` (``ray://host:10001``, ``auto``) or
``RAY_ADDRESS``, else a Ray instance this process already started (``ray.init()`` in a test). Ray Tune's
OptunaSearch is not used: it hands only objective values back to Optuna, so the constraints measured by a
trial would be invisible to the sampler.
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os

from ..errors import InputError
from .objectives import safe_evaluate

__all__ = ["make_executor", "InlineExecutor", "PoolExecutor", "RayExecutor"]


class InlineExecutor:
    """Runs each trial in this process at submit time (``--jobs 0``; tests)."""

    name = "inline"
    slots = 1

    def __init__(self):
        self._done = {}
        self._n = 0

    def submit(self, payload):
        self._n += 1
        self._done[self._n] = safe_evaluate(payload)
        return self._n

    def wait_any(self, handles):
        h = next(iter(handles))
        return h, self._done.pop(h)

    def close(self):
        pass


class PoolExecutor:
    """A local pool of ``jobs`` worker processes (spawned: no fork of a threaded parent)."""

    name = "process pool"

    def __init__(self, jobs: int):
        self.jobs = self.slots = int(jobs)
        self._pool = None

    def _get(self):
        if self._pool is None:
            self._pool = cf.ProcessPoolExecutor(max_workers=self.jobs, mp_context=mp.get_context("spawn"))
        return self._pool

    def submit(self, payload):
        return self._get().submit(safe_evaluate, payload)

    def wait_any(self, handles):
        done, _ = cf.wait(list(handles), return_when=cf.FIRST_COMPLETED)
        h = next(iter(done))
        try:
            return h, h.result()
        except cf.process.BrokenProcessPool as exc:
            self._pool = None   # a fresh pool for the next trials
            return h, {"status": "failed", "error": f"the worker process died ({exc})", "lost_worker": True}

    def close(self):
        if self._pool is not None:   # no trial is in flight after a normal end; after an interrupt, don't wait
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


class RayExecutor:
    """Each trial a Ray task reserving ``cpus`` CPUs on the cluster at ``address`` (or RAY_ADDRESS)."""

    name = "ray"

    def __init__(self, address: str | None, cpus: float = 1.0, jobs: int | None = None):
        try:
            import ray
        except ImportError:
            raise InputError("--address needs Ray: pip install 'padless[search]' (ray==2.60.0)") from None
        self.ray = ray
        if not ray.is_initialized():
            # padless must be importable on the cluster's nodes (pip install padless[search] there)
            where = address or os.environ.get("RAY_ADDRESS") or "auto"
            try:
                ray.init(address=where, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise InputError(f"cannot connect to the Ray cluster at {where} ({' '.join(str(exc).split())[:200]}); "
                                 "start one (`ray start --head`) or give --address ray://HOST:10001") from None
        if float(cpus) <= 0:
            raise InputError(f"--cpus {cpus} must be > 0")
        self._fn = ray.remote(num_cpus=float(cpus), max_retries=0)(safe_evaluate)
        # as many trials in flight as the cluster has CPUs for (or --jobs when given)
        total = float(ray.cluster_resources().get("CPU", 1.0))
        self.slots = int(jobs) if jobs else max(1, int(total // float(cpus)))

    def submit(self, payload):
        return self._fn.remote(payload)

    def wait_any(self, handles):
        ready, _ = self.ray.wait(list(handles), num_returns=1)
        h = ready[0]
        try:
            return h, self.ray.get(h)
        except Exception as exc:  # noqa: BLE001 - a lost node or worker: the trial is re-queued
            return h, {"status": "failed", "error": f"the Ray task failed ({type(exc).__name__}: {exc})",
                       "lost_worker": True}

    def close(self):
        pass


def make_executor(jobs: int = 1, address: str | None = None, cpus: float = 1.0, use_ray: bool = False,
                  ray_jobs: int | None = None):
    """Ray when ``address`` / RAY_ADDRESS is given or ``use_ray`` (an initialised Ray), else a pool of
    ``jobs`` processes (0: in-process). Each executor's ``slots``: the trials it runs at once."""
    if address or os.environ.get("RAY_ADDRESS") or use_ray:
        return RayExecutor(address, cpus, ray_jobs)
    if int(jobs) < 0:
        raise InputError(f"--jobs {jobs} must be >= 0 (0: in this process)")
    return InlineExecutor() if int(jobs) == 0 else PoolExecutor(int(jobs))
