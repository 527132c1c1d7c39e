"""Checkpoints that survive an interruption: written whole or not at all, read back with one clear
line when damaged, and the random-number state that makes a resumed run equal an uninterrupted one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from kfw.errors import KfwError


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint at ``path`` (tensors only: ``weights_only``), on the CPU."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged file of any kind: one line naming it
        raise KfwError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}); delete it"
        ) from None


def rng_state(device: str | torch.device) -> dict[str, Any]:
    """torch's global generator (dropout masks, ``randperm``), and CUDA's on a GPU."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.device(device).type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: str | torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.device(device).type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
