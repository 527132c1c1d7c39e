"""Where a torch computation runs: one rule for the estimators, the transformer and the papers."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from kfw.errors import ConfigError


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"``: CUDA when there is one, else the CPU; any other name must exist here."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(
            f"device {device!r} is not a torch device (auto, cpu, cuda, cuda:1)"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {device!r} requested but torch {torch.__version__} sees no CUDA GPU "
                "here; use device='auto' or 'cpu'"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {device!r} requested but only {torch.cuda.device_count()} GPU(s) exist"
            )
    elif dev.type != "cpu":
        raise ConfigError(f"device {device!r} is not supported (auto, cpu or cuda)")
    return dev


@contextlib.contextmanager
def cpu_threads(device: torch.device, threads: int | None) -> Iterator[None]:
    """torch's CPU threads at ``threads`` while a computation on ``device`` runs, then as before.

    ``None``, or a device other than the CPU, leaves torch's setting alone (``OMP_NUM_THREADS``
    or torch's default). torch's thread count is process-wide: a command that sets it for its
    training gives it back, so what runs next in the process is not slowed or sped up by it.
    """
    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    before = torch.get_num_threads()
    if device.type == "cpu" and threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
