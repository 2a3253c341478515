"""Beyond one machine: the Dask cluster that ``convert``, ``select``, ``merge``, ``validate``, ``verify`` and
``record`` can spread their work over.

``cluster(workers=N)`` starts a local cluster of N processes of one thread each; ``cluster(scheduler=ADDRESS)`` or
``cluster(scheduler_file=PATH)`` joins an existing one (``dask scheduler`` and ``dask worker`` on many machines, or
SLURM, PBS and Kubernetes through dask-jobqueue and dask-kubernetes). Without any, nothing changes: one process.
Needs the ``[dask]`` extra. Tasks read their input themselves, so paths must be reachable from every worker (a
shared file system, or a URL); a worker that cannot read one says so in one line.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

from ..core.errors import ExpertDataError, UnreadableError, UsageError
from .formats.lerobot.video import DECODE_THREADS_VARIABLE

#: Seconds to wait for a scheduler before giving up on it.
CONNECT_TIMEOUT = 10


class ClusterError(ExpertDataError):
    """The cluster cannot be reached, or lost the work (exit 2); nothing is written."""

    exit_code = 2


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise UsageError('spreading work over a cluster needs Dask: pip install "expertdata[dask]"') from None
    return distributed


@contextmanager
def cluster(workers: int | None = None, scheduler: str | None = None,
            scheduler_file: str | None = None) -> Iterator[Any]:
    """A Dask ``Client``: of a local cluster of ``workers`` processes (one thread each), or of the scheduler at
    ``scheduler`` (an address) or described by ``scheduler_file``; ``None`` when none is asked for."""
    if sum(x is not None for x in (workers, scheduler, scheduler_file)) > 1:
        raise UsageError("give one of workers, scheduler and scheduler_file")
    if workers is None and scheduler is None and scheduler_file is None:
        yield None
        return
    distributed = _distributed()
    import dask

    local = None
    try:
        if workers is not None:
            if workers < 1:
                raise UsageError(f"workers must be at least 1, not {workers}")
            # A video decoder in each process keeps to its share of the cores rather than ffmpeg's one thread per
            # core (with a process per core, one thread each); a lone worker decodes as one process does (ffmpeg's
            # choice, a thread more than the cores: on 2 cores, 2 threads decoded 10% slower).
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
            share = "0" if workers == 1 else str(max(1, cores // workers))
            # Dask starts its workers with MALLOC_TRIM_THRESHOLD_ set, which turns glibc's adaptive mmap threshold
            # off: every large array is a fresh mapping, faulted in page by page (the same blocks computed 20-40%
            # slower). A command's workers live as long as the command: they allocate as one process does.
            with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
                local = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                 dashboard_address=None, silence_logs=50,
                                                 env={DECODE_THREADS_VARIABLE: os.environ.get(DECODE_THREADS_VARIABLE,
                                                                                              share)})
            client = distributed.Client(local, set_as_default=False)
        elif scheduler_file is not None:
            if not os.path.isfile(scheduler_file):
                raise ClusterError(f"{scheduler_file}: no scheduler file there (dask scheduler --scheduler-file "
                                   f"{scheduler_file} writes one)")
            client = distributed.Client(scheduler_file=scheduler_file, timeout=CONNECT_TIMEOUT, set_as_default=False)
        else:
            client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except ExpertDataError:
        if local is not None:
            local.close()
        raise
    except (OSError, TimeoutError, ValueError) as exc:
        if local is not None:
            local.close()
        where = scheduler or scheduler_file or "a local cluster"
        raise ClusterError(f"cannot reach the Dask scheduler at {where} ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else 'no answer'}); nothing was written") from None
    try:
        yield client
    finally:
        client.close()
        if local is not None:
            local.close()


def run(client: Any, function: Callable[..., Any], jobs: Sequence[tuple], what: str,
        each: Callable[[int, Any], None] | None = None) -> list[Any]:
    """``function(*job)`` for every job, on the cluster, each retried elsewhere if its worker dies; results in the
    jobs' order (``each(k, result)`` is called as each one arrives). A job that fails raises its one-line error; a
    cluster that goes away is a ``ClusterError``."""
    distributed = _distributed()
    futures = [client.submit(function, *job, retries=2, pure=False, key=f"expertdata-{what}-{k}-{os.getpid()}")
               for k, job in enumerate(jobs)]
    where = {f.key: k for k, f in enumerate(futures)}
    out: list[Any] = [None] * len(futures)
    try:
        for future in distributed.as_completed(futures, loop=client.loop):
            k = where[future.key]
            try:
                out[k] = future.result()
            except UnreadableError as exc:
                if "no such file" not in str(exc):
                    raise
                raise _unreachable(str(exc)) from None
            except ExpertDataError:
                raise
            except (FileNotFoundError, PermissionError) as exc:
                raise _unreachable(str(exc.filename or exc)) from None
            except (OSError, TimeoutError) as exc:
                raise ClusterError(f"the cluster lost the work ({type(exc).__name__}: {exc}); nothing was "
                                   "written") from None
            except Exception as exc:  # a task that could not even be unpacked: its dataset did not open there
                cause = exc.__cause__ or exc.__context__
                why = str(cause) if isinstance(cause, ExpertDataError) else str(exc).splitlines()[0]
                if "deserializ" in str(exc):
                    raise _unreachable(why) from None
                raise ClusterError(f"a task failed on a worker ({type(exc).__name__}: {why}); nothing was "
                                   "written") from None
            if each is not None:
                each(k, out[k])
    except BaseException:
        client.cancel(futures)
        raise
    return out


def task_prefixes(client: Any) -> set[str]:
    """The task name prefixes the scheduler has seen (tests check that the scheduler ran the work)."""
    return set(client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes)))


def _unreachable(why: str) -> UnreadableError:
    """What a task that could not read its source on a worker says."""
    return UnreadableError(f"a worker cannot read it: {why} (every worker must reach the paths given: a shared file "
                           "system, an absolute path, or a URL)")
