"""Token shards: a corpus tokenized once, written as memory-mapped uint16 files, read by window.

A language-model run trains on token ids, not on text. Tokenizing is the slow part for a
byte-level BPE (pure Python, a few MB/s), so :func:`token_streams` does it once per (corpus,
tokenizer) and keeps the ids under ``KFW_HOME/work/tokens/<key>/``:

- ``shard_0000.bin``, ``shard_0001.bin``, ...: consecutive pieces of the corpus's id stream,
  ``SHARD_TOKENS`` ids each at most, raw little-endian ``uint16`` (``uint32`` for a vocabulary
  past 65,536 ids), the layout of build-nanogpt's FineWeb shards;
- ``meta.json``: the dtype, the number of ids in each shard and the tokenizer's description.

The folder is written beside its final name and renamed into place, so an interrupted encoding
leaves nothing that a later run could mistake for a finished one. Reading maps the files
(``np.memmap``): a batch touches only the pages of its windows, and a corpus larger than memory
trains as well as a small one.

The text is encoded in pieces of about ``PIECE_CHARS`` characters, cut only where the split
pattern of the BPE cannot join across the cut (after a newline that follows a non-space and
precedes a non-space), so the ids are exactly those of encoding the whole text at once.

A :class:`TokenStream` is a view ``[start, stop)`` of the shards' concatenation: the training
part is the first 90% of the ids, the validation part the rest (:func:`split_point`), the same
contiguous split as before. A window may run across a shard boundary: the shards are one
stream.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kfw.errors import DataError, KfwError

SHARD_TOKENS = 100_000_000
PIECE_CHARS = 1 << 20
META = "meta.json"


class TokenStream:
    """The ids ``[start, stop)`` of the concatenation of ``arrays`` (1-D integer arrays).

    Parameters
    ----------
    arrays : sequence of ndarray
        The shards in order (``np.memmap`` or in memory).
    start, stop : int, optional
        The view's bounds in the concatenation (default: all of it).
    """

    def __init__(self, arrays: Sequence[np.ndarray], start: int = 0, stop: int | None = None):
        self.arrays = list(arrays)
        self.offsets = np.cumsum([0] + [len(a) for a in self.arrays])  # shard i: [o_i, o_i+1)
        total = int(self.offsets[-1])
        self.start = start
        self.stop = total if stop is None else stop
        if not 0 <= self.start <= self.stop <= total:
            raise KfwError(f"token view [{start}, {stop}) outside 0..{total}")

    @classmethod
    def of(cls, data: TokenStream | torch.Tensor | np.ndarray) -> TokenStream:
        """``data`` as a stream (a 1-D tensor or array becomes a one-shard stream)."""
        if isinstance(data, TokenStream):
            return data
        if isinstance(data, torch.Tensor):
            data = data.numpy()
        return cls([np.asarray(data)])

    def __len__(self) -> int:
        return self.stop - self.start

    def read(self, pos: int, length: int) -> np.ndarray:
        """``length`` ids from position ``pos`` of the view, across shard boundaries."""
        a = self.start + pos
        b = a + length
        if pos < 0 or b > self.stop:
            raise KfwError(f"read of [{pos}, {pos + length}) outside a view of {len(self)} ids")
        first = int(np.searchsorted(self.offsets, a, side="right")) - 1
        parts, i = [], first
        while a < b:
            lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
            take = min(b, hi) - a
            parts.append(self.arrays[i][a - lo : a - lo + take])
            a += take
            i += 1
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def batch(self, starts: torch.Tensor, block: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows at ``starts``: inputs ``[s, s+block)`` and targets shifted by one, (B, T) int64."""
        if len(self.arrays) == 1:  # one shard: one fancy-indexing gather
            ix = self.start + starts.numpy()[:, None] + np.arange(block + 1)
            rows = self.arrays[0][ix]
        else:
            rows = np.stack([self.read(int(s), block + 1) for s in starts])
        rows = torch.from_numpy(rows.astype(np.int64))
        return rows[:, :-1], rows[:, 1:]


def dtype_for(vocab: int) -> np.dtype:
    """``uint16`` while every id fits (GPT-2's 50257 does), else ``uint32``."""
    return np.dtype(np.uint16 if vocab <= 1 << 16 else np.uint32)


def safe_cuts(text: str, piece: int = PIECE_CHARS) -> Iterator[str]:
    """``text`` in pieces of about ``piece`` characters, cut where the BPE chunks cannot join.

    A cut goes right after a ``\\n`` that has a non-space before it and a non-space after it:
    every chunking rule of the split pattern ends a chunk there on both sides, so encoding the
    pieces one by one gives the ids of encoding the whole. Where no such place exists within
    the next ``piece`` characters, the cut moves further on.
    """
    n, i = len(text), 0
    while i < n:
        j = i + piece
        while j < n and not (
            text[j - 1] == "\n" and not text[j - 2].isspace() and not text[j].isspace()
        ):
            j += 1
        yield text[i:j]
        i = j


def write_shards(
    pieces: Iterable[Sequence[int]],
    folder: Path,
    vocab: int,
    meta: dict[str, Any],
    shard_tokens: int = SHARD_TOKENS,
    check: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Write the ids of ``pieces`` as shards in ``folder`` (whole or not at all); its meta.

    ``check`` sees the number of ids before the folder is put in place; what it raises leaves
    nothing behind, not even the parent folders this call created.
    """
    folder = Path(folder)
    dtype = dtype_for(vocab)
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    created = [d for d in folder.parents if not d.exists()]  # deepest first
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    counts: list[int] = []
    try:
        out, filled = None, 0
        for ids in pieces:
            arr = np.asarray(ids, dtype=np.int64)
            if arr.size and (arr.min() < 0 or arr.max() >= vocab):
                raise KfwError(f"token id outside 0..{vocab - 1} while writing shards")
            arr = arr.astype(dtype)
            while arr.size:
                if out is None or filled == shard_tokens:
                    if out is not None:
                        out.close()
                    out = open(tmp / f"shard_{len(counts):04d}.bin", "wb")  # noqa: SIM115
                    counts.append(0)
                    filled = 0
                take = min(arr.size, shard_tokens - filled)
                out.write(arr[:take].tobytes())
                counts[-1] += take
                filled += take
                arr = arr[take:]
        if out is not None:
            out.close()
        if check is not None:
            check(sum(counts))
        info = {**meta, "dtype": dtype.name, "shards": counts, "n_tokens": sum(counts)}
        (tmp / META).write_text(json.dumps(info, indent=1))
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for d in created:
            with contextlib.suppress(OSError):
                d.rmdir()
        raise
    return info


def open_shards(folder: Path) -> tuple[TokenStream, dict[str, Any]]:
    """The shards of ``folder`` mapped read-only, as one stream, and their meta."""
    folder = Path(folder)
    try:
        info = json.loads((folder / META).read_text())
        dtype = np.dtype(info["dtype"])
        arrays = []
        for i, count in enumerate(info["shards"]):
            path = folder / f"shard_{i:04d}.bin"
            if path.stat().st_size != count * dtype.itemsize:
                raise ValueError(f"{path.name} holds {path.stat().st_size} bytes, not {count} ids")
            arrays.append(np.memmap(path, dtype=dtype, mode="r", shape=(count,)))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise KfwError(
            f"token shards {folder} are damaged ({exc}); delete the folder to rebuild them"
        ) from None
    return TokenStream(arrays), info


def shards_key(corpus_sha: str, tokenizer: dict[str, Any]) -> str:
    """The cache key of a corpus's ids: its bytes' hash and the tokenizer's description."""
    blob = json.dumps({"corpus": corpus_sha, "tokenizer": tokenizer}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def token_streams(
    text: str,
    sha: str,
    tokenizer: Any,
    vocab: int,
    work: Path,
    train_fraction: float,
    shard_tokens: int = SHARD_TOKENS,
    check: Callable[[int, int], None] | None = None,
) -> tuple[TokenStream, TokenStream, Path]:
    """The corpus's ids from the shard cache under ``work`` (written on first use).

    ``check(n_tokens, n_val)`` may refuse the corpus (too short for a window) before anything
    is written. Returns the training view (the first ``train_fraction`` of the ids), the
    validation view (the rest) and the shard folder.
    """

    def cut_at(n: int) -> int:
        return int(n * train_fraction)

    def refuse(n: int) -> None:
        if n < 2:
            raise DataError(f"the corpus gives {n} tokens: too few to train on")
        if check is not None:
            check(n, n - cut_at(n))

    desc = tokenizer.to_dict()
    folder = Path(work) / "tokens" / shards_key(sha, desc)
    if not (folder / META).is_file():
        pieces = (tokenizer.encode(piece) for piece in safe_cuts(text))
        write_shards(pieces, folder, vocab, {"corpus_sha256": sha}, shard_tokens, refuse)
    stream, _ = open_shards(folder)
    n = len(stream)
    refuse(n)
    cut = cut_at(n)
    return TokenStream(stream.arrays, 0, cut), TokenStream(stream.arrays, cut, n), folder
