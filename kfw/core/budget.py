"""The wall-clock budget of ``kfw cv --time-limit``: a deadline that training loops obey.

A deadline is a wall-clock time (``time.time()``, so that a worker process on the same machine
reads it the same way). :func:`until` sets one for the code it wraps, never later than the one
already set; the roster gives each member its share of what is left
(:func:`kfw.ensemble.roster.run_competition`), the fold loop gives each fold its share of the
member's (:func:`fold_deadline`), and the boosted models check :func:`expired` after every
round and stop there (LightGBM, XGBoost and CatBoost in ``models/``): a fit cut short keeps
the rounds it has and says so (``out_of_time_``), and the run records how many folds were
cut. Nothing here reads data: the budget decides how long a model trains, never what it sees.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import time
from collections.abc import Iterator

_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "kfw_deadline", default=None
)


_COMMAND: list[float] = []  # when the running command began (`kfw cv --time-limit` counts from it)


@contextlib.contextmanager
def command() -> Iterator[None]:
    """Mark the block as one command: :func:`command_started` is its start until it ends."""
    _COMMAND[:] = [time.time()]
    try:
        yield
    finally:
        _COMMAND.clear()  # a later command in this process counts from its own start


def command_started() -> float:
    """When the running command began, else now (a command run in-process, as tests do)."""
    return _COMMAND[-1] if _COMMAND else time.time()


def deadline() -> float | None:
    """The deadline in force here (``time.time()`` seconds), or None."""
    return _DEADLINE.get()


def remaining() -> float | None:
    """Seconds left before the deadline (negative once past), or None without one."""
    at = _DEADLINE.get()
    return None if at is None else at - time.time()


def expired() -> bool:
    """Whether the deadline in force has passed (never, without one)."""
    at = _DEADLINE.get()
    return at is not None and time.time() >= at


@contextlib.contextmanager
def until(at: float | None) -> Iterator[float | None]:
    """Run the block under deadline ``at`` (or the one already set, if that is sooner)."""
    outer = _DEADLINE.get()
    if at is None:
        at = outer
    elif outer is not None:
        at = min(at, outer)
    token = _DEADLINE.set(at)
    try:
        yield at
    finally:
        _DEADLINE.reset(token)


def share(fraction: float) -> contextlib.AbstractContextManager[float | None]:
    """The block gets ``fraction`` of the time left before the deadline in force."""
    left = remaining()
    if left is None:
        return until(None)
    return until(time.time() + fraction * max(left, 0.0))


def fold_deadline(at: float | None, index: int, n_fits: int, slots: int = 1) -> float | None:
    """Fold ``index`` of ``n_fits`` (run ``slots`` at a time)'s deadline under the member's ``at``.

    The time left is shared by the waves of folds still to run, this one's included, so a fold
    that finishes early leaves its time to the next.
    """
    if at is None:
        return None
    waves = math.ceil((n_fits - index) / max(slots, 1))
    now = time.time()
    return now + max(at - now, 0.0) / max(waves, 1)
