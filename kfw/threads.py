"""How many threads a fit may use: the one thread policy of kfw.

``KFW_THREADS`` when set, else every core this process may run on. One model fits at a time,
so it may use them all; on a busy two-core machine ``KFW_THREADS=1`` is often faster (a
multi-threaded fit beside another busy process can run many times slower). :func:`limit`
holds BLAS (NumPy's matrix products: linear and from-scratch models) to the same count, so
that ``KFW_THREADS=1`` really means one thread per fit.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from kfw.errors import ConfigError


def cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def default_threads() -> int:
    """``KFW_THREADS``, else :func:`cores`."""
    value = os.environ.get("KFW_THREADS")
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ConfigError(f"KFW_THREADS must be a positive integer, got {value!r}")
        return int(value)
    return cores()


@contextlib.contextmanager
def limit(threads: int) -> Iterator[None]:
    """Hold BLAS to ``threads`` threads for the duration of a fit."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads, user_api="blas"):
        yield
