"""Words, their vocabulary, a seeded split, and the training examples cut from them.

The normalisation of a word list (Debian's ``wamerican`` has 104,334 lines with capitals,
possessives like ``Aachen's`` and accented letters): each line is stripped and lower-cased, and
kept only if it is made of the letters a-z alone; duplicates (``Bill`` and ``bill``) are kept
once, in the order of their first appearance. ``wamerican`` gives 73,445 words this way.

Every model predicts the same thing: each character of a word, then the end, from the
characters before it. The token ``.`` (id 0) marks both ends, so ``emma`` is read as
``.emma.`` and gives five predictions: ``e|. m|.e m|.em a|.emm .|.emma``. Losses are the mean
negative log-likelihood of these predictions in nats per character (the end counted as one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from kfw.errors import DataError

__all__ = ["END", "WORDS", "Split", "Vocab", "load_words", "normalise", "split_words", "windows"]

WORDS = Path("/usr/share/dict/american-english")  # Debian's wamerican
END = "."  # the start and end token, id 0
_LETTERS = re.compile(r"[a-z]+")


def normalise(lines: list[str]) -> list[str]:
    """Lower-cased lines made of a-z only, each once, in order of first appearance."""
    seen: dict[str, None] = {}
    for line in lines:
        word = line.strip().lower()
        if _LETTERS.fullmatch(word):
            seen.setdefault(word, None)
    return list(seen)


def load_words(path: Path | str = WORDS) -> list[str]:
    """The normalised words of a list with one word per line (see :func:`normalise`).

    Raises
    ------
    DataError
        The file is missing or holds no word made of the letters a-z.
    """
    path = Path(path)
    if not path.is_file():
        hint = (
            " (install Debian's wamerican package, or pass --words PATH)" if path == WORDS else ""
        )
        raise DataError(f"word list {path}: no such file{hint}")
    words = normalise(path.read_text(encoding="utf-8", errors="replace").splitlines())
    if not words:
        raise DataError(f"word list {path} has no words made of the letters a-z alone")
    return words


@dataclass(frozen=True)
class Vocab:
    """The characters of the words plus ``.`` (id 0); the others follow in sorted order.

    Attributes
    ----------
    chars : str
        ``"." + sorted characters``; ``chars[i]`` is the character of id ``i``.
    """

    chars: str

    @classmethod
    def of(cls, words: list[str]) -> Vocab:
        """The vocabulary of ``words``."""
        return cls(END + "".join(sorted(set("".join(words)) - {END})))

    @property
    def size(self) -> int:
        return len(self.chars)

    @cached_property
    def index(self) -> dict[str, int]:
        """The id of each character."""
        return {c: i for i, c in enumerate(self.chars)}

    def encode(self, word: str) -> list[int]:
        """Ids of the characters of ``word`` (no end token)."""
        return [self.index[c] for c in word]

    def decode(self, ids: list[int]) -> str:
        """The characters of ``ids``."""
        return "".join(self.chars[i] for i in ids)


@dataclass(frozen=True)
class Split:
    """Disjoint lists of words: ``train`` (80%), ``val`` (10%) and ``test`` (the rest)."""

    train: list[str]
    val: list[str]
    test: list[str]


def split_words(words: list[str], seed: int = 0) -> Split:
    """Shuffle ``words`` with a seeded generator and cut it 80 / 10 / 10.

    The same words and seed give the same split. A list of fewer than three words cannot give
    three non-empty parts and is refused with :class:`~kfw.errors.DataError`.
    """
    if len(words) < 3:
        raise DataError(f"{len(words)} words cannot be split into train, validation and test")
    order = np.random.default_rng(seed).permutation(len(words))
    shuffled = [words[i] for i in order]
    n1 = max(1, int(0.8 * len(words)))
    n2 = max(n1 + 1, int(0.9 * len(words)))
    n2 = min(n2, len(words) - 1)
    return Split(shuffled[:n1], shuffled[n1:n2], shuffled[n2:])


def windows(words: list[str], vocab: Vocab, block_size: int) -> tuple[Tensor, Tensor]:
    """Every prediction of every word as (context, target) pairs.

    The context is the ``block_size`` ids before the target, padded on the left with ``.``.

    Returns
    -------
    X : Tensor
        ``(n, block_size)`` int64 contexts.
    Y : Tensor
        ``(n,)`` int64 targets; ``n = sum(len(word) + 1)``.
    """
    X, Y = [], []
    for word in words:
        context = [0] * block_size
        for ix in [*vocab.encode(word), 0]:
            X.append(context)
            Y.append(ix)
            context = [*context[1:], ix]
    return torch.tensor(X, dtype=torch.long).view(-1, block_size), torch.tensor(Y, dtype=torch.long)
