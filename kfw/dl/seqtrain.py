"""Train and score an encoder-decoder or a decoder-only GPT on a generated task, same budget.

The two architectures see the same examples, the same optimiser and the same schedule:

- ``encdec`` (:class:`kfw.dl.seq2seq.Seq2Seq`): the source goes to the encoder, the decoder
  reads ``<bos> target`` and predicts ``target <eos>``.
- ``gpt`` (:class:`kfw.dl.gpt.GPT`): one sequence ``source <sep> target <eos>``; the loss counts
  only the predictions of ``target <eos>`` (the other targets are ``-1``, which ``GPT.forward``
  ignores). Its width is chosen so that its parameter count is the encoder-decoder's, as near
  as a multiple of the head count allows (:func:`gpt_for_budget`).

Optimisation is AdamW (decay on matrices only) with linear warm-up and cosine decay, kfw's
language-model helpers (:func:`kfw.dl.lm.loop.lr_at`, :func:`kfw.dl.lm.loop.make_optimizer`).
The score is exact match on the held-out part: the decoded string equals the answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kfw.dl.device import cpu_threads
from kfw.dl.gpt import GPT, GPTConfig
from kfw.dl.lm.config import LMConfig
from kfw.dl.lm.loop import lr_at, make_optimizer
from kfw.dl.seq2seq import Seq2Seq, Seq2SeqConfig, beam_search, greedy_search
from kfw.dl.seqtasks import BOS, EOS, PAD, SEP, Split, Vocab, make_split, task_vocab
from kfw.errors import ConfigError
from kfw.progress import NULL, Callback

__all__ = [
    "ARCHS",
    "SeqResult",
    "SeqTraining",
    "build",
    "decode",
    "encdec_batch",
    "exact_match",
    "gpt_batch",
    "gpt_for_budget",
    "gpt_generate",
    "gpt_stepper",
    "n_params",
    "run_task",
    "train_seq",
]

ARCHS = ("encdec", "gpt")


@dataclass
class SeqTraining:
    """The model and the optimisation of one run.

    Attributes
    ----------
    n_layer : int
        Encoder-decoder: blocks per side; GPT: twice that (the same depth end to end).
    n_head, n_embd : int
        The encoder-decoder's heads and width; the GPT's width is matched to its parameters.
    steps, batch_size : int
        Optimiser steps and examples per step.
    learning_rate, min_lr, warmup_iters
        Warm-up to ``learning_rate``, cosine to ``min_lr`` at the last step.
    weight_decay, grad_clip : float
        AdamW's decay on matrices and the clipping norm.
    """

    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    steps: int = 2000
    batch_size: int = 64
    learning_rate: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0

    def schedule(self) -> LMConfig:
        """The same numbers as the language model's config, for its schedule and optimiser."""
        return LMConfig(
            learning_rate=self.learning_rate, min_lr=self.min_lr, warmup_iters=self.warmup_iters,
            lr_decay_iters=self.steps, max_iters=self.steps, weight_decay=self.weight_decay,
            grad_clip=self.grad_clip, batch_size=self.batch_size,
        )  # fmt: skip


@dataclass
class SeqResult:
    """What one training run gave.

    Attributes
    ----------
    model : nn.Module
        The trained model (eval mode).
    arch : str
        ``"encdec"`` or ``"gpt"``.
    n_params : int
        Parameters, the tied embedding counted once.
    steps : int
        Optimiser steps taken.
    seconds : float
        Wall time of the training loop.
    losses : list of float
        Training loss of every step.
    """

    model: nn.Module
    arch: str
    n_params: int
    steps: int
    seconds: float
    losses: list[float] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# models


def _max_len(split: Split) -> tuple[int, int]:
    pairs = split.train + split.test
    return max(len(s) for s, _ in pairs), max(len(t) for _, t in pairs)


def gpt_for_budget(
    n_params: int, vocab_size: int, block_size: int, n_layer: int, n_head: int
) -> GPTConfig:
    """The GPT of ``n_layer`` blocks whose parameter count is nearest ``n_params``.

    Widths are multiples of ``n_head``; the count is computed from the shapes (tied head,
    learned positions, biases), not by building each candidate.
    """

    def count(c: int) -> int:
        block = 12 * c * c + 13 * c  # qkv + proj + fc + proj weights and biases, two LayerNorms
        return vocab_size * c + block_size * c + n_layer * block + 2 * c

    widths = range(n_head, 64 * n_head + 1, n_head)
    c = min(widths, key=lambda w: abs(count(w) - n_params))
    return GPTConfig(
        vocab_size=vocab_size, block_size=block_size, n_layer=n_layer, n_head=n_head, n_embd=c
    )


def build(arch: str, split: Split, vocab: Vocab, cfg: SeqTraining) -> nn.Module:
    """An untrained model of ``arch`` sized for the split's longest source and target."""
    if arch not in ARCHS:
        raise ConfigError(f"unknown architecture {arch!r}: choose one of {', '.join(ARCHS)}")
    src_len, tgt_len = _max_len(split)
    s2s = Seq2SeqConfig(
        vocab_size=len(vocab), max_len=max(src_len, tgt_len + 1), n_enc=cfg.n_layer,
        n_dec=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd, pad_id=PAD, bos_id=BOS,
        eos_id=EOS,
    )  # fmt: skip
    encdec = Seq2Seq(s2s)
    if arch == "encdec":
        return encdec
    block = src_len + 1 + tgt_len  # source <sep> target; <eos> is only ever a target
    return GPT(gpt_for_budget(encdec.num_params(), len(vocab), block, 2 * cfg.n_layer, cfg.n_head))


def n_params(model: nn.Module) -> int:
    """Parameters, shared (tied) tensors once."""
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------------
# batches


def _pad(rows: Sequence[Sequence[int]], value: int) -> Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([list(r) + [value] * (width - len(r)) for r in rows], dtype=torch.long)


def encdec_batch(pairs: Sequence[tuple[str, str]], vocab: Vocab) -> tuple[Tensor, ...]:
    """``src (B, S)`` padded with ``<pad>``, decoder input ``<bos> target`` and its targets
    ``target <eos>`` (``-1`` on padding), both ``(B, T)``."""
    src = _pad([vocab.encode(s) for s, _ in pairs], PAD)
    tgt = [vocab.encode(t) for _, t in pairs]
    return src, _pad([[BOS, *t] for t in tgt], PAD), _pad([[*t, EOS] for t in tgt], -1)


def gpt_batch(pairs: Sequence[tuple[str, str]], vocab: Vocab) -> tuple[Tensor, Tensor]:
    """``idx`` = ``source <sep> target`` and ``targets`` = next tokens, ``-1`` except where the
    next token is part of ``target <eos>``; both ``(B, T)``, right-padded."""
    idx, targets = [], []
    for s, t in pairs:
        src, tgt = vocab.encode(s), vocab.encode(t)
        idx.append([*src, SEP, *tgt])
        targets.append([-1] * len(src) + [*tgt, EOS])
    return _pad(idx, PAD), _pad(targets, -1)


def _loss(model: nn.Module, batch: tuple[Tensor, ...]) -> Tensor:
    _, loss = model(*batch)
    return loss


# ---------------------------------------------------------------------------------------------
# training and scoring


def train_seq(
    arch: str,
    split: Split,
    vocab: Vocab,
    cfg: SeqTraining | None = None,
    seed: int = 0,
    callback: Callback = NULL,
) -> SeqResult:
    """Train ``arch`` on ``split.train`` for ``cfg.steps`` steps of random batches.

    Parameters
    ----------
    arch : str
        ``"encdec"`` or ``"gpt"``.
    split : Split
        From :func:`kfw.dl.seqtasks.make_split`; only its training part is read here.
    vocab : Vocab
        The task's characters.
    cfg : SeqTraining, optional
        Defaults to ``SeqTraining()``.
    seed : int
        Seeds the weights and the batches.
    callback : Callback
        Receives ``log({"loss": ..., "lr": ...}, step)`` every 50 steps and after the last.

    Returns
    -------
    SeqResult
    """
    cfg = cfg or SeqTraining()
    if cfg.steps < 1 or cfg.batch_size < 1:
        raise ConfigError(f"steps and batch_size must be >= 1, got {cfg.steps}, {cfg.batch_size}")
    torch.manual_seed(seed)
    model = build(arch, split, vocab, cfg)
    sched = cfg.schedule()
    opt = make_optimizer(model, sched, "cpu")
    make = encdec_batch if arch == "encdec" else gpt_batch
    gen = torch.Generator().manual_seed(seed)
    losses = []
    model.train()
    t0 = time.perf_counter()
    for it in range(cfg.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(it, sched)
        pick = torch.randint(len(split.train), (cfg.batch_size,), generator=gen).tolist()
        loss = _loss(model, make([split.train[i] for i in pick], vocab))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        losses.append(loss.item())
        if it % 50 == 0 or it == cfg.steps - 1:
            callback.log({"loss": losses[-1], "lr": lr_at(it, sched)}, step=it)
    seconds = time.perf_counter() - t0
    model.eval()
    return SeqResult(model, arch, n_params(model), cfg.steps, seconds, losses)


@torch.no_grad()
def decode(
    model: nn.Module,
    sources: Sequence[str],
    vocab: Vocab,
    max_new_tokens: int,
    beam: int = 1,
    length_penalty: float = 0.0,
    batch_size: int = 512,
) -> list[str]:
    """Decoded outputs of ``model`` (a :class:`Seq2Seq` or a :class:`GPT`) for ``sources``.

    The GPT reads each source as the prefix ``source <sep>`` and decodes from there; sources of
    one length are decoded together (the GPT has no padding mask, so a batch must not need one).
    """
    model.eval()
    out: list[str] = [""] * len(sources)
    if isinstance(model, Seq2Seq):
        groups = [list(range(i, min(i + batch_size, len(sources))))
                  for i in range(0, len(sources), batch_size)]  # fmt: skip
    else:
        by_len: dict[int, list[int]] = {}
        for i, s in enumerate(sources):
            by_len.setdefault(len(s), []).append(i)
        groups = [
            g[j : j + batch_size] for g in by_len.values() for j in range(0, len(g), batch_size)
        ]
    for rows in groups:
        if isinstance(model, Seq2Seq):
            src = _pad([vocab.encode(sources[i]) for i in rows], PAD)
            tokens, _ = model.generate(src, max_new_tokens, beam, length_penalty)
        else:
            prefix = torch.tensor([vocab.encode(sources[i]) for i in rows], dtype=torch.long)
            tokens, _ = gpt_generate(model, prefix, max_new_tokens, beam, length_penalty)
        for i, row in zip(rows, tokens.tolist(), strict=True):
            out[i] = vocab.decode(row)
    return out


def gpt_stepper(model: GPT, prefix: Tensor, k: int = 1) -> Callable[[Tensor], Tensor]:
    """The ``step`` function of :func:`kfw.dl.seq2seq.beam_search` for the GPT.

    ``prefix (B, S)`` holds sources of one length; ``k`` rows each. A step's ``seqs (B*k, t)``
    (``<sep>`` and the tokens so far) is appended to the source and the whole sequence is run
    again.
    """
    src = prefix.repeat_interleave(k, 0)  # (B*k, S)

    def step(seqs: Tensor) -> Tensor:
        logits, _ = model(torch.cat((src, seqs), dim=1))
        return F.log_softmax(logits[:, -1].float(), dim=-1)

    return step


@torch.no_grad()
def gpt_generate(
    model: GPT, prefix: Tensor, max_new_tokens: int, beam: int = 1, length_penalty: float = 0.0
) -> tuple[Tensor, Tensor]:
    """Greedy (``beam=1``) or beam-search continuation of ``prefix <sep>`` by the GPT.

    ``prefix (B, S)`` holds sources of one length. Returns tokens and scores as
    :func:`kfw.dl.seq2seq.beam_search`.
    """
    start = torch.full((prefix.size(0), 1), SEP, dtype=torch.long, device=prefix.device)
    step = gpt_stepper(model, prefix, beam)
    if beam == 1:
        return greedy_search(step, start, max_new_tokens, EOS, PAD)
    return beam_search(step, start, beam, max_new_tokens, EOS, PAD, length_penalty)


def exact_match(
    model: nn.Module, pairs: Sequence[tuple[str, str]], vocab: Vocab, beam: int = 1, **kw: Any
) -> float:
    """Fraction of ``pairs`` whose decoded source equals the target exactly."""
    if not pairs:
        raise ConfigError("exact match of no examples is undefined")
    longest = max(len(t) for _, t in pairs) + 1  # the answer and <eos>
    got = decode(model, [s for s, _ in pairs], vocab, longest, beam, **kw)
    return sum(g == t for g, (_, t) in zip(got, pairs, strict=True)) / len(pairs)


def run_task(
    task: str,
    arch: str = "encdec",
    steps: int = 2000,
    beam: int = 1,
    seed: int = 0,
    n_train: int = 20000,
    n_test: int = 1000,
    threads: int | None = None,
    callback: Callback = NULL,
) -> dict[str, Any]:
    """Train ``arch`` on a task of :data:`kfw.dl.seqtasks.TASKS` and score it on held-out keys.

    Parameters
    ----------
    task : str
        ``"reverse"``, ``"add"`` or ``"dates"``.
    arch : str
        ``"encdec"`` or ``"gpt"``.
    steps : int
        Optimiser steps (the other settings are :class:`SeqTraining`'s defaults).
    beam : int
        Beam width of the second score (1: greedy only).
    seed : int
        Seeds the split, the weights and the batches.
    n_train, n_test : int
        Sizes of the split.
    threads : int, optional
        torch's CPU threads during the run (None: as set).
    callback : Callback
        Training progress (see :func:`train_seq`).

    Returns
    -------
    dict
        ``task``, ``arch``, ``n_params``, ``steps``, ``seconds`` (training), ``greedy`` and,
        with ``beam > 1``, ``beam`` (held-out exact match, in [0, 1]).
    """
    if arch not in ARCHS:
        raise ConfigError(f"unknown architecture {arch!r}: choose one of {', '.join(ARCHS)}")
    if beam < 1:
        raise ConfigError(f"beam width must be >= 1, got {beam}")
    vocab = task_vocab(task)
    split = make_split(task, n_train, n_test, seed=seed)
    with cpu_threads(torch.device("cpu"), threads):
        result = train_seq(arch, split, vocab, SeqTraining(steps=steps), seed, callback)
        out = {
            "task": task,
            "arch": arch,
            "n_params": result.n_params,
            "steps": result.steps,
            "seconds": result.seconds,
            "greedy": exact_match(result.model, split.test, vocab),
        }
        if beam > 1:
            out["beam"] = exact_match(result.model, split.test, vocab, beam=beam)
    return out
