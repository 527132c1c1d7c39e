"""The bigram model twice: by counting, and as a one-layer net trained by gradient descent.

Counting: ``P[i, j] = (N[i, j] + k) / sum_j (N[i, j] + k)``, where ``N[i, j]`` is how often
character ``j`` follows ``i`` in the training words (``.`` at both ends) and ``k >= 0`` is the
add-k smoothing. The net: a one-hot row of ``i`` times a ``(V, V)`` weight matrix gives logits,
softmax gives ``P[i, :]``.

Like with like. The smoothed counts are exactly the maximum-likelihood estimate of the training
bigrams plus ``k`` pseudo-observations of every pair ``(i, j)``; so the net is trained on that
same objective (:func:`pseudo_count_loss`), and its optimum IS the counting model. The problem
is convex in the weights, and full-batch Adam reaches the counted loss to well under 1e-3 nats.
With ``k = 0`` an unseen pair would need a logit of minus infinity, and the validation loss of
the counted model is infinite as soon as one validation pair is unseen: use ``k > 0`` there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kfw.dl.makemore.data import Vocab
from kfw.errors import ConfigError

__all__ = ["BigramCounts", "BigramNet", "bigram_pairs", "fit_bigram_net", "pseudo_count_loss"]


def bigram_pairs(words: list[str], vocab: Vocab) -> tuple[Tensor, Tensor]:
    """``(xs, ys)``: every (previous character, next character) pair of ``.word.``."""
    xs, ys = [], []
    for word in words:
        ids = [0, *vocab.encode(word), 0]
        xs.extend(ids[:-1])
        ys.extend(ids[1:])
    return torch.tensor(xs, dtype=torch.long), torch.tensor(ys, dtype=torch.long)


class BigramCounts:
    """The bigram model by counting, with add-``k`` smoothing.

    Parameters
    ----------
    vocab_size : int
    k : float
        Pseudo-count added to every pair (0: none).

    Attributes
    ----------
    counts : Tensor
        ``(V, V)`` float64 pair counts ``N``, without the smoothing.
    probs : Tensor
        ``(V, V)`` float64 row-normalised ``N + k``.
    """

    def __init__(self, vocab_size: int, k: float = 1.0) -> None:
        if k < 0:
            raise ConfigError(f"smoothing k must be >= 0, got {k}")
        self.vocab_size = vocab_size
        self.k = k

    def fit(self, xs: Tensor, ys: Tensor) -> BigramCounts:
        V = self.vocab_size
        self.counts = torch.bincount(xs * V + ys, minlength=V * V).view(V, V).double()
        smoothed = self.counts + self.k
        # a row never seen (and k = 0) would be 0 / 0: make it uniform
        rows = smoothed.sum(1, keepdim=True)
        self.probs = torch.where(rows > 0, smoothed / rows.clamp_min(1e-300), 1.0 / V)
        return self

    def nll(self, xs: Tensor, ys: Tensor) -> float:
        """Mean negative log-likelihood of the pairs, nats per character (``inf`` if P = 0)."""
        return float(-self.probs[xs, ys].log().mean())

    def num_params(self) -> int:
        """The table's entries, ``V * V``."""
        return self.vocab_size**2

    def sample(self, n: int, generator: torch.Generator, max_len: int = 30) -> list[list[int]]:
        out = []
        for _ in range(n):
            ids, ix = [], 0
            while len(ids) < max_len:
                ix = int(torch.multinomial(self.probs[ix].float(), 1, generator=generator))
                if ix == 0:
                    break
                ids.append(ix)
            out.append(ids)
        return out


class BigramNet(nn.Module):
    """One layer, no bias: ``logits = one_hot(x) @ W``, ``W`` of shape ``(V, V)``."""

    def __init__(self, vocab_size: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.W = nn.Parameter(torch.randn(vocab_size, vocab_size, generator=generator) * 0.01)

    def forward(self, x: Tensor) -> Tensor:
        """``(n,)`` ids -> ``(n, V)`` logits (the one-hot product, written as the product)."""
        return F.one_hot(x, self.vocab_size).to(self.W.dtype) @ self.W

    def num_params(self) -> int:
        return self.W.numel()


def pseudo_count_loss(net: BigramNet, counts: Tensor, k: float) -> Tensor:
    """NLL of the training pairs plus ``k`` observations of every ``(i, j)``, per observation.

    ``(sum_pairs -log p(y|x) + k * sum_ij -log p(j|i)) / (n + k V^2)``, minimised exactly by
    the add-``k`` counting model. The sum over the ``n`` pairs is taken over the ``V^2``
    distinct pairs, each weighted by its count ``N[i, j]``: the same number and the same
    gradient as one-hot encoding all ``n`` pairs (full-batch gradient descent), at a cost of
    ``V^2`` instead of ``n`` per step.

    Parameters
    ----------
    net : BigramNet
    counts : Tensor
        ``(V, V)`` pair counts ``N`` (:attr:`BigramCounts.counts`).
    k : float
        Pseudo-count of every pair.
    """
    V = net.vocab_size
    logp = F.log_softmax(net(torch.arange(V)), dim=1)  # (V, V): row i is p(. | i)
    weights = counts.to(logp.dtype) + k
    return -(weights * logp).sum() / weights.sum()


def fit_bigram_net(
    counts: Tensor, k: float = 1.0, steps: int = 1000, lr: float = 0.5, seed: int = 0
) -> tuple[BigramNet, list[float]]:
    """Full-batch Adam (cosine-decayed step) on :func:`pseudo_count_loss`, in float64.

    Returns the net and the loss of every step.
    """
    g = torch.Generator().manual_seed(seed)
    net = BigramNet(counts.size(0), generator=g).double()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr * 0.01)
    losses = []
    for _ in range(steps):
        loss = pseudo_count_loss(net, counts, k)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return net, losses
