"""Ray execution: chunks of inputs spread over workers that each load the model and data once.

The driver owns the run store and memory-based certification; workers only compute and return
results, so a worker lost mid-task costs nothing but the retry, and records do not depend on how
many workers there were (each input's noise streams depend only on (seed, index)). Ray is an
optional extra: ``pip install 'anisocert[ray]'``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from .._allocator import keep_freed_memory
from ..errors import AnisocertError, InvalidParameterError, ModelLoadError, one_line

__all__ = [
    "DistributedError",
    "import_ray",
    "check_address",
    "ray_cluster",
    "map_on_workers",
    "certify_chunks",
]

INSTALL_HINT = "pip install 'anisocert[ray]'"
# Test hook: the first task that finds no file at this path creates it and kills its worker process;
# the value CRASH_ALWAYS instead kills the process of every task (a worker that can never finish).
CRASH_HOOK = "ANISOCERT_TEST_CRASH_ONCE"
CRASH_ALWAYS = "always"
MAX_RESTARTS = 3  # a worker process lost this many times in a row ends the run (resumable)
# Test hook: overrides MAX_RESTARTS (each restart of a worker costs seconds).
MAX_RESTARTS_HOOK = "ANISOCERT_TEST_MAX_RESTARTS"


class DistributedError(AnisocertError):
    """Ray workers failed for reasons outside the code (lost nodes, repeated crashes, no resources)."""


def import_ray():
    """The ray module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise InvalidParameterError(
            f"--workers > 1 and --ray-address need Ray, which is not installed; {INSTALL_HINT}"
        ) from None
    return ray


@contextmanager
def ray_cluster(workers: int, address: str | None = None):
    """Join ADDR (or an already initialised Ray), or start a local cluster in this process.

    Only a cluster started here is shut down at the end; a caller's own ray.init is left alone
    (tests and notebooks reuse one cluster).
    """
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        kw = dict(include_dashboard=False, log_to_driver=False, logging_level="WARNING")
        try:
            if address:
                _check_reachable(address)
                ray.init(address=address, **kw)
            else:  # "local": a new cluster here, even when RAY_ADDRESS names another one
                ray.init(address="local", num_cpus=max(workers, _local_cpus()), **kw)
        except ConnectionError as err:
            raise _cannot_join(address, err) from None
        started = True
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def check_address(address: str) -> None:
    """Fail in seconds, with ray_cluster's one-line error, when nothing answers at ADDRESS.

    For callers to run before they create anything (a run directory); ray_cluster checks again. An
    already initialised Ray is joined whatever the address (see ray_cluster), so it is not checked.
    """
    if import_ray().is_initialized():
        return
    try:
        _check_reachable(address)
    except ConnectionError as err:
        raise _cannot_join(address, err) from None


def _cannot_join(address: str | None, err: Exception) -> DistributedError:
    return DistributedError(
        f"cannot join the Ray cluster at --ray-address {address} ({one_line(err)}); "
        "start one with `ray start --head` or leave --ray-address out for a local cluster"
    )


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """A HOST:PORT that nothing answers on fails in seconds (ray.init would retry for minutes)."""
    host, sep, port = address.rpartition(":")
    if "://" in address or not sep or not port.isdigit():
        return  # "auto", ray://...: Ray's own checks are quick
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        raise ConnectionError(f"nothing answers at {address}: {err.strerror or err}") from None


class _Host:
    """A Ray actor body: builds its worker once (model and data loaded once), then runs tasks on it."""

    def __init__(self, factory: Callable, threads: int, crash_marker: str | None, *factory_args):
        import torch

        keep_freed_memory()  # a worker process runs forward passes on its CPUs (issue 25)
        torch.set_num_threads(threads)
        self.crash_marker = crash_marker
        self.worker, self.error = None, None
        try:
            self.worker = factory(*factory_args)
        except AnisocertError as err:  # a user error: raised by every task, so it reaches the driver
            self.error = err

    def call(self, method: str, *args):
        if self.error is not None:
            raise self.error
        if self.crash_marker == CRASH_ALWAYS:  # test hook: every task dies with its process
            os._exit(1)
        if self.crash_marker:  # test hook: exactly one task dies with its process
            try:
                fd = os.open(self.crash_marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.close(fd)
                os._exit(1)
        return getattr(self.worker, method)(*args)


def map_on_workers(
    factory: Callable,
    factory_args: tuple,
    method: str,
    items: Iterable[tuple],
    *,
    workers: int,
    gpus: bool,
    in_flight: int = 2,
) -> Iterator[tuple[tuple, object]]:
    """Yield (args, worker.method(*args)) for each args in items, in the order they finish.

    ``workers`` Ray actors each build ``factory(*factory_args)`` once; a large argument is best
    passed as ``ray.put(value)``: stored once for all actors, and kept alive by the caller's
    reference for restarts. At most ``in_flight`` tasks per actor are queued, so the driver never
    holds much more than it can commit. A worker process that dies is restarted and its tasks
    retried. On Ctrl-C the results that already finished are still
    yielded before KeyboardInterrupt propagates, so the caller can commit them.
    """
    ray = import_ray()
    threads, num_cpus, num_gpus = _resources(ray, workers, gpus)
    restarts = _max_restarts()
    host = ray.remote(_Host).options(
        num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=restarts, max_task_retries=restarts
    )
    marker = os.environ.get(CRASH_HOOK) or None
    actors = [host.remote(factory, threads, marker, *factory_args) for _ in range(workers)]
    todo = iter(items)
    running: dict = {}  # ObjectRef -> (actor number, args)

    def submit(k: int) -> bool:
        args = next(todo, None)
        if args is None:
            return False
        running[actors[k].call.remote(method, *args)] = (k, args)
        return True

    try:
        for _ in range(in_flight):
            for k in range(workers):
                submit(k)
        while running:
            try:
                [ref], _ = ray.wait(list(running), num_returns=1)
            except KeyboardInterrupt:
                yield from _finished(ray, running)
                raise
            k, args = running.pop(ref)
            result = _get(ray, ref)
            submit(k)
            yield args, result
    finally:  # cancelled first, so that Ray does not announce retries of the tasks it drops
        for ref in running:
            try:
                ray.cancel(ref)
            except Exception:  # noqa: BLE001 - best effort: the actors are killed next anyway
                pass
        for actor in actors:
            ray.kill(actor, no_restart=True)


def _finished(ray, running: dict):
    """(args, result) of the tasks that finished (on Ctrl-C: the caller commits them before stopping)."""
    ready, _ = ray.wait(list(running), num_returns=len(running), timeout=0)
    for ref in ready:
        try:
            result = ray.get(ref)
        except Exception:  # noqa: BLE001 - stopping anyway; keep what did finish
            continue
        yield running.pop(ref)[1], result


def _get(ray, ref):
    """ray.get: a worker's user error as itself, a lost worker (after its retries) as one line."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as err:
        if isinstance(err.cause, AnisocertError):
            raise err.cause from None
        raise
    except (
        ray.exceptions.RayActorError,
        ray.exceptions.WorkerCrashedError,
        ray.exceptions.ObjectLostError,
    ) as err:
        raise DistributedError(
            f"a Ray worker died {_max_restarts() + 1} times in a row ({one_line(err)[:200]}; out of memory? "
            "a lost node?); finished inputs are stored: re-run the same command to resume, with fewer "
            "--workers if memory is short"
        ) from None


def _max_restarts() -> int:
    """MAX_RESTARTS, or the test hook's value when it is set."""
    value = os.environ.get(MAX_RESTARTS_HOOK, "")
    return int(value) if value.isdigit() else MAX_RESTARTS


def _resources(ray, workers: int, gpus: bool) -> tuple[int, float, float]:
    """(torch threads, Ray CPUs, Ray GPUs) per worker: one GPU each when asked, CPUs split fairly.

    The CPU share is the largest that still lets every node's share fit, so no worker waits forever
    for a node that has no room for it.
    """
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    node_cpus = [int(r.get("CPU", 0)) for r in nodes]
    total_gpus = int(sum(r.get("GPU", 0) for r in nodes))
    if sum(node_cpus) < workers:
        raise DistributedError(
            f"the Ray cluster has {sum(node_cpus)} CPUs, fewer than --workers {workers}; use fewer workers"
        )
    per = max(1, sum(node_cpus) // workers)
    while per > 1 and sum(c // per for c in node_cpus) < workers:
        per -= 1
    if not gpus:
        return per, per, 0
    if total_gpus < workers:
        raise DistributedError(
            f"--workers {workers} needs one GPU each and the Ray cluster has {total_gpus}; use --workers "
            f"{max(total_gpus, 1)} or --device cpu"
        )
    return per, 1, 1


def cluster_has_gpus(ray) -> bool:
    return any(n["Resources"].get("GPU", 0) > 0 for n in ray.nodes() if n.get("Alive"))


def _local_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# -- certification -------------------------------------------------------------------------------
class _CertifyWorkerFactory:
    """Builds a ChunkWorker inside a Ray worker: the model and data set are loaded once there."""

    def __call__(self, config, gpu: bool, loaded=None, dataset=None, reused=None):
        from ..data import load_data
        from ..models import load_model
        from .worker import ChunkWorker

        device = "cuda" if gpu else "cpu"
        if loaded is None:
            loaded = load_model(config.model, device=device)
            if config.model_sha256 and (loaded.sha256 or "") != config.model_sha256:
                raise ModelLoadError(
                    f"--model {config.model} on a Ray node is not the file the driver checked (sha256 "
                    "differs); give every node the same model file"
                )
        module = loaded.module.to(device).eval()
        dataset = dataset if dataset is not None else load_data(config.data, config.split)
        return ChunkWorker(config, module, dataset, device, reused=reused)


def certify_chunks(
    config,
    chunks: list[list[int]],
    optimised: dict,
    *,
    model=None,
    dataset=None,
    reused=None,
    certify: bool = True,
) -> Iterator[tuple[list[int], list, list]]:
    """Yield (chunk, new optimisation rows, records) for each chunk as Ray workers finish it.

    ``optimised`` holds the stored optimisation results (RunStore.optimised()); only the missing
    ones are optimised. ``model`` (a LoadedModel) and ``dataset`` given as objects travel through the
    object store; otherwise each worker loads them by name. ``reused`` (the driver's --reuse results)
    travels too, so workers never need the reused run directory. certify False: optimise only (no
    records). Needs a cluster (see ray_cluster).
    """
    ray = import_ray()
    kind = (config.execution.device or "").split(":")[0]  # "": not given, GPUs where the cluster has them
    gpus = kind != "cpu" and cluster_has_gpus(ray)
    if kind == "cuda" and not gpus:  # asked for, so never silently the CPU
        raise DistributedError(
            f"--device {config.execution.device} and the Ray cluster has no GPU; use --device cpu, or leave "
            "--device out to use GPUs only where the cluster has them"
        )
    items = ((chunk, {i: optimised[i] for i in chunk if i in optimised}, None, certify) for chunk in chunks)
    # A given model / data set goes through the object store once; by name, each worker loads it
    # (then no argument lives in the object store, which Ray would warn about for restartable actors).
    model, dataset = (None if v is None else ray.put(v) for v in (model, dataset))
    results = map_on_workers(
        _CertifyWorkerFactory(),
        (config, gpus, model, dataset, reused),
        "run",
        items,
        workers=max(1, config.execution.workers),
        gpus=gpus,
    )
    for (chunk, *_), (new_optimised, records) in results:
        yield chunk, new_optimised, records
