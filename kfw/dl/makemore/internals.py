"""makemore part 3: a deep tanh MLP at initialisation, layer by layer, with and without fixes.

The network: embeddings of a 3-character context (10 wide each), then ``depth`` hidden layers
``linear -> [batch norm] -> tanh`` of ``width`` units, then a linear output whose weights are
scaled by 0.1. One forward and backward pass on a batch of real training windows, at
initialisation, and for each tanh layer: the mean and standard deviation of its activations,
the share of them saturated (``|tanh| > 0.97``, where the slope ``1 - tanh^2`` is below 0.06
and the gradient passing back is mostly blocked), and the statistics of the gradient of the
loss with respect to them; for each hidden weight matrix, the ratio of its gradient's standard
deviation to its own (how big a step of plain SGD is, relative to the weights).

The set-ups of :data:`SETUPS`:

- ``N(0, 1)``: weights drawn from N(0, 1). Each pre-activation sums ``fan_in`` terms, so its
  std is about ``sqrt(fan_in)``: the tanh saturate and the gradients die.
- ``gain 1``: ``N(0, 1) / sqrt(fan_in)`` keeps a linear layer's output variance, but tanh
  shrinks it, so the activations fade with depth.
- ``Kaiming 5/3``: ``N(0, 1) * (5/3) / sqrt(fan_in)``: tanh's gain (He et al., 2015, as
  torch's ``calculate_gain('tanh')``) undoes the shrinking; the statistics hold with depth.
- ``N(0, 1) + batch norm``: the naive weights, but batch norm after each linear layer sets
  the pre-activations to unit variance whatever the weights' scale (Ioffe & Szegedy, 2015).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kfw.dl.makemore.models import TANH_GAIN

__all__ = ["SATURATED", "SETUPS", "InitStats", "deep_tanh_mlp", "figure", "init_stats"]

SATURATED = 0.97  # |tanh| above this counts as saturated
# name -> (gain on N(0, 1) / sqrt(fan_in), or None for plain N(0, 1); batch norm)
SETUPS: dict[str, tuple[float | None, bool]] = {
    "N(0, 1)": (None, False),
    "gain 1": (1.0, False),
    "Kaiming 5/3": (TANH_GAIN, False),
    "N(0, 1) + batch norm": (None, True),
}


def deep_tanh_mlp(
    vocab_size: int, block_size: int = 3, n_embd: int = 10, width: int = 100, depth: int = 5,
    gain: float | None = TANH_GAIN, batch_norm: bool = False, seed: int = 0,
) -> nn.Sequential:  # fmt: skip
    """Embedding, flatten, ``depth`` x [linear, batch norm if asked, tanh], linear.

    ``gain=None`` draws the hidden weights from N(0, 1); a number scales N(0, 1) by
    ``gain / sqrt(fan_in)``. The output layer's weights are always scaled by 0.1 more.
    """
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Embedding(vocab_size, n_embd), nn.Flatten()]
    nn.init.normal_(layers[0].weight)
    fan_in = block_size * n_embd
    for _ in range(depth):
        linear = nn.Linear(fan_in, width, bias=not batch_norm)
        nn.init.normal_(linear.weight, std=1.0 if gain is None else gain / math.sqrt(fan_in))
        if linear.bias is not None:
            nn.init.zeros_(linear.bias)
        layers += [linear, *([nn.BatchNorm1d(width)] if batch_norm else []), nn.Tanh()]
        fan_in = width
    out = nn.Linear(fan_in, vocab_size)
    nn.init.normal_(out.weight, std=0.1 * (1.0 if gain is None else gain / math.sqrt(fan_in)))
    nn.init.zeros_(out.bias)
    return nn.Sequential(*layers, out)


@dataclass
class InitStats:
    """Statistics of one set-up at initialisation.

    Attributes
    ----------
    setup : str
    loss : float
        The batch's loss at initialisation (``log V`` for uniform predictions).
    layers : list of dict
        One per tanh layer: ``mean``, ``std``, ``saturated`` (percent), ``grad_mean``,
        ``grad_std`` (of dloss/dactivation), ``weight_grad_ratio`` (std of the preceding
        weight's gradient over the weight's std).
    activations, gradients : list of np.ndarray
        Each tanh layer's outputs and their gradients, flattened (for the histograms).
    """

    setup: str
    loss: float
    layers: list[dict[str, float]] = field(default_factory=list)
    activations: list[np.ndarray] = field(default_factory=list)
    gradients: list[np.ndarray] = field(default_factory=list)


def init_stats(
    setup: str, X: Tensor, Y: Tensor, vocab_size: int, depth: int = 5, width: int = 100,
    seed: int = 0,
) -> InitStats:  # fmt: skip
    """One forward and backward pass of a fresh :func:`deep_tanh_mlp` on the batch ``(X, Y)``.

    ``X`` is ``(B, block_size)`` context ids (:func:`~kfw.dl.makemore.data.windows`), ``Y``
    ``(B,)`` targets; ``setup`` is a key of :data:`SETUPS`.
    """
    gain, batch_norm = SETUPS[setup]
    net = deep_tanh_mlp(vocab_size, X.size(1), width=width, depth=depth, gain=gain,
                        batch_norm=batch_norm, seed=seed)  # fmt: skip
    net.train()  # batch norm from the batch's statistics
    outs: list[Tensor] = []
    h = X
    for layer in net:
        h = layer(h)
        if isinstance(layer, nn.Tanh):
            h.retain_grad()
            outs.append(h)
    loss = F.cross_entropy(h, Y)
    loss.backward()
    stats = InitStats(setup, loss.item())
    linears = [m for m in net if isinstance(m, nn.Linear)][:-1]  # the hidden ones
    for t, linear in zip(outs, linears, strict=True):
        a, g = t.detach(), t.grad.detach()
        stats.layers.append({
            "mean": float(a.mean()), "std": float(a.std()),
            "saturated": 100.0 * float((a.abs() > SATURATED).float().mean()),
            "grad_mean": float(g.mean()), "grad_std": float(g.std()),
            "weight_grad_ratio": float(linear.weight.grad.std() / linear.weight.detach().std()),
        })  # fmt: skip
        stats.activations.append(a.flatten().numpy())
        stats.gradients.append(g.flatten().numpy())
    return stats


def figure(results: list[InitStats], kind: str = "activations") -> Any:
    """A matplotlib Figure: one panel per set-up, a histogram line per tanh layer.

    ``kind`` is ``"activations"`` or ``"gradients"``; each legend entry gives the layer's std
    (and, for activations, its saturated share). Not saved: the caller renders it (Agg).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.2 * len(results), 3.0), layout="constrained")
    axes = fig.subplots(1, len(results), sharey=False)
    for ax, res in zip(np.atleast_1d(axes), results, strict=True):
        values = res.activations if kind == "activations" else res.gradients
        for i, (v, row) in enumerate(zip(values, res.layers, strict=True)):
            if kind == "activations":
                hist, edges = np.histogram(v, bins=50, range=(-1, 1), density=True)
                label = f"layer {i + 1}: std {row['std']:.2f}, sat {row['saturated']:.0f}%"
            else:
                lim = 4 * max(float(np.std(x)) for x in values) or 1.0
                hist, edges = np.histogram(v, bins=50, range=(-lim, lim), density=True)
                label = f"layer {i + 1}: std {row['grad_std']:.1e}"
            ax.plot((edges[:-1] + edges[1:]) / 2, hist, label=label, lw=1.2)
        ax.set_title(res.setup, fontsize=10)
        ax.set_xlabel("tanh output" if kind == "activations" else "dloss / dtanh output")
        ax.legend(fontsize=6.5, loc="upper center")
        ax.tick_params(labelsize=7)
    np.atleast_1d(axes)[0].set_ylabel("density")
    fig.suptitle(f"{kind.capitalize()} of each tanh layer at initialisation", fontsize=11)
    return fig
