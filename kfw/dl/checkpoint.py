"""Checkpoints that survive an interruption: written whole or not at all, read back with one clear
line when damaged, and the random-number state that makes a resumed run equal an uninterrupted one.

The one checkpoint module of kfw: training state (:func:`save_atomic`, :func:`load_checkpoint`)
and a network's weights (:func:`save_state`, :func:`load_state`, checked against the network
they are loaded into).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kfw import files
from kfw.errors import KfwError


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, renamed into place (:mod:`kfw.files`)."""
    files.write_with(Path(path), lambda tmp: torch.save(obj, tmp))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint at ``path`` (tensors only: ``weights_only``), on the CPU."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged file of any kind: one line naming it
        raise KfwError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}); delete it"
        ) from None


def save_state(module: nn.Module, path: str | os.PathLike[str]) -> None:
    """A network's weights (its state dict, on the CPU), written whole or not at all."""
    save_atomic({k: v.detach().cpu() for k, v in module.state_dict().items()}, Path(path))


def load_state(module: nn.Module, path: str | os.PathLike[str]) -> None:
    """Load weights saved with :func:`save_state` into ``module``, or say in one line why not."""
    if not Path(path).is_file():
        raise KfwError(f"{path}: checkpoint not found")
    state = load_checkpoint(Path(path))
    if not isinstance(state, dict):
        raise KfwError(f"{path}: not a state dict of a network")
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    resized = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or resized:
        parts = [
            f"{what} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for what, keys in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("resized", resized),
            )
            if keys
        ]
        raise KfwError(
            f"{path}: checkpoint is of another architecture than {type(module).__name__} "
            f"({'; '.join(parts)})"
        )
    module.load_state_dict(state)


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
