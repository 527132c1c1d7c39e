"""A fully connected network of any depth from :mod:`scratch_models.layers`, and a trainer.

Architecture (L = len(hidden_dims) + 1 affine layers)::

    {affine - [batchnorm | layernorm] - activation - [dropout]} x (L - 1) - affine - softmax

Objective: ``J = mean_i -log softmax(s_i)[y_i] + reg / 2 * sum_l ||W_l||_F^2`` (biases and the
normalisation's gamma / beta are not penalised). ``loss`` runs the forward pass keeping every
layer's cache, then the backward pass in reverse order, so ``grads[name] = dJ / dparams[name]``.

Initial weights ``W_l ~ N(0, sigma_l^2)``: ``"he"`` ``sigma^2 = 2 / fan_in`` (keeps the ReLU
activations' variance constant across layers), ``"xavier"`` ``sigma^2 = 2 / (fan_in + fan_out)``
(Glorot, for sigmoid / tanh), ``"small"`` ``sigma = 0.01``; ``weight_scale`` overrides them.

Update rules (``w`` a parameter, ``g`` its gradient, ``lr`` the learning rate):

* SGD: ``w <- w - lr g``.
* SGD with momentum: ``v <- mu v - lr g``, ``w <- w + v``.
* Adam: ``m <- b1 m + (1 - b1) g``, ``v <- b2 v + (1 - b2) g^2``, bias-corrected
  ``m^ = m / (1 - b1^t)``, ``v^ = v / (1 - b2^t)``, ``w <- w - lr m^ / (sqrt(v^) + eps)``.

The network follows CS231n's ``FullyConnectedNet`` (``loss(X, y)`` returns ``(loss, grads)``),
not the scikit-learn estimator contract: it exists to look inside training.

References: Stanford CS231n assignment 2 (https://cs231n.github.io); He et al. (2015),
"Delving deep into rectifiers"; Glorot & Bengio (2010); Kingma & Ba (2015), Adam.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from scratch_models import layers

ACTIVATIONS = ("relu", "leaky_relu", "sigmoid")
NORMALIZATIONS = (None, "batchnorm", "layernorm")
LEAKY_ALPHA = 0.01  # slope of the leaky ReLU for x < 0


class FullyConnectedNet:
    """Fully connected classifier with optional normalisation and dropout.

    Parameters
    ----------
    hidden_dims : list of int
        Width of each hidden layer; ``[]`` gives softmax regression.
    input_dim : int, default=64
    num_classes : int, default=10
    activation : {"relu", "leaky_relu", "sigmoid"}, default="relu"
    normalization : {None, "batchnorm", "layernorm"}, default=None
        Applied between each hidden affine layer and its activation.
    dropout : float, default=0.0
        Drop probability after each hidden activation; 0 disables dropout.
    reg : float, default=0.0
        L2 strength on the weights, ``reg / 2 * sum ||W||^2``.
    weight_scale : float or None, default=None
        Standard deviation of every initial weight; None uses ``init``.
    init : {"he", "xavier", "small"}, default="he"
    bias_init : float, default=0.0
        Initial value of the hidden layers' biases (a large negative one kills ReLUs).
    dtype : numpy dtype, default=np.float64
    seed : int, np.random.Generator or None
        Initial weights and the dropout masks.

    Attributes
    ----------
    params : dict of str to ndarray
        ``W1, b1, ..., WL, bL`` and ``gamma1, beta1, ...`` for the normalised layers.
    num_layers : int
    bn_params : list of dict
        One per hidden layer (batchnorm: running statistics; all: the mode).
    dropout_param : dict
        ``p``, ``mode`` and ``seed`` (the network's generator; an int fixes the mask).
    """

    def __init__(
        self,
        hidden_dims: list[int],
        input_dim: int = 64,
        num_classes: int = 10,
        *,
        activation: str = "relu",
        normalization: str | None = None,
        dropout: float = 0.0,
        reg: float = 0.0,
        weight_scale: float | None = None,
        init: str = "he",
        bias_init: float = 0.0,
        dtype: type = np.float64,
        seed: int | np.random.Generator | None = None,
    ):
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}.")
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}.")
        if init not in ("he", "xavier", "small"):
            raise ValueError(f"init must be 'he', 'xavier' or 'small', got {init!r}.")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")
        self.activation, self.normalization = activation, normalization
        self.reg, self.dtype = reg, dtype
        self.num_layers = len(hidden_dims) + 1
        rng = np.random.default_rng(seed)
        dims = [input_dim, *hidden_dims, num_classes]
        self.params: dict[str, np.ndarray] = {}
        for k, (fan_in, fan_out) in enumerate(itertools.pairwise(dims), start=1):
            if weight_scale is not None:
                std = weight_scale
            else:
                std = {"he": np.sqrt(2 / fan_in), "xavier": np.sqrt(2 / (fan_in + fan_out))}.get(
                    init, 0.01
                )
            self.params[f"W{k}"] = (std * rng.standard_normal((fan_in, fan_out))).astype(dtype)
            hidden = k < self.num_layers
            self.params[f"b{k}"] = np.full(fan_out, bias_init if hidden else 0.0, dtype=dtype)
            if hidden and normalization is not None:
                self.params[f"gamma{k}"] = np.ones(fan_out, dtype=dtype)
                self.params[f"beta{k}"] = np.zeros(fan_out, dtype=dtype)
        self.bn_params = [{"mode": "train"} for _ in hidden_dims]
        self.dropout_param = {"mode": "train", "p": dropout, "seed": rng}

    def _forward(self, X, mode):
        """Scores (N, num_classes), the caches, and each hidden layer's pre-activation."""
        out, caches, pre = X.astype(self.dtype), [], []
        for bn in self.bn_params:
            bn["mode"] = mode
        self.dropout_param["mode"] = mode
        for k in range(1, self.num_layers):
            p = self.params
            out, c_aff = layers.affine_forward(out, p[f"W{k}"], p[f"b{k}"])
            c_norm = None
            if self.normalization == "batchnorm":
                bn = self.bn_params[k - 1]
                out, c_norm = layers.batchnorm_forward(out, p[f"gamma{k}"], p[f"beta{k}"], bn)
            elif self.normalization == "layernorm":
                out, c_norm = layers.layernorm_forward(out, p[f"gamma{k}"], p[f"beta{k}"])
            pre.append(out)
            if self.activation == "sigmoid":
                out, c_act = layers.sigmoid_forward(out)
            else:
                alpha = LEAKY_ALPHA if self.activation == "leaky_relu" else 0.0
                out, c_act = layers.relu_forward(out, alpha)
            out, c_drop = layers.dropout_forward(out, self.dropout_param)
            caches.append((c_aff, c_norm, c_act, c_drop))
        L = self.num_layers
        scores, c_last = layers.affine_forward(out, self.params[f"W{L}"], self.params[f"b{L}"])
        return scores, [*caches, c_last], pre

    def loss(self, X: np.ndarray, y: np.ndarray | None = None):
        """Scores for ``y=None`` (eval mode), else the loss and its gradients (train mode).

        Parameters
        ----------
        X : ndarray of shape (N, input_dim)
        y : ndarray of shape (N,) of int, or None

        Returns
        -------
        scores : ndarray of shape (N, num_classes), when y is None; otherwise
        loss : float
        grads : dict of str to ndarray, keyed and shaped like ``params``
        """
        scores, caches, _ = self._forward(X, "eval" if y is None else "train")
        if y is None:
            return scores
        loss, dout = layers.softmax_loss(scores, y)
        weights = [self.params[f"W{k}"] for k in range(1, self.num_layers + 1)]
        loss += 0.5 * self.reg * sum(float(np.sum(W * W)) for W in weights)
        grads, L = {}, self.num_layers
        dout, grads[f"W{L}"], grads[f"b{L}"] = layers.affine_backward(dout, caches[-1])
        for k in range(L - 1, 0, -1):
            c_aff, c_norm, c_act, c_drop = caches[k - 1]
            dout = layers.dropout_backward(dout, c_drop)
            if self.activation == "sigmoid":
                dout = layers.sigmoid_backward(dout, c_act)
            else:
                dout = layers.relu_backward(dout, c_act)
            if self.normalization is not None:
                backward = (
                    layers.batchnorm_backward
                    if self.normalization == "batchnorm"
                    else layers.layernorm_backward
                )
                dout, grads[f"gamma{k}"], grads[f"beta{k}"] = backward(dout, c_norm)
            dout, grads[f"W{k}"], grads[f"b{k}"] = layers.affine_backward(dout, c_aff)
        for k in range(1, L + 1):
            grads[f"W{k}"] = grads[f"W{k}"] + self.reg * self.params[f"W{k}"]
        return loss, grads

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Most probable class of each row (eval mode)."""
        return np.argmax(self.loss(X), axis=1)

    def preactivations(self, X: np.ndarray) -> list[np.ndarray]:
        """Each hidden layer's input to its activation, (N, width), in eval mode."""
        return self._forward(X, "eval")[2]


# --------------------------------------------------------------------------- update rules


def sgd(w: np.ndarray, dw: np.ndarray, config: dict) -> tuple[np.ndarray, dict]:
    """Vanilla SGD; ``config``: ``learning_rate`` (default 1e-2)."""
    config.setdefault("learning_rate", 1e-2)
    return w - config["learning_rate"] * dw, config


def sgd_momentum(w: np.ndarray, dw: np.ndarray, config: dict) -> tuple[np.ndarray, dict]:
    """SGD with momentum; ``config``: ``learning_rate``, ``momentum`` (0.9), ``velocity``."""
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("momentum", 0.9)
    v = config["momentum"] * config.get("velocity", np.zeros_like(w)) - config["learning_rate"] * dw
    config["velocity"] = v
    return w + v, config


def adam(w: np.ndarray, dw: np.ndarray, config: dict) -> tuple[np.ndarray, dict]:
    """Adam; ``config``: ``learning_rate`` (1e-3), ``beta1`` (0.9), ``beta2`` (0.999), ``eps``."""
    for key, default in [("learning_rate", 1e-3), ("beta1", 0.9), ("beta2", 0.999), ("eps", 1e-8)]:
        config.setdefault(key, default)
    t = config.get("t", 0) + 1
    m = config["beta1"] * config.get("m", np.zeros_like(w)) + (1 - config["beta1"]) * dw
    v = config["beta2"] * config.get("v", np.zeros_like(w)) + (1 - config["beta2"]) * dw**2
    m_hat, v_hat = m / (1 - config["beta1"] ** t), v / (1 - config["beta2"] ** t)
    config.update(t=t, m=m, v=v)
    return w - config["learning_rate"] * m_hat / (np.sqrt(v_hat) + config["eps"]), config


UPDATE_RULES: dict[str, Callable] = {"sgd": sgd, "sgd_momentum": sgd_momentum, "adam": adam}


# --------------------------------------------------------------------------- trainer


@dataclass
class History:
    """What :func:`train` recorded, one entry per iteration.

    Attributes
    ----------
    loss : list of float
        The mini-batch loss before each update.
    grad_norms : dict of str to list of float
        ``"W1"`` ... ``"WL"``: the Frobenius norm of each weight gradient.
    diverged : bool
        Whether training stopped early on a non-finite loss or gradient.
    """

    loss: list[float] = field(default_factory=list)
    grad_norms: dict[str, list[float]] = field(default_factory=dict)
    diverged: bool = False


def train(
    net: FullyConnectedNet,
    X: np.ndarray,
    y: np.ndarray,
    *,
    update_rule: str = "sgd",
    optim_config: dict | None = None,
    batch_size: int = 100,
    num_iters: int = 1000,
    seed: int | np.random.Generator | None = None,
    callback: Callable[[int, FullyConnectedNet], None] | None = None,
) -> History:
    """Mini-batch training of ``net`` in place; returns the per-iteration :class:`History`.

    Each iteration draws ``batch_size`` rows without replacement (a fresh permutation each
    epoch), takes the loss and gradients, records them, then updates every parameter with its
    own copy of ``optim_config``, then calls ``callback(iteration, net)`` when given. Stops
    early, with ``diverged=True``, once the loss or a gradient is no longer finite.
    """
    rule = UPDATE_RULES[update_rule]
    configs = {name: dict(optim_config or {}) for name in net.params}
    rng = np.random.default_rng(seed)
    history = History(grad_norms={f"W{k}": [] for k in range(1, net.num_layers + 1)})
    order, start = rng.permutation(len(X)), 0
    for iteration in range(num_iters):
        if start + batch_size > len(X):
            order, start = rng.permutation(len(X)), 0
        batch = order[start : start + batch_size]
        start += batch_size
        with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported below
            loss, grads = net.loss(X[batch], y[batch])
            norms = {name: float(np.linalg.norm(grads[name])) for name in history.grad_norms}
        if not (np.isfinite(loss) and all(np.isfinite(v) for v in norms.values())):
            history.diverged = True
            break
        history.loss.append(loss)
        for name, value in norms.items():
            history.grad_norms[name].append(value)
        for name, w in net.params.items():
            net.params[name], configs[name] = rule(w, grads[name], configs[name])
        if callback is not None:
            callback(iteration, net)
    return history
