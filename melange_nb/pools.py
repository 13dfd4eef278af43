"""Where independent tasks run: here, in a local pool of spawned processes, or as Ray tasks on a cluster.

Every stage that fans out uses this one interface: a sweep's points, a plan's windows (solves and
attainment searches), a simulation's GPU pools and an attainment search's candidate plans.

- `open_pool(workers, ray)`: an executor with ``submit(fn, *args) -> Future`` and ``stop()``: a
  `WorkerPool` of `workers` spawned processes, or with `ray` (an address, or True for RAY_ADDRESS
  else a local Ray) a `scale.RayPool` whose tasks run on the cluster (Ray is the `scale` extra).
- `session(ray)`: one Ray connection for a block of calls (a local Ray is started once, not per call).
- `run_tasks(fn, jobs, ...)`: ``[fn(*job) for job in jobs]`` with the results in job order, in this
  process (one worker, no Ray), or on such a pool. The first failing task raises in the caller (the
  others are stopped); a Ray task's failure arrives as one line. Ctrl-C stops every worker within
  seconds (``WorkerPool.stop``; Ray tasks are cancelled).

`fn` must be a top-level function of an importable module (workers import it by name).
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import signal
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence


class WorkerPool(cf.ProcessPoolExecutor):
    """A pool of `n` spawned worker processes that report their process ids when they start, so that
    `stop` can end running work at once (concurrent.futures offers no public way to do that before
    Python 3.14's ``terminate_workers``)."""

    def __init__(self, n: int):
        context = multiprocessing.get_context("spawn")
        self._pids = context.SimpleQueue()
        super().__init__(max_workers=max(1, n), mp_context=context, initializer=_worker_start, initargs=(self._pids,))

    def close(self) -> None:
        """All work is done: let the workers exit on their own."""
        self.shutdown(wait=True)

    def stop(self, grace: float = 10.0) -> None:
        """Cancel pending work and SIGTERM the workers (each exits through its handler, ending its
        notebook kernel); SIGKILL those still running after `grace` seconds. Every worker, also one
        still starting: a worker killed while it waits for work holds the queue's lock, and a sibling
        left alive would wait on it forever (and with it this interpreter's exit)."""
        started = set(getattr(self, "_processes", None) or ())   # CPython's table of the workers, by pid
        self.shutdown(wait=False, cancel_futures=True)
        pids = set(started)
        while not self._pids.empty():
            pids.add(self._pids.get())
        for pid in pids:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for pid in pids:
            while _running(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _running(pid):
                _signal(pid, signal.SIGKILL)


def worker_pool(n: int) -> WorkerPool:
    return WorkerPool(n)


def open_pool(workers: int = 1, ray: str | bool | None = None):
    """Ray tasks on a cluster when `ray` is set (an address, or True: RAY_ADDRESS else a local Ray),
    else `workers` spawned processes here."""
    if ray:
        from .scale import RayPool

        return RayPool(None if ray is True else ray)
    return worker_pool(workers)


@contextmanager
def session(ray: str | bool | None):
    """Ray connected for a block of several `run_tasks` calls (an attainment search, a command), so that
    a local Ray is started once, not per call; nothing without `ray`. Yields the cluster's description
    (``ray 2.x, N nodes, C CPUs``) or None."""
    if not ray:
        yield None
        return
    from .scale import ray_session

    with ray_session(None if ray is True else ray) as description:
        yield description


def run_tasks(fn: Callable, jobs: Iterable[Sequence[Any]], *, workers: int = 1, ray: str | bool | None = None,
              what: str = "tasks", progress: bool = False, min_parallel: int = 2) -> list:
    """``[fn(*job) for job in jobs]``, in order: here when `ray` is unset and `workers` is 1 (or there
    are fewer than `min_parallel` jobs), else on `open_pool(workers, ray)`. `progress`: a tqdm bar
    counting finished tasks, labelled `what`."""
    jobs = [tuple(job) for job in jobs]
    bar = _bar(len(jobs), what) if progress and jobs else None
    try:
        if not ray and (workers <= 1 or len(jobs) < min_parallel):
            results = []
            for job in jobs:
                results.append(fn(*job))
                if bar is not None:
                    bar.update(1)
            return results
        pool = open_pool(min(workers, len(jobs)), ray)
        try:
            with workers_spawning(pool):
                futures = {pool.submit(fn, *job): k for k, job in enumerate(jobs)}
            results = [None] * len(jobs)
            for fut in cf.as_completed(futures):
                results[futures[fut]] = fut.result()
                if bar is not None:
                    bar.update(1)
        except BaseException:          # a failed task or Ctrl-C: stop the others now
            pool.stop()
            raise
        pool.close()
        return results
    finally:
        if bar is not None:
            bar.close()


def _bar(total: int, what: str):
    """A tqdm bar (terminal or notebook; off where stderr is not a terminal), or None without tqdm."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=what, disable=None)


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):   # already gone (its number may even be reused: leave it)
        pass


def _running(pid: int) -> bool:
    """Whether process `pid` still runs: it exists and (on Linux) is not a zombie awaiting its reaper."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:             # no /proc: ask the kernel whether the process exists
        try:
            os.kill(pid, 0)
            return True
        except OSError:
            return False


@contextmanager
def workers_spawning(pool=None):
    """Submit (and so spawn) workers with SIGINT ignored: they inherit that, so a Ctrl-C while they
    import cannot print a traceback from each; the parent alone handles it. Nothing for a pool whose
    workers are not spawned here (Ray's): its submissions can take seconds, and a Ctrl-C then must stop."""
    if pool is not None and not isinstance(pool, WorkerPool):
        yield
        return
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:      # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _worker_start(pids) -> None:
    """Each worker says who it is (`WorkerPool.stop`), leaves Ctrl-C to the parent (no tracebacks from
    each) and, on SIGTERM (the parent stopping it), ends its notebook kernel and exits at once. The
    parent removes the workers' temporary folders."""
    pids.put(os.getpid())
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def _exit(signum, frame):
        _kill_children()
        os._exit(143)
    signal.signal(signal.SIGTERM, _exit)


def _kill_children() -> None:
    """SIGKILL this process's children (a running notebook kernel), found in /proc on Linux; elsewhere
    the kernel's own parent poller ends it within a second or so of this worker's exit."""
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if stat.read_text().rsplit(")", 1)[1].split()[1] == me:
                os.kill(int(stat.parent.name), signal.SIGKILL)
        except (OSError, IndexError, ValueError):
            continue
