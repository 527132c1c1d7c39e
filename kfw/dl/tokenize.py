"""Tokenizers for the language model: characters, and a byte-level BPE trained from scratch.

``CharTokenizer`` maps each character of the training text to an id (sorted order). Text with a
character it never saw is refused with one line naming the character(s).

``BPETokenizer`` is byte-level byte-pair encoding in the manner of GPT-2 / minbpe: the text is
split into chunks by a regular expression (words with their leading space, numbers, punctuation
runs, whitespace), each chunk becomes its UTF-8 bytes (ids 0..255), and training repeatedly
replaces the most frequent adjacent pair of ids by a new id (256, 257, ...), never across chunk
boundaries. Any string encodes (every string is bytes) and decodes back exactly.

Training counts pairs once per *unique* chunk weighted by its frequency, and after each merge
updates the counts only in the chunks that contain the merged pair (an index pair -> chunks);
the next pair comes from a heap with lazy deletion. A merge therefore costs time in proportion
to where the pair occurs, not to the corpus or to the number of distinct pairs, and GPT-2's
50,257 ids train in minutes, not hours.
Reference: Sennrich et al., "Neural Machine Translation of Rare Words with Subword Units" (2016);
Radford et al., GPT-2 (2019), section 2.2.
"""

from __future__ import annotations

import heapq
import itertools
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from kfw.errors import ConfigError, KfwError

__all__ = [
    "BPETokenizer",
    "CharTokenizer",
    "make_tokenizer",
    "tokenizer_from_dict",
]

# GPT-2's split pattern written for Python's `re` (no \p{L}): contractions, an optional space and
# a run of letters / of digits / of other symbols, then whitespace. The five classes (letters
# [^\W\d_], digits, '_', other non-space symbols, whitespace) cover every character, so the chunks
# always join back to the text.
SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?(?:[^\w\s]|_)+|\s+(?!\S)|\s+"""


def _one_line_chars(chars: Iterable[str], limit: int = 10) -> str:
    chars = sorted(set(chars))
    shown = ", ".join(repr(c) for c in chars[:limit])
    return shown + (f" and {len(chars) - limit} more" if len(chars) > limit else "")


class CharTokenizer:
    """One id per character, in sorted order of the characters of the training text.

    Parameters
    ----------
    chars : str or sequence of str
        The vocabulary; duplicates are dropped and the characters sorted.

    Attributes
    ----------
    chars : str
        The sorted vocabulary; ``chars[i]`` is the character of id ``i``.
    vocab_size : int
    """

    kind = "char"

    def __init__(self, chars: str | Sequence[str]) -> None:
        unique = sorted(set(chars))
        if not unique:
            raise KfwError("a character tokenizer needs at least one character (the text is empty)")
        if any(len(c) != 1 for c in unique):
            raise KfwError("a character tokenizer's vocabulary must be single characters")
        self.chars = "".join(unique)
        self._stoi = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def fit(cls, text: str) -> CharTokenizer:
        """The tokenizer of the characters that occur in ``text``."""
        return cls(text)

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        """Ids of the characters of ``text``; a character outside the vocabulary raises KfwError."""
        stoi = self._stoi
        try:
            return [stoi[c] for c in text]
        except KeyError:
            missing = {c for c in text if c not in stoi}
            raise KfwError(
                f"characters not in the tokenizer's vocabulary: {_one_line_chars(missing)}"
            ) from None

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids``."""
        chars = self.chars
        return "".join(chars[int(i)] for i in ids)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description, read back by ``from_dict``."""
        return {"kind": self.kind, "chars": self.chars}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CharTokenizer:
        return cls(d["chars"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharTokenizer) and other.chars == self.chars

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


def _merge(ids: tuple[int, ...], pair: tuple[int, int], new_id: int) -> tuple[int, ...]:
    """Replace every non-overlapping occurrence of ``pair`` in ``ids``, left to right."""
    out: list[int] = []
    a, b = pair
    i, n = 0, len(ids)
    while i < n:
        if i < n - 1 and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return tuple(out)


def _pairs(ids: tuple[int, ...]) -> Counter[tuple[int, int]]:
    return Counter(itertools.pairwise(ids))


class BPETokenizer:
    """Byte-level byte-pair encoding: 256 byte ids, then one id per learned merge.

    Build one with ``BPETokenizer.train(text, vocab_size)`` or ``from_dict``.

    Parameters
    ----------
    merges : sequence of (int, int)
        The learned merges in order; merge ``i`` creates id ``256 + i``.
    pattern : str
        The regular expression (Python ``re``) that splits text into chunks before the merges.

    Attributes
    ----------
    merges : list of (int, int)
    vocab_size : int
        ``256 + len(merges)``.
    """

    kind = "bpe"

    def __init__(self, merges: Sequence[Sequence[int]], pattern: str = SPLIT_PATTERN) -> None:
        self.merges = [(int(a), int(b)) for a, b in merges]
        self.pattern = pattern
        self._split = re.compile(pattern)
        self._ranks = {pair: 256 + i for i, pair in enumerate(self.merges)}
        # the bytes of each id, built in merge order (a merge only refers to earlier ids)
        self._bytes = [bytes([i]) for i in range(256)]
        for i, (a, b) in enumerate(self.merges):
            if not (a < 256 + i and b < 256 + i):
                raise KfwError(f"BPE merge {i} ({a}, {b}) refers to an id not yet defined")
            self._bytes.append(self._bytes[a] + self._bytes[b])

    @classmethod
    def train(cls, text: str, vocab_size: int = 512, pattern: str = SPLIT_PATTERN) -> BPETokenizer:
        """Learn ``vocab_size - 256`` merges from ``text``, greedily on pair counts.

        Ties between equally frequent pairs go to the smallest pair (deterministic). Training
        stops early when no pair occurs twice (a short text), so ``vocab_size`` is an upper bound.

        Parameters
        ----------
        text : str
            The training text.
        vocab_size : int
            At least 256 (the bytes).
        pattern : str
            The chunking regular expression.

        Returns
        -------
        BPETokenizer
        """
        if vocab_size < 256:
            raise ConfigError(f"a byte-level BPE vocabulary has at least 256 ids, got {vocab_size}")
        chunk_counts = Counter(re.findall(pattern, text))
        # unique chunks as id tuples, and how often each occurs in the text
        words = [tuple(chunk.encode("utf-8", "surrogatepass")) for chunk in chunk_counts]
        freqs = list(chunk_counts.values())
        counts: Counter[tuple[int, int]] = Counter()
        where: defaultdict[tuple[int, int], set[int]] = defaultdict(set)  # pair -> word indices
        for w, (ids, f) in enumerate(zip(words, freqs, strict=True)):
            for pair, c in _pairs(ids).items():
                counts[pair] += c * f
                where[pair].add(w)
        # the most frequent pair, ties to the smallest (a, b), from a heap of (-count, a, b)
        # entries: a changed count pushes a fresh entry and the stale ones are skipped when
        # popped, so each merge costs the updates it makes, not a scan of every pair
        heap = [(-c, a, b) for (a, b), c in counts.items()]
        heapq.heapify(heap)
        merges: list[tuple[int, int]] = []
        for new_id in range(256, vocab_size):
            pair, best = None, 0
            while heap:
                neg, a, b = heapq.heappop(heap)
                if counts.get((a, b)) == -neg:
                    pair, best = (a, b), -neg
                    break
            if pair is None or best < 2:
                break
            merges.append(pair)
            changed: set[tuple[int, int]] = set()
            for w in sorted(where.pop(pair)):
                old, f = words[w], freqs[w]
                new = _merge(old, pair, new_id)
                # remove this word's old pairs, add its new ones
                for p, c in _pairs(old).items():
                    counts[p] -= c * f
                    if counts[p] == 0:
                        del counts[p]
                    if p != pair:
                        where[p].discard(w)
                    changed.add(p)
                for p, c in _pairs(new).items():
                    counts[p] += c * f
                    where[p].add(w)
                    changed.add(p)
                words[w] = new
            counts.pop(pair, None)
            for p in changed:
                if p in counts:
                    heapq.heappush(heap, (-counts[p], *p))
        return cls(merges, pattern)

    @property
    def vocab_size(self) -> int:
        return 256 + len(self.merges)

    def _encode_chunk(self, ids: list[int]) -> list[int]:
        # apply merges in the order they were learned: always the lowest-ranked pair present
        ranks = self._ranks
        while len(ids) >= 2:
            pair = min(itertools.pairwise(ids), key=lambda p: ranks.get(p, 1 << 62))
            if pair not in ranks:
                break
            ids = list(_merge(tuple(ids), pair, ranks[pair]))
        return ids

    def encode(self, text: str) -> list[int]:
        """Token ids of any string (lone surrogates included, through ``surrogatepass``)."""
        out: list[int] = []
        cache: dict[str, list[int]] = {}  # a text repeats its words: encode each once
        for chunk in self._split.findall(text):
            ids = cache.get(chunk)
            if ids is None:
                ids = self._encode_chunk(list(chunk.encode("utf-8", "surrogatepass")))
                cache[chunk] = ids
            out.extend(ids)
        return out

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids``; invalid UTF-8 (possible in sampled ids) becomes U+FFFD."""
        table = self._bytes
        data = b"".join(table[int(i)] for i in ids)
        try:
            return data.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            return data.decode("utf-8", "replace")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description (the merges and the split pattern)."""
        return {
            "kind": self.kind,
            "merges": [list(m) for m in self.merges],
            "pattern": self.pattern,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BPETokenizer:
        return cls(d["merges"], d.get("pattern", SPLIT_PATTERN))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, BPETokenizer)
            and other.merges == self.merges
            and other.pattern == self.pattern
        )

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size})"


Tokenizer = CharTokenizer | BPETokenizer
KINDS = {"char": CharTokenizer, "bpe": BPETokenizer}


def make_tokenizer(kind: str, text: str, vocab_size: int = 512) -> Tokenizer:
    """A tokenizer of ``kind`` ("char" or "bpe") fitted on ``text``.

    ``vocab_size`` applies to "bpe" only (the characters decide the size of "char").
    """
    if kind == "char":
        return CharTokenizer.fit(text)
    if kind == "bpe":
        return BPETokenizer.train(text, vocab_size)
    raise ConfigError(f"unknown tokenizer {kind!r}: choose one of {', '.join(KINDS)}")


def tokenizer_from_dict(d: dict[str, Any]) -> Tokenizer:
    """The tokenizer a ``to_dict()`` described (as saved with a run)."""
    kind = d.get("kind") if isinstance(d, dict) else None
    if kind not in KINDS:
        raise KfwError(f"unknown tokenizer kind {kind!r} in the saved tokenizer")
    return KINDS[kind].from_dict(d)
