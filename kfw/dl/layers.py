"""Layers written from their papers' equations with tensor operations.

- :class:`BatchNorm1d`: Ioffe & Szegedy (2015), Algorithm 1 (training: normalise with the
  mini-batch mean and biased variance, then scale by gamma and shift by beta) and Algorithm 2
  (inference: the same affine map with population statistics, the variance unbiased).
- :class:`Dropout`: Srivastava et al. (2014), in the "inverted" form: units are kept with
  probability ``p_retain`` and the kept ones scaled by ``1 / p_retain`` during training, so the
  expectation of every unit is unchanged and inference is the identity (the paper instead scales
  the weights by ``p`` at test time; the two give the same expected pre-activations).
- :func:`max_norm_`: the max-norm constraint of the same paper (section 5.1): after each update,
  every hidden unit's incoming weight vector is projected onto the ball of radius ``c``.

- :class:`ReplicaLinear`: R independent fully connected layers as one ``bmm``.

All layers accept a leading "replica" dimension, ``(R, B, C)``, so that several independently
initialised networks (seeds) train as one batched computation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class BatchNorm1d(nn.Module):
    """Batch normalisation over the batch dimension (-2) of ``(B, C)`` or ``(R, B, C)`` inputs.

    Training (Algorithm 1), for each feature over the ``m`` rows of the mini-batch::

        mu    = mean(x)                     # (C,)
        var   = mean((x - mu)**2)           # biased: the normalisation of the batch itself
        y     = gamma * (x - mu) / sqrt(var + eps) + beta

    Inference (Algorithm 2): ``y = gamma * (x - E[x]) / sqrt(Var[x] + eps) + beta``, with
    ``E[x]`` and ``Var[x] = m / (m - 1) * E_B[var]`` estimated over training mini-batches.

    Two estimates of the population statistics:

    - ``momentum=None``: the paper's exact average over every training mini-batch seen so far
      (a cumulative mean of ``mu`` and of the unbiased ``m / (m - 1) * var``) — Algorithm 2 as
      written, for a network whose weights have stopped changing;
    - ``momentum=float``: an exponential moving average ``s <- (1 - momentum) * s + momentum * b``
      of the same two batch quantities (the paper's "moving averages" remark; it tracks a network
      that is still training, which is what an evaluation during training needs).

    Both match ``torch.nn.BatchNorm1d`` with the same ``momentum`` (torch's ``momentum=None`` is
    the same cumulative average), which the tests check.

    Parameters
    ----------
    num_features : int
        ``C``.
    eps : float
        Added to the variance for numerical stability.
    momentum : float or None
        See above.
    replicas : int or None
        When set, inputs are ``(R, B, C)`` and every replica has its own gamma, beta and
        statistics, shaped ``(R, 1, C)``.

    Attributes
    ----------
    weight, bias : nn.Parameter
        gamma (ones) and beta (zeros).
    running_mean, running_var : torch.Tensor
        The population estimates used in eval mode.
    num_batches_tracked : torch.Tensor
        How many mini-batches went into them.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        replicas: int | None = None,
    ) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum, self.replicas = (
            num_features,
            eps,
            momentum,
            replicas,
        )
        shape = (num_features,) if replicas is None else (replicas, 1, num_features)
        self.weight = nn.Parameter(torch.ones(shape))
        self.bias = nn.Parameter(torch.zeros(shape))
        self.register_buffer("running_mean", torch.zeros(shape))
        self.register_buffer("running_var", torch.ones(shape))
        self.register_buffer("num_batches_tracked", torch.zeros((), dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            m = x.shape[-2]
            mu = x.mean(dim=-2, keepdim=True)  # (..., 1, C)
            var = ((x - mu) ** 2).mean(dim=-2, keepdim=True)  # biased, as Algorithm 1
            x_hat = (x - mu) / torch.sqrt(var + self.eps)
            with torch.no_grad():
                self._track(mu, var * m / max(m - 1, 1))
        else:
            x_hat = (x - self.running_mean) / torch.sqrt(self.running_var + self.eps)
        return self.weight * x_hat + self.bias

    @torch.no_grad()
    def _track(self, mu: torch.Tensor, var_unbiased: torch.Tensor) -> None:
        if self.replicas is None:
            mu, var_unbiased = mu.reshape(-1), var_unbiased.reshape(-1)  # (C,)
        self.num_batches_tracked += 1
        # exact average: the k-th batch enters with weight 1/k
        w = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        self.running_mean.lerp_(mu, w)
        self.running_var.lerp_(var_unbiased, w)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, replicas={self.replicas}"


class Dropout(nn.Module):
    """Inverted dropout: keep each unit with probability ``p_retain``, scale kept ones by ``1/p``.

    ``E[dropout(x)] = x`` elementwise; in eval mode the layer is the identity.

    Parameters
    ----------
    p_retain : float or sequence of float
        The probability of keeping a unit (the paper's ``p``: 0.8 for inputs, 0.5 for hidden
        units); ``1.0`` disables dropout. A sequence gives one probability per replica, for
        inputs ``(R, B, C)``.
    """

    def __init__(self, p_retain: float | Sequence[float]) -> None:
        super().__init__()
        ps = (
            [float(p_retain)]
            if isinstance(p_retain, (int, float))
            else [float(p) for p in p_retain]
        )
        if not all(0.0 < p <= 1.0 for p in ps):
            raise ValueError(f"p_retain must be in (0, 1], got {p_retain}")
        self.p_retain = p_retain
        shape = () if isinstance(p_retain, (int, float)) else (len(ps), 1, 1)
        self.register_buffer("p", torch.tensor(ps).reshape(shape), persistent=False)
        self.identity = all(p == 1.0 for p in ps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.identity:
            return x
        mask = torch.rand_like(x) < self.p  # Bernoulli(p) per unit
        return x * mask / self.p

    def extra_repr(self) -> str:
        return f"p_retain={self.p_retain}"


@torch.no_grad()
def max_norm_(weight: torch.Tensor, c: float | torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Project each unit's incoming weight vector onto ``||w|| <= c``, in place.

    With the default ``dim=-1`` ``weight`` is shaped like ``nn.Linear.weight``: ``(out, in)``,
    one row per unit. For :class:`ReplicaLinear` weights ``(R, in, out)`` pass ``dim=-2`` (and
    ``c`` may then be an ``(R, 1, 1)`` tensor, ``inf`` where a replica is unconstrained). Vectors
    with norm at most ``c`` are left untouched; longer ones are rescaled to norm ``c``.

    Returns
    -------
    torch.Tensor
        ``weight`` itself.
    """
    norms = weight.norm(dim=dim, keepdim=True)  # one norm per unit
    weight.mul_(torch.clamp(c / norms.clamp_min(1e-12), max=1.0))
    return weight


class ReplicaLinear(nn.Module):
    """``y = x @ W + b`` for R independent replicas: ``(R, B, in) -> (R, B, out)``.

    ``weight`` is ``(R, in, out)`` so that ``bmm`` needs no transpose; unit ``j``'s incoming
    weights are ``weight[r, :, j]``.
    """

    def __init__(self, replicas: int, n_in: int, n_out: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(replicas, n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(replicas, 1, n_out)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bias is None:
            return torch.bmm(x, self.weight)
        return torch.baddbmm(self.bias, x, self.weight)
