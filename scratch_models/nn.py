"""Neural-network layers, losses and optimisers on the ``Tensor`` autograd engine.

A ``Linear`` layer computes ``y = x W^T + b`` with ``W`` of shape (out_features, in_features),
torch's layout. Initialisation keeps the variance of the activations steady across layers:

* Xavier / Glorot uniform: ``W ~ U(-a, a)``, ``a = sqrt(6 / (fan_in + fan_out))``, so
  ``Var W = 2 / (fan_in + fan_out)`` (for tanh / sigmoid).
* He / Kaiming normal: ``W ~ N(0, 2 / fan_in)`` (for ReLU, which zeroes half its inputs).

Biases start at zero. The optimisers update each parameter ``theta`` with its gradient ``g``
at step ``t`` exactly as ``torch.optim`` does:

* ``SGD``: ``g <- g + lambda theta``; with momentum ``mu``, ``b <- mu b + g`` (``b_1 = g``)
  and ``g <- g + mu b`` (Nesterov) or ``g <- b``; then ``theta <- theta - lr g``.
* ``Adam``: ``g <- g + lambda theta`` (L2 in the gradient); ``m <- beta1 m + (1 - beta1) g``,
  ``v <- beta2 v + (1 - beta2) g^2``;
  ``theta <- theta - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)``.
* ``AdamW``: ``theta <- theta (1 - lr lambda)`` (decoupled decay), then Adam with no L2.

References: Glorot & Bengio (2010), "Understanding the difficulty of training deep
feedforward neural networks", AISTATS; He et al. (2015), "Delving deep into rectifiers",
ICCV; Kingma & Ba (2015), "Adam: a method for stochastic optimization", ICLR; Loshchilov &
Hutter (2019), "Decoupled weight decay regularization", ICLR.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from scratch_models.autograd import Tensor, cross_entropy

__all__ = [
    "GELU",
    "MLP",
    "SGD",
    "Adam",
    "AdamW",
    "Linear",
    "Module",
    "ReLU",
    "Sigmoid",
    "Tanh",
    "cross_entropy",
    "he_normal",
    "mse_loss",
    "xavier_uniform",
]

Seed = int | np.random.Generator | None


def xavier_uniform(fan_in: int, fan_out: int, seed: Seed = None) -> np.ndarray:
    """Glorot uniform weights, (fan_out, fan_in), from U(-a, a) with a = sqrt(6 / (in + out))."""
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return np.random.default_rng(seed).uniform(-bound, bound, size=(fan_out, fan_in))


def he_normal(fan_in: int, fan_out: int, seed: Seed = None) -> np.ndarray:
    """Kaiming normal weights, (fan_out, fan_in), from N(0, 2 / fan_in)."""
    return np.random.default_rng(seed).normal(0.0, math.sqrt(2.0 / fan_in), size=(fan_out, fan_in))


INITS = {"xavier": xavier_uniform, "he": he_normal}


class Module:
    """Base of layers and networks; a subclass defines ``forward(x)``.

    Its parameters are the Tensors among its attributes and those of its sub-modules
    (attributes, or lists / tuples of them), in attribute order.
    """

    def parameters(self) -> list[Tensor]:
        """Every trainable Tensor, each once."""
        found: dict[int, Tensor] = {}
        for p in self._walk(vars(self).values()):
            found.setdefault(id(p), p)
        return list(found.values())

    def _walk(self, items: Iterable[Any]) -> Iterator[Tensor]:
        for item in items:
            if isinstance(item, Tensor):
                yield item
            elif isinstance(item, Module):
                yield from item.parameters()
            elif isinstance(item, list | tuple):
                yield from self._walk(item)

    def zero_grad(self) -> None:
        """Reset the gradient of every parameter to zeros."""
        for p in self.parameters():
            p.zero_grad()

    def __call__(self, x: Tensor | np.ndarray) -> Tensor:
        return self.forward(x if isinstance(x, Tensor) else Tensor(x))


class ReLU(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.relu()


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.tanh()


class Sigmoid(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.sigmoid()


class GELU(Module):
    """GELU, tanh approximation (torch's ``GELU(approximate="tanh")``)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.gelu()


ACTIVATIONS = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid, "gelu": GELU}


class Linear(Module):
    """Affine layer ``y = x W^T + b``.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool, default=True
    init : {"he", "xavier"}, default="he"
        Kaiming normal or Glorot uniform weights; the bias starts at zero.
    seed : int, numpy Generator or None
        Source of the initial weights.

    Attributes
    ----------
    weight : Tensor of shape (out_features, in_features)
    bias : Tensor of shape (out_features,) or None
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        init: str = "he",
        seed: Seed = None,
    ):
        if init not in INITS:
            raise ValueError(f"init must be one of {sorted(INITS)}, got {init!r}")
        self.weight = Tensor(INITS[init](in_features, out_features, seed))
        self.bias = Tensor(np.zeros(out_features)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        y = x @ self.weight.T  # (n_samples, out_features)
        return y + self.bias if self.bias is not None else y


class MLP(Module):
    """Multi-layer perceptron: Linear layers with an activation between consecutive ones.

    Parameters
    ----------
    sizes : sequence of int
        ``[n_inputs, hidden_1, ..., n_outputs]``; the last layer has no activation.
    activation : {"relu", "tanh", "sigmoid", "gelu"}, default="relu"
    init : {"he", "xavier"} or None
        None picks He for relu / gelu and Xavier for tanh / sigmoid.
    seed : int, numpy Generator or None
        Source of the initial weights of all layers.

    Attributes
    ----------
    layers : list of Module
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str = "relu",
        init: str | None = None,
        seed: Seed = None,
    ):
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        init = init or ("he" if activation in ("relu", "gelu") else "xavier")
        rng = np.random.default_rng(seed)
        self.layers: list[Module] = []
        for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
            if i:
                self.layers.append(ACTIVATIONS[activation]())
            self.layers.append(Linear(n_in, n_out, init=init, seed=rng))

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


def mse_loss(prediction: Tensor, target: Tensor | np.ndarray) -> Tensor:
    """Mean squared error, ``mean((prediction - target)^2)``."""
    return ((prediction - target) ** 2).mean()


class Optimizer:
    """Base of the optimisers: the parameters and one state dict each; a subclass defines
    ``_update(p, state)``, the in-place update of one parameter from its ``grad``."""

    def __init__(self, params: Iterable[Tensor], lr: float):
        self.params = list(params)
        self.lr = lr
        self.state: list[dict[str, Any]] = [{} for _ in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.zero_grad()

    def step(self) -> None:
        """Update every parameter in place from its ``grad``."""
        for p, state in zip(self.params, self.state, strict=True):
            self._update(p, state)


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay."""

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ):
        if nesterov and momentum <= 0:
            raise ValueError("Nesterov momentum requires a momentum > 0")
        super().__init__(params, lr)
        self.momentum, self.weight_decay, self.nesterov = momentum, weight_decay, nesterov

    def _update(self, p: Tensor, state: dict[str, Any]) -> None:
        g = p.grad + self.weight_decay * p.data if self.weight_decay else p.grad.copy()
        if self.momentum:
            if "buffer" in state:
                state["buffer"] = self.momentum * state["buffer"] + g
            else:
                state["buffer"] = g.copy()
            g = g + self.momentum * state["buffer"] if self.nesterov else state["buffer"]
        p.data -= self.lr * g


class Adam(Optimizer):
    """Adam; ``weight_decay`` adds ``lambda theta`` to the gradient (L2, as torch's Adam)."""

    decoupled = False

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        super().__init__(params, lr)
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay

    def _update(self, p: Tensor, state: dict[str, Any]) -> None:
        beta1, beta2 = self.betas
        if not state:
            state.update(t=0, m=np.zeros_like(p.data), v=np.zeros_like(p.data))
        state["t"] += 1
        g = p.grad
        if self.weight_decay and self.decoupled:
            p.data *= 1.0 - self.lr * self.weight_decay
        elif self.weight_decay:
            g = g + self.weight_decay * p.data
        state["m"] = beta1 * state["m"] + (1.0 - beta1) * g
        state["v"] = beta2 * state["v"] + (1.0 - beta2) * g * g
        step_size = self.lr / (1.0 - beta1 ** state["t"])
        denominator = np.sqrt(state["v"]) / math.sqrt(1.0 - beta2 ** state["t"]) + self.eps
        p.data -= step_size * state["m"] / denominator


class AdamW(Adam):
    """Adam with decoupled weight decay: ``theta <- theta (1 - lr lambda)`` before the step."""

    decoupled = True

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ):
        super().__init__(params, lr, betas, eps, weight_decay)
