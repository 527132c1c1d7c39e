"""The corpus: read, tokenized, split 90/10 contiguously, and the windows batches are made of."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from kfw.dl.lm.config import LMConfig
from kfw.dl.tokenize import make_tokenizer
from kfw.errors import DataError

TRAIN_FRACTION = 0.9


# ---------------------------------------------------------------------------------------------
# data


@dataclass
class Corpus:
    """A tokenized corpus split 90/10 (contiguous): ``train`` and ``val`` are 1-D int64 tensors."""

    path: Path
    sha: str
    tokenizer: Any
    train: torch.Tensor
    val: torch.Tensor

    @property
    def n_tokens(self) -> int:
        return len(self.train) + len(self.val)


def read_text(path: Path) -> tuple[str, str]:
    """The corpus text and its SHA-256; :class:`DataError` when missing, empty or not UTF-8."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"corpus {path}: no such file")
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(f"corpus {path} is empty")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"corpus {path} is not UTF-8 text (byte {exc.start})") from None
    return text, hashlib.sha256(raw).hexdigest()


def split_point(n: int) -> int:
    return int(n * TRAIN_FRACTION)


def load_corpus(
    path: Path, cfg: LMConfig, tokenizer: Any = None, text_sha: tuple[str, str] | None = None
) -> Corpus:
    """Read, tokenize (:func:`fit_tokenizer`) and split a corpus, in memory.

    ``tokenizer`` (e.g. from a checkpoint) is reused. ``kfw lm train`` reads its ids from
    memory-mapped shards instead (:func:`kfw.dl.lm.shards.token_streams`); the split is the same.
    """

    text, sha = text_sha or read_text(path)
    tokenizer = tokenizer or fit_tokenizer(text, cfg)
    data = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    n = split_point(len(data))
    train, val = data[:n], data[n:]
    check_length(path, cfg, len(data), len(val))
    return Corpus(Path(path), sha, tokenizer, train, val)


def fit_tokenizer(text: str, cfg: LMConfig) -> Any:
    """The run's tokenizer: every character of ``text``, or BPE merges learned on its training part.

    Characters: the vocabulary is every character of the corpus (nanoGPT's choice: a character
    seen only in validation must still be encodable). BPE: the merges are learned on the first
    90% of the characters only, so the validation loss is measured on text the tokenizer never
    saw.
    """
    if cfg.tokenizer == "char":
        return make_tokenizer("char", text)
    return make_tokenizer("bpe", text[: split_point(len(text))], vocab_size=cfg.bpe_vocab)


def check_length(path: Path, cfg: LMConfig, n_tokens: int, n_val: int) -> None:
    """:class:`DataError` when the validation part cannot hold one window of context + 1."""
    need = cfg.block_size + 1
    if n_val < need:
        unit = "characters" if cfg.tokenizer == "char" else "tokens"
        least = math.ceil(need / (1 - TRAIN_FRACTION))
        raise DataError(
            f"corpus {path} is too short: {n_tokens} {unit}, its 10% validation part has "
            f"{n_val}, context {cfg.block_size} needs {need} (at least {least} in all)"
        )


def get_batch(
    data: torch.Tensor, starts: torch.Tensor, block: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows at ``starts``: inputs ``data[s : s+block]`` and targets shifted by one, (B, T)."""
    offsets = torch.arange(block)
    ix = starts[:, None] + offsets  # (B, T)
    return data[ix], data[ix + 1]


def random_starts(n: int, block: int, batch: int, generator: torch.Generator) -> torch.Tensor:
    """``batch`` window starts in ``[0, n - block)``, from ``generator``."""
    return torch.randint(n - block, (batch,), generator=generator)


def fixed_starts(n: int, block: int, batch: int, iters: int, seed: int) -> torch.Tensor:
    """The evaluation windows: ``(iters, batch)`` starts drawn once from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(n - block, (iters, batch), generator=g)
