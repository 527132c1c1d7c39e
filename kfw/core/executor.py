"""Where the fits run: in this process, in worker processes on this machine, or on a Dask cluster.

The unit of work is one call of a picklable function on one item: a fold of one model
(:func:`kfw.core.cv.cross_validate`), or a tuning trial (:func:`kfw.study.tune.tune`). What
the items share (rows, targets, test set, fitted-feature step, persisted folds) travels once,
as a content-addressed *package*: the driver writes it under ``KFW_HOME/work`` and every
worker reads it from that path (cached per worker process), or, with ``?data=scatter``,
the driver sends it to every worker once. The driver assembles what comes back in the items'
order, so a run's predictions do not depend on where, or in which order, its folds ran.

=================  ==============================================================
``local``          one item after another in this process (the default)
``local:N``        ``N`` worker processes on this machine
``dask://H:P``     the Dask scheduler at ``H:P`` and its workers (``dask scheduler``,
                   ``dask worker tcp://H:P``); ``?data=scatter`` when the workers
                   cannot see the driver's ``KFW_HOME``
=================  ==============================================================

Thread policy: a parallel executor runs each item with one thread (model and BLAS) unless
told otherwise (``--threads``), so that ``N`` items on ``N`` cores never oversubscribe them.

Failure: a worker process that dies mid-item is replaced and its item runs again (Dask
reschedules it on the remaining workers; a local pool is rebuilt, at most
:data:`RESTARTS` times per call). Before any data is shared, a Dask executor checks that a
scheduler answers within Dask's own connect timeout (``distributed.comm.timeouts.connect``,
:data:`CONNECT_TIMEOUT` unless the user set it) and that every worker runs the driver's
versions of kfw and of the libraries that shape results; after writing the package, that
every worker can read it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from kfw.errors import ConfigError, KfwError
from kfw.files import write_bytes
from kfw.versions import versions

RESTARTS = 3  # how many times a local pool is rebuilt in one call after a worker died
CONNECT_TIMEOUT = "10s"  # when the user has not set distributed.comm.timeouts.connect
_PACKAGES_KEPT = 2  # packages a worker process keeps unpickled (one roster shares one)


class ExecutorError(KfwError):
    """An executor that cannot be used as asked (no scheduler, other versions, no data path)."""


@dataclass(frozen=True)
class Shared:
    """A package the items of one call share: its digest and where a worker finds it."""

    digest: str
    path: str | None = None  # the file a worker reads (None: in-process, or scattered)
    local: Any = None  # the object itself, for the in-process executor (never pickled)


@dataclass(frozen=True)
class Placement:
    """Where an item ran and how long it waited for a worker after it was submitted."""

    worker: str
    queued_seconds: float


class Executor:
    """One item after another in this process: the loop as it always ran."""

    name = "local"
    parallel = False
    slots = 1

    def __init__(self, work_dir: Path | None = None) -> None:
        self.work_dir = Path(work_dir) if work_dir is not None else None
        self._written: set[Path] = set()
        self._writing = threading.Lock()  # the members of a roster share one package

    def threads(self, asked: int | None) -> int | None:
        """Threads per item: what was asked; a parallel executor's default is one."""
        return asked if asked is not None else (1 if self.parallel else None)

    def share(self, payload: Any) -> Shared:
        """Make ``payload`` reachable from every worker; see :func:`load`."""
        return Shared("", local=payload)

    def run(
        self, fn: Callable[[Any, Any], Any], items: list[Any], shared: Shared
    ) -> Iterator[tuple[int, Any, Placement]]:
        """``fn(payload, item)`` for every item: ``(index, value, placement)`` as each finishes."""
        for i, item in enumerate(items):
            yield i, fn(shared.local, item), Placement("local", 0.0)

    def close(self) -> None:
        """Remove the packages this executor wrote and release its workers."""
        for path in self._written:
            path.unlink(missing_ok=True)
        self._written.clear()

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the package, for executors whose workers are other processes -------------------
    def _write(self, payload: Any) -> tuple[Shared, bytes]:
        blob = dumps(payload)
        digest = hashlib.sha256(blob).hexdigest()[:24]
        if self.work_dir is None:
            raise ValueError("a parallel executor needs a work_dir for its packages")
        path = self.work_dir / f"{digest}.pkl"
        with self._writing:
            if not path.is_file():
                write_bytes(path, blob)
                self._written.add(path)
        return Shared(digest, str(path.resolve())), blob


def dumps(payload: Any) -> bytes:
    """Pickle ``payload`` with the competition's feature modules by value.

    A worker then runs the driver's feature code, not whatever ``features`` it has installed
    (a feature module loaded from a file is not importable there at all).
    """
    import cloudpickle

    for name, module in list(sys.modules.items()):
        if (name == "features" or name.startswith("features.")) and module is not None:
            # a namespace package, or a module without a name to register, stays by reference
            with contextlib.suppress(ValueError):
                cloudpickle.register_pickle_by_value(module)
    return cloudpickle.dumps(payload)


# -- the worker side ----------------------------------------------------------------------
_loaded: OrderedDict[str, Any] = OrderedDict()
_lock = threading.Lock()


def _where() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"{socket.gethostname()} pid {os.getpid()}"


def load(shared: Shared, blob: bytes | None = None) -> Any:
    """The package of ``shared`` in this worker process (read once, then kept)."""
    import pickle

    if shared.local is not None or not shared.digest:
        return shared.local
    with _lock:
        if shared.digest in _loaded:
            _loaded.move_to_end(shared.digest)
            return _loaded[shared.digest]
        if blob is None:
            try:
                blob = Path(shared.path).read_bytes()  # type: ignore[arg-type]
            except OSError as exc:
                raise ExecutorError(
                    f"worker {_where()} cannot see the data path {shared.path} "
                    f"({exc.strerror or exc}): share KFW_HOME between the machines at the same "
                    "path, or add ?data=scatter to the executor URL"
                ) from None
        if hashlib.sha256(blob).hexdigest()[:24] != shared.digest:
            raise ExecutorError(
                f"worker {_where()} reads another file at {shared.path} than the driver wrote "
                "(its digest differs): the machines must share KFW_HOME, not copies of it"
            )
        payload = pickle.loads(blob)
        _loaded[shared.digest] = payload
        while len(_loaded) > _PACKAGES_KEPT:
            _loaded.popitem(last=False)
        return payload


def _remote(
    fn: Callable[[Any, Any], Any], item: Any, shared: Shared, blob: Any, submitted: float
) -> tuple[Any, str, float]:
    """What a worker runs: the item's value, where it ran and how long it waited."""
    started = time.time()
    value = fn(load(shared, blob), item)
    return value, _where(), max(0.0, started - submitted)


def check_versions(driver: dict[str, str], workers: dict[str, dict[str, str]]) -> None:
    """Refuse workers whose versions differ from the driver's, naming both."""
    for address, theirs in sorted(workers.items()):
        differ = [
            f"{name} {theirs.get(name, 'not installed')} (driver {mine})"
            for name, mine in driver.items()
            if theirs.get(name) != mine
        ]
        if differ:
            raise ExecutorError(
                f"worker {address} runs {', '.join(differ)}: install the driver's versions on "
                "every worker"
            )


# -- local processes -----------------------------------------------------------------------
class ProcessExecutor(Executor):
    """``local:N``: ``N`` worker processes on this machine (a process pool)."""

    parallel = True

    def __init__(self, n: int, work_dir: Path) -> None:
        super().__init__(work_dir)
        self.slots = n
        self.name = f"local:{n}"
        self._pool: Any = None
        self._generation = 0
        self._guard = threading.Lock()
        self._closed = False

    def share(self, payload: Any) -> Shared:
        return self._write(payload)[0]

    def _current(self) -> tuple[Any, int]:
        # loky (joblib's process pool, which scikit-learn uses): workers start as fresh
        # interpreters (never forked from a driver whose threads hold locks), a script's
        # __main__ is not run again in them, and a dead worker breaks the pool visibly
        from joblib.externals.loky import ProcessPoolExecutor

        with self._guard:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(self.slots)
            return self._pool, self._generation

    def _renew(self, generation: int) -> None:
        with self._guard:
            if self._generation == generation and self._pool is not None:
                self._pool.shutdown(wait=False, kill_workers=True)
                self._pool = None
                self._generation += 1

    def run(
        self, fn: Callable[[Any, Any], Any], items: list[Any], shared: Shared
    ) -> Iterator[tuple[int, Any, Placement]]:
        import pickle
        from concurrent.futures import as_completed
        from concurrent.futures.process import BrokenProcessPool

        pending = dict(enumerate(items))
        restarts = 0
        while pending:
            if self._closed:
                raise ExecutorError(f"{self.name}: the executor was closed")
            pool, generation = self._current()
            futures = {
                pool.submit(_remote, fn, item, shared, None, time.time()): i
                for i, item in pending.items()
            }
            try:
                for future in as_completed(futures):
                    value, where, queued = future.result()
                    i = futures[future]
                    del pending[i]
                    yield i, value, Placement(where, queued)
            except BrokenProcessPool:
                restarts += 1
                if restarts > RESTARTS:
                    raise ExecutorError(
                        f"{self.name}: worker processes died {restarts} times in one call "
                        "(out of memory?); run with fewer workers or --executor local"
                    ) from None
                self._renew(generation)
            except pickle.PicklingError as exc:
                raise ExecutorError(
                    f"{self.name}: cannot send the work to a worker: {exc}"
                ) from None
            finally:
                for future in futures:
                    future.cancel()

    def close(self) -> None:
        with self._guard:
            self._closed = True
            if self._pool is not None:
                self._pool.shutdown(wait=True, kill_workers=True)
                self._pool = None
        super().close()


# -- a Dask cluster ------------------------------------------------------------------------
class DaskExecutor(Executor):
    """``dask://HOST:PORT``: the items are tasks of a Dask ``distributed`` scheduler."""

    parallel = True

    def __init__(self, address: str, work_dir: Path, scatter: bool = False) -> None:
        super().__init__(work_dir)
        import dask
        from distributed import Client

        self.address, self.scatter = address, scatter
        self.name = f"dask://{address.removeprefix('tcp://')}"
        timeout = dask.config.get("distributed.comm.timeouts.connect", None) or CONNECT_TIMEOUT
        if timeout == "30s" and "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT" not in os.environ:
            timeout = CONNECT_TIMEOUT  # Dask's shipped default: ours is shorter
        try:
            self.client = Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ExecutorError(
                f"no Dask scheduler answered at {address} within {timeout} "
                f"({type(exc).__name__}): start one with `dask scheduler` and workers with "
                f"`dask worker {address}`"
            ) from None
        try:
            self.client.wait_for_workers(1, timeout=timeout)
        except TimeoutError:
            self.client.close()
            raise ExecutorError(
                f"the Dask scheduler at {address} has no workers: start one with "
                f"`dask worker {address}`"
            ) from None
        try:
            check_versions(versions(), self.client.run(versions))
        except BaseException:
            self.client.close()
            raise
        self.slots = max(1, sum(self.client.nthreads().values()))
        self._scattered: dict[str, Any] = {}

    def share(self, payload: Any) -> Shared:
        if self.scatter:
            blob = dumps(payload)
            digest = hashlib.sha256(blob).hexdigest()[:24]
            if digest not in self._scattered:
                self._scattered[digest] = self.client.scatter(blob, broadcast=True, hash=False)
            return Shared(digest)
        shared, _ = self._write(payload)
        # every worker reads the package now, so that one that cannot fails before any fit
        for problem in self.client.run(_can_read, shared).values():
            if problem:
                raise ExecutorError(problem)
        return shared

    def run(
        self, fn: Callable[[Any, Any], Any], items: list[Any], shared: Shared
    ) -> Iterator[tuple[int, Any, Placement]]:
        from distributed import as_completed

        blob = self._scattered.get(shared.digest) if self.scatter else None
        futures = {
            self.client.submit(_remote, fn, item, shared, blob, time.time(), pure=False): i
            for i, item in enumerate(items)
        }
        try:
            for future in as_completed(futures, loop=self.client.loop):
                value, where, queued = future.result()
                yield futures[future], value, Placement(where, queued)
        finally:
            for future in futures:
                future.cancel()

    def close(self) -> None:
        self._scattered.clear()
        self.client.close()
        super().close()


def _can_read(shared: Shared) -> str | None:
    """On a worker: why it cannot read ``shared``'s package, or None."""
    try:
        load(shared)
    except ExecutorError as exc:
        return str(exc)
    return None


def parse(text: str) -> tuple[str, Any]:
    """``local``, ``local:N`` or ``dask://HOST:PORT[?data=scatter]`` as (kind, arguments)."""
    text = text.strip()
    if text == "local":
        return "local", None
    if text.startswith("local:"):
        n = text.removeprefix("local:")
        if not n.isdigit() or int(n) < 1:
            raise ConfigError(f"--executor {text}: local:N needs a positive number of processes")
        return "local", int(n)
    if text.startswith("dask://"):
        parts = urlsplit(text)
        query = parse_qs(parts.query)
        unknown = set(query) - {"data"}
        if unknown or query.get("data", ["path"]) not in (["path"], ["scatter"]):
            raise ConfigError(
                f"--executor {text}: the only option is ?data=path (default) or ?data=scatter"
            )
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or port is None:
            raise ConfigError(f"--executor {text}: a Dask scheduler is dask://HOST:PORT")
        return "dask", (f"tcp://{parts.hostname}:{port}", query.get("data") == ["scatter"])
    raise ConfigError(f"--executor {text!r}: expected local, local:N or dask://HOST:PORT")


def open_executor(text: str | None, kfw_home: Path) -> Executor:
    """The executor ``text`` names (default ``local``), connected and checked."""
    kind, args = parse(text or "local")
    work_dir = Path(kfw_home) / "work"
    if kind == "local":
        return Executor() if args is None else ProcessExecutor(args, work_dir)
    address, scatter = args
    return DaskExecutor(address, work_dir, scatter=scatter)
