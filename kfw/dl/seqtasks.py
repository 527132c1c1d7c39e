"""Generated sequence-to-sequence tasks with exact answers, and their seeded, disjoint splits.

Three tasks, each a function ``rng -> (key, source, target)`` that draws one example:

- ``reverse``: a random string over a small alphabet and the same string backwards
  (``"abcde" -> "edcba"``);
- ``add``: two non-negative integers and their sum, written out in decimal
  (``"123+4589" -> "4712"``);
- ``dates``: a calendar date written in one of several surface forms and its ISO 8601 form
  (``"March 5, 2021"``, ``"05/03/2021"``, ``"5 Mar 21"`` ... ``-> "2021-03-05"``). Slashed and
  dashed numeric forms are day first (``DD/MM/YYYY``). Years run from 1969 to 2068, the span in
  which a two-digit year is unambiguous under the POSIX ``%y`` rule (69-99 -> 19xx, 00-68 ->
  20xx), so ``"5 Mar 21"`` has one answer.

:func:`make_split` draws distinct *keys* (the string, the pair of numbers, the date) and cuts
them into a training and a held-out part, so a held-out example never occurs in training, not
even as another surface form of the same date. Month names are spelled here rather than by
``strftime``, which follows the locale.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from kfw.errors import ConfigError

__all__ = ["TASKS", "Split", "Vocab", "make_split", "task_vocab"]

PAD, BOS, EOS, SEP = 0, 1, 2, 3
SPECIALS = ("<pad>", "<bos>", "<eos>", "<sep>")

REVERSE_ALPHABET = "abcdefghij"
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
FIRST_DAY = dt.date(1969, 1, 1)
N_DAYS = (dt.date(2068, 12, 31) - FIRST_DAY).days + 1  # 36,525
DATE_FORMS = (
    lambda d: f"{MONTHS[d.month - 1]} {d.day}, {d.year}",  # March 5, 2021
    lambda d: f"{d.day} {MONTHS[d.month - 1]} {d.year}",  # 5 March 2021
    lambda d: f"{d.day:02d}/{d.month:02d}/{d.year}",  # 05/03/2021
    lambda d: f"{d.day} {MONTHS[d.month - 1][:3]} {d.year % 100:02d}",  # 5 Mar 21
    lambda d: f"{MONTHS[d.month - 1][:3]} {d.day:02d}, {d.year}",  # Mar 05, 2021
    lambda d: f"{d.day}-{d.month}-{d.year}",  # 5-3-2021
)

Example = tuple[Hashable, str, str]


class Vocab:
    """Characters to token ids, after four specials: ``<pad>`` 0, ``<bos>`` 1, ``<eos>`` 2,
    ``<sep>`` 3 (the separator of the decoder-only model's ``input SEP output``).

    Parameters
    ----------
    chars : str
        Every character the task may write, each once.
    """

    def __init__(self, chars: str) -> None:
        if len(set(chars)) != len(chars):
            raise ConfigError(f"the characters of a vocabulary must be distinct, got {chars!r}")
        self.chars = chars
        self.stoi = {c: i + len(SPECIALS) for i, c in enumerate(chars)}

    def __len__(self) -> int:
        return len(SPECIALS) + len(self.chars)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no specials added)."""
        try:
            return [self.stoi[c] for c in text]
        except KeyError as e:
            raise ConfigError(f"character {e.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids``, stopping at the first ``<eos>`` and skipping other specials."""
        out = []
        for i in ids:
            if i == EOS:
                break
            if i >= len(SPECIALS):
                out.append(self.chars[i - len(SPECIALS)])
        return "".join(out)


def reverse_example(
    rng: np.random.Generator, min_len: int = 3, max_len: int = 8, alphabet: str = REVERSE_ALPHABET
) -> Example:
    """A string of uniform length in ``[min_len, max_len]``, uniform letters; and it reversed."""
    n = int(rng.integers(min_len, max_len + 1))
    s = "".join(alphabet[i] for i in rng.integers(0, len(alphabet), n))
    return s, s, s[::-1]


def add_example(rng: np.random.Generator, max_digits: int = 4) -> Example:
    """``"a+b" -> str(a + b)``, each operand with a uniform number of digits in 1..max_digits."""
    a, b = (
        int(rng.integers(10 ** (k - 1) if k > 1 else 0, 10**k))
        for k in rng.integers(1, max_digits + 1, 2)
    )
    return (a, b), f"{a}+{b}", str(a + b)


def dates_example(rng: np.random.Generator) -> Example:
    """A uniform day of 1969-2068 in a uniform surface form; and its ``YYYY-MM-DD``."""
    d = FIRST_DAY + dt.timedelta(days=int(rng.integers(N_DAYS)))
    form = DATE_FORMS[int(rng.integers(len(DATE_FORMS)))]
    return d, form(d), d.isoformat()


TASKS: dict[str, Callable[[np.random.Generator], Example]] = {
    "reverse": reverse_example,
    "add": add_example,
    "dates": dates_example,
}
TASK_CHARS = {
    "reverse": REVERSE_ALPHABET,
    "add": "0123456789+",
    "dates": "0123456789-/, " + "".join(sorted(set("".join(MONTHS)))),
}


def task_vocab(task: str) -> Vocab:
    """The vocabulary of a task in :data:`TASKS` (custom reverse alphabets need their own)."""
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}: choose one of {', '.join(TASKS)}")
    return Vocab(TASK_CHARS[task])


@dataclass(frozen=True)
class Split:
    """A task's examples, cut by key into training and held-out parts.

    Attributes
    ----------
    train, test : list of (source, target)
        Pairs of strings; no key of ``test`` is a key of ``train``.
    train_keys, test_keys : frozenset
        The keys behind each part (the string, the pair of operands, the date).
    """

    train: list[tuple[str, str]]
    test: list[tuple[str, str]]
    train_keys: frozenset[Hashable]
    test_keys: frozenset[Hashable]


def make_split(
    task: str | Callable[[np.random.Generator], Example],
    n_train: int,
    n_test: int,
    seed: int | np.random.Generator | None = 0,
    max_tries: int = 50,
) -> Split:
    """Draw ``n_train + n_test`` examples with distinct keys; the last ``n_test`` are held out.

    Parameters
    ----------
    task : str or callable
        A name in :data:`TASKS`, or a function ``rng -> (key, source, target)`` (a
        ``functools.partial`` of one of this module's, say, with a shorter length range).
    n_train, n_test : int
        Sizes of the two parts (``n_test >= 0``, ``n_train >= 1``).
    seed : int, Generator or None
        Seeds the draws: the same seed gives the same split.
    max_tries : int
        Give up after ``max_tries * (n_train + n_test)`` draws (the task has too few keys).

    Returns
    -------
    Split
    """
    if isinstance(task, str):
        if task not in TASKS:
            raise ConfigError(f"unknown task {task!r}: choose one of {', '.join(TASKS)}")
        task = TASKS[task]
    if n_train < 1 or n_test < 0:
        raise ConfigError(f"need n_train >= 1 and n_test >= 0, got {n_train} and {n_test}")
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    seen: dict[Hashable, tuple[str, str]] = {}  # insertion-ordered: the draw order
    for _ in range(max_tries * n):
        key, source, target = task(rng)
        seen.setdefault(key, (source, target))
        if len(seen) == n:
            break
    else:
        raise ConfigError(
            f"found only {len(seen)} distinct examples in {max_tries * n} draws, wanted {n}: "
            "the task has too few (use a longer or wider task, or fewer examples)"
        )
    keys = list(seen)
    return Split(
        train=[seen[k] for k in keys[:n_train]],
        test=[seen[k] for k in keys[n_train:]],
        train_keys=frozenset(keys[:n_train]),
        test_keys=frozenset(keys[n_train:]),
    )
