"""Fine-tuning a pretrained image network: a new head, what stays frozen, and layer-wise rates.

Three ways to reuse a body trained on other images (Yosinski et al. 2014, "How transferable
are features in deep neural networks?"; Howard & Ruder 2018, ULMFiT, for the discriminative
rates), each with a freshly initialised head for the new classes:

- ``"head"``, the linear probe: only the head trains; the body is a fixed feature extractor;
- ``"last"``: the last residual block and the head train;
- ``"all"``: everything trains, the learning rate of each layer group ``lr_decay`` times that
  of the group above it (head ``lr``, last block ``lr * lr_decay``, ... stem the lowest), so
  the early, generic filters move least.

A frozen part is frozen whole: its parameters take no gradient, and its batch norms stay in
eval mode, so their running statistics are the pretrained ones too (a frozen body whose
statistics drifted with the new data would not be the pretrained body any more).

:func:`transfer_net` is a network factory of the shape :class:`~kfw.dl.estimator.TorchClassifier`
calls (``input_shape=``, ``n_outputs=``, parameters), so a fine-tune trains through the same
estimator and recipe as any network; its :meth:`Transfer.lr_groups` gives the estimator the
per-group rates. The networks are ResNets laid out as ``models/torch_nets.py``'s: ``stem``,
``stages`` (a sequence of blocks), ``head``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kfw.dl.estimator import net_factory
from kfw.dl.weights import check_compatible, read_state_dict
from kfw.errors import ConfigError

TRAINABLE = ("head", "last", "all")


class Transfer(nn.Module):
    """A ResNet-layout network of which only ``train`` (``"head"``, ``"last"``, ``"all"``) learns.

    Parameters
    ----------
    net : nn.Module
        With ``stem``, ``stages`` and ``head`` children.
    trainable : {"head", "last", "all"}
        What trains (see the module).
    lr_decay : float
        The learning-rate factor from one layer group to the one below it (``"all"``; the
        trainable groups of the other modes get it too).

    Attributes
    ----------
    groups : list of nn.Module
        Layer groups from the input up: the stem, each block, the head.
    frozen : list of nn.Module
        The groups that do not train.
    """

    def __init__(self, net: nn.Module, trainable: str = "all", lr_decay: float = 1.0) -> None:
        super().__init__()
        if trainable not in TRAINABLE:
            raise ConfigError(f"unknown trainable {trainable!r}: one of {', '.join(TRAINABLE)}")
        if not 0 < lr_decay <= 1:
            raise ConfigError(f"lr_decay must be in (0, 1], not {lr_decay}")
        missing = [c for c in ("stem", "stages", "head") if not hasattr(net, c)]
        if missing:
            raise ConfigError(f"{type(net).__name__} has no {missing[0]}: not a ResNet layout")
        self.net = net
        self.trainable, self.lr_decay = trainable, lr_decay
        self.groups: list[nn.Module] = [net.stem, *net.stages, net.head]
        n_train = {"head": 1, "last": 2, "all": len(self.groups)}[trainable]
        self.frozen = self.groups[: len(self.groups) - n_train]
        for group in self.frozen:
            group.requires_grad_(False)
        self.train()

    def train(self, mode: bool = True) -> Transfer:
        """Train mode for the trainable groups only: frozen batch norms keep their statistics."""
        super().train(mode)
        for group in self.frozen:
            group.eval()
        return self

    def lr_groups(self) -> list[tuple[list[nn.Parameter], float]]:
        """``(parameters, learning-rate factor)`` per trainable group, the head's factor 1."""
        out = []
        for depth, group in enumerate(reversed(self.groups)):
            params = [p for p in group.parameters() if p.requires_grad]
            if params:
                out.append((params, self.lr_decay**depth))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def body_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict without its head (``head.*``): what a new task reuses."""
    return {k: v for k, v in state.items() if not k.startswith("head.")}


def transfer_net(
    input_shape: tuple[int, ...],
    n_outputs: int,
    base: str | Callable[..., nn.Module] = "resnet",
    base_params: dict[str, Any] | None = None,
    weights: str | Path | None = None,
    trainable: str = "all",
    lr_decay: float = 1.0,
) -> Transfer:
    """A network factory for :class:`~kfw.dl.estimator.TorchClassifier`: a pretrained body.

    Parameters
    ----------
    input_shape, n_outputs
        As the estimator passes them; the head is built (and initialised) for ``n_outputs``.
    base : str or callable
        The network (a name of :data:`kfw.dl.estimator.NETS`, a path, or a callable).
    base_params : dict, optional
        Its parameters (widths, blocks ...), those the weights were trained with.
    weights : path, optional
        A state dict of ``base`` (``.pt`` or ``.safetensors``); every tensor but the head's
        is loaded, after a check that names the first mismatching one. None: from scratch.
    trainable, lr_decay
        See :class:`Transfer`.
    """
    net = net_factory(base)(
        input_shape=tuple(input_shape), n_outputs=n_outputs, **dict(base_params or {})
    )
    if weights is not None:
        body = body_state(read_state_dict(Path(weights)))
        check_compatible(body_state(net.state_dict()), body, f"weights {weights}")
        net.load_state_dict(body, strict=False)  # the head stays as initialised
    return Transfer(net, trainable, lr_decay)
