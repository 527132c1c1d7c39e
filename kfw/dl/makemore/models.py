"""The neural rungs of the ladder: Bengio's MLP, the WaveNet-style tree, the character GPT.

Each window model maps ``(B, block_size)`` context ids to ``(B, V)`` next-character logits.

- :class:`MLP` (Bengio, Ducharme, Vincent & Jauvin, 2003, "A Neural Probabilistic Language
  Model"): look up an ``n_embd`` vector per context character, concatenate them, one tanh
  hidden layer, a softmax over the vocabulary. (The paper's optional direct connections from
  the embeddings to the output are left out, as in makemore.)
- :class:`WaveNet` (makemore part 5, after van den Oord et al., 2016): instead of squashing
  the whole context into one layer, fuse consecutive PAIRS, layer by layer:
  ``(B, 8, C) -> (B, 4, 2C) -> linear -> (B, 4, H) -> (B, 2, 2H) -> ... -> (B, H)``, each
  linear followed by batch norm over the batch and time dimensions and a tanh.
- :class:`CharGPT`: :class:`kfw.dl.gpt.GPT` on whole words; see :func:`padded_rows`.

Initialisation follows makemore part 3: hidden weights ``N(0, 1) * gain / sqrt(fan_in)`` with
tanh's gain 5/3 (Kaiming), and the output layer scaled by 0.1 so the first loss is close to
``log V`` rather than confidently wrong.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from kfw.dl.gpt import GPT, GPTConfig
from kfw.dl.makemore.data import Vocab
from kfw.errors import ConfigError

__all__ = ["MLP", "BatchNormLast", "CharGPT", "FlattenConsecutive", "WaveNet", "padded_rows"]

TANH_GAIN = 5 / 3


def _init_linear(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.normal_(layer.weight, std=gain / math.sqrt(layer.in_features))
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


class MLP(nn.Module):
    """Bengio et al. (2003): embeddings of the context, one tanh layer, logits.

    Parameters
    ----------
    vocab_size, block_size : int
        Characters, and how many precede the one predicted.
    n_embd, n_hidden : int
        Embedding width and hidden units.
    """

    def __init__(
        self, vocab_size: int, block_size: int = 3, n_embd: int = 10, n_hidden: int = 200
    ) -> None:
        super().__init__()
        self.block_size = block_size
        self.wte = nn.Embedding(vocab_size, n_embd)
        nn.init.normal_(self.wte.weight)
        self.hidden = _init_linear(nn.Linear(block_size * n_embd, n_hidden), TANH_GAIN)
        self.out = _init_linear(nn.Linear(n_hidden, vocab_size), 0.1)

    def forward(self, x: Tensor) -> Tensor:
        emb = self.wte(x).flatten(1)  # (B, block_size * n_embd)
        return self.out(torch.tanh(self.hidden(emb)))  # (B, V)


class FlattenConsecutive(nn.Module):
    """``(B, T, C) -> (B, T / n, n C)``: concatenate each run of ``n`` consecutive positions.

    When one position is left the time dimension is dropped: ``(B, 1, nC) -> (B, nC)``.
    """

    def __init__(self, n: int = 2) -> None:
        super().__init__()
        self.n = n

    def forward(self, x: Tensor) -> Tensor:
        B, T, C = x.shape
        x = x.reshape(B, T // self.n, C * self.n)
        return x.squeeze(1) if x.size(1) == 1 else x


class BatchNormLast(nn.BatchNorm1d):
    """Batch norm of the last dimension, over every other one (batch, and time if present).

    torch's ``BatchNorm1d`` normalises dimension 1 of ``(N, C)`` or ``(N, C, L)``; the tree's
    activations are ``(B, T, C)``, so they are transposed in and out.
    """

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 3:
            return super().forward(x.transpose(1, 2)).transpose(1, 2)
        return super().forward(x)


class WaveNet(nn.Module):
    """The hierarchical model of makemore part 5: pairs fused, layer by layer.

    Parameters
    ----------
    vocab_size : int
    block_size : int
        Context length, a power of 2: the tree has ``log2(block_size)`` levels.
    n_embd, n_hidden : int
        Embedding width and the width of every level.
    """

    def __init__(
        self, vocab_size: int, block_size: int = 8, n_embd: int = 24, n_hidden: int = 128
    ) -> None:
        super().__init__()
        if block_size < 2 or block_size & (block_size - 1):
            raise ConfigError(f"the WaveNet's block_size must be a power of 2, got {block_size}")
        self.block_size = block_size
        self.wte = nn.Embedding(vocab_size, n_embd)
        nn.init.normal_(self.wte.weight)
        layers: list[nn.Module] = []
        width = n_embd
        for _ in range(int(math.log2(block_size))):
            layers += [
                FlattenConsecutive(2),
                _init_linear(nn.Linear(2 * width, n_hidden, bias=False), TANH_GAIN),
                BatchNormLast(n_hidden),
                nn.Tanh(),
            ]
            width = n_hidden
        self.levels = nn.Sequential(*layers)
        self.out = _init_linear(nn.Linear(n_hidden, vocab_size), 0.1)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.levels(self.wte(x)))  # (B, V)

    def shapes(self, x: Tensor) -> list[tuple[int, ...]]:
        """The shape after the embedding and after each fusion's tanh, in order."""
        h = self.wte(x)
        out = [tuple(h.shape)]
        for layer in self.levels:
            h = layer(h)
            if isinstance(layer, nn.Tanh):
                out.append(tuple(h.shape))
        return out


def padded_rows(words: list[str], vocab: Vocab, block_size: int) -> tuple[Tensor, Tensor]:
    """Each word as one row for the GPT: ``.word`` as input, ``word.`` as target.

    Inputs are padded with ``.`` (id 0) and targets with -1, which ``GPT.forward`` ignores; so
    the GPT is scored on exactly the predictions of :func:`~kfw.dl.makemore.data.windows`.

    Returns
    -------
    X, Y : Tensor
        ``(n_words, block_size)`` int64 each; ``block_size >= 1 + longest word``.
    """
    X = torch.zeros(len(words), block_size, dtype=torch.long)
    Y = torch.full((len(words), block_size), -1, dtype=torch.long)
    for r, word in enumerate(words):
        ids = vocab.encode(word)
        if len(ids) + 1 > block_size:
            raise ConfigError(f"word {word!r} is longer than the GPT's block size {block_size}")
        X[r, 1 : len(ids) + 1] = torch.tensor(ids, dtype=torch.long)
        Y[r, : len(ids) + 1] = torch.tensor([*ids, 0], dtype=torch.long)
    return X, Y


class CharGPT(nn.Module):
    """:class:`kfw.dl.gpt.GPT` over characters, one word per row.

    Parameters
    ----------
    vocab_size, block_size : int
        ``block_size`` is the longest word plus one (the leading ``.``).
    n_layer, n_head, n_embd : int
    """

    def __init__(
        self, vocab_size: int, block_size: int, n_layer: int = 2, n_head: int = 4, n_embd: int = 64
    ) -> None:
        super().__init__()
        self.block_size = block_size
        self.gpt = GPT(
            GPTConfig(vocab_size, block_size, n_layer=n_layer, n_head=n_head, n_embd=n_embd)
        )

    def forward(self, idx: Tensor, targets: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """``(B, T)`` ids -> ``(B, T, V)`` logits and the mean loss over non-padding targets."""
        return self.gpt(idx, targets)
