"""``kfw.dl.device``: which device a computation runs on, and torch's CPU threads while it runs."""

from __future__ import annotations

import pytest
import torch

from kfw.dl.device import cpu_threads, resolve_device
from kfw.errors import ConfigError


def test_cpu_threads_sets_and_gives_back_torch_threads() -> None:
    before = torch.get_num_threads()
    with cpu_threads(torch.device("cpu"), before + 1):
        assert torch.get_num_threads() == before + 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), cpu_threads(torch.device("cpu"), before + 1):
        raise RuntimeError("a failed training")
    assert torch.get_num_threads() == before  # given back on the way out of an error too


def test_cpu_threads_leaves_torch_alone_without_a_count_or_off_the_cpu() -> None:
    before = torch.get_num_threads()
    for device, threads in ((torch.device("cpu"), None), (torch.device("cuda"), before + 1)):
        with cpu_threads(device, threads):
            assert torch.get_num_threads() == before
    with (
        pytest.raises(ConfigError, match="threads must be >= 1"),
        cpu_threads(torch.device("cpu"), 0),
    ):
        pass


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="not supported"):
        resolve_device("meta")
