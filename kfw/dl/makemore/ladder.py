"""One rung of the ladder, end to end: split the words, fit, score, sample.

:func:`run` is what ``kfw lm makemore`` and ``benchmarks/makemore.py`` call. Every model is
fitted on the same seeded 80% of the words, scored on the same 10% (validation; the last 10%,
test, is scored too and used for nothing else), and judged by the same predictions: each
character of a word and its end, given the characters before it (nats per character).

Training of the neural models: Adam, minibatches drawn with a seeded generator, the step size
decayed along a cosine to a tenth of ``lr``; the weights are seeded by ``seed`` too.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kfw.dl.makemore.bigram import BigramCounts, BigramNet, bigram_pairs, fit_bigram_net
from kfw.dl.makemore.data import Split, Vocab, split_words, windows
from kfw.dl.makemore.models import MLP, CharGPT, WaveNet, padded_rows
from kfw.errors import ConfigError

__all__ = [
    "DEFAULTS",
    "MODELS",
    "Result",
    "build",
    "check_model",
    "evaluate",
    "num_params",
    "run",
    "sample_words",
]

MODELS = ("bigram", "bigram-net", "mlp", "wavenet", "gpt")
# the settings of each rung; ``run(**overrides)`` replaces any of them
DEFAULTS: dict[str, dict[str, Any]] = {
    "bigram": {"k": 1.0},
    "bigram-net": {"k": 1.0, "steps": 1000, "lr": 0.5},
    "mlp": {"steps": 20000, "batch_size": 64, "lr": 3e-3, "block_size": 3, "n_embd": 10, "n_hidden": 200},
    "wavenet": {"steps": 15000, "batch_size": 64, "lr": 3e-3, "block_size": 8, "n_embd": 24, "n_hidden": 128},
    "gpt": {"steps": 3000, "batch_size": 32, "lr": 3e-3, "n_layer": 2, "n_head": 4, "n_embd": 64},
}  # fmt: skip
MAX_SAMPLE_LEN = 30  # a sample that has not ended by then is cut


@dataclass
class Result:
    """What one rung gives.

    Attributes
    ----------
    model : str
    val_loss, test_loss, train_loss : float
        Nats per character on each part of the split. ``train_loss`` of the neural rungs is
        measured on the first ``len(val)`` training words (the part is shuffled, so they are a
        random sample), to keep the CPU cost of a rung down.
    n_params : int
        Trainable parameters (the bigram table's ``V^2`` entries for the counting model).
    samples : list of str
        Words sampled from the model (temperature 1).
    seconds : float
        Wall time of the fit.
    settings : dict
        Every setting used, defaults included.
    losses : list of float
        The training loss of each step (empty for counting).
    extra : dict
        ``bigram-net``: ``counted_val_loss``, the counting model's, for the comparison.
    """

    model: str
    val_loss: float
    test_loss: float
    train_loss: float
    n_params: int
    samples: list[str]
    seconds: float
    settings: dict[str, Any]
    losses: list[float] = field(default_factory=list)
    extra: dict[str, float] = field(default_factory=dict)


def num_params(model: nn.Module) -> int:
    """Trainable parameters, each shared tensor once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@torch.no_grad()
def evaluate(model: nn.Module, X: Tensor, Y: Tensor, chunk: int = 4096) -> float:
    """Mean NLL (nats per character) of targets ``Y`` in eval mode; -1 targets are skipped.

    ``X, Y``: windows ``(n, block)`` and ``(n,)`` for the window models, padded rows
    ``(n, T)`` and ``(n, T)`` for :class:`CharGPT`.
    """
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        for i in range(0, len(X), chunk):
            logits = _logits(model, X[i : i + chunk])
            y = Y[i : i + chunk].reshape(-1)
            logits = logits.reshape(y.numel(), -1)
            total += float(F.cross_entropy(logits, y, ignore_index=-1, reduction="sum"))
            count += int((y >= 0).sum())
    finally:
        model.train(was_training)
    return total / count


def _logits(model: nn.Module, x: Tensor) -> Tensor:
    return model(x)[0] if isinstance(model, CharGPT) else model(x)


def sample_words(
    next_logits: Callable[[Tensor], Tensor], vocab: Vocab, n: int, start: int, seed: int = 0,
    max_len: int = MAX_SAMPLE_LEN,
) -> list[str]:  # fmt: skip
    """``n`` words drawn one character at a time until ``.`` (or ``max_len`` characters).

    Parameters
    ----------
    next_logits : callable
        ``(n, t)`` history of ids -> ``(n, V)`` logits of the next one.
    start : int
        Length of the all-``.`` history the draw starts from (a window model's block size).
    """
    g = torch.Generator().manual_seed(seed)
    history = torch.zeros(n, start, dtype=torch.long)
    with torch.no_grad():
        for _ in range(max_len):
            probs = F.softmax(next_logits(history).double(), dim=-1)
            history = torch.cat([history, torch.multinomial(probs, 1, generator=g)], dim=1)
    words = []
    for row in history[:, start:].tolist():
        words.append(vocab.decode(row[: row.index(0)] if 0 in row else row))
    return words


def _fit(
    model: nn.Module, batch: Callable[[torch.Generator], tuple[Tensor, Tensor]],
    steps: int, lr: float, seed: int, callback: Any = None,
) -> list[float]:  # fmt: skip
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    for step in range(steps):
        for group in opt.param_groups:  # cosine from lr to lr / 10
            group["lr"] = lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        x, y = batch(g)
        if isinstance(model, CharGPT):
            _, loss = model(x, y)
        else:
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if callback is not None and (step % 100 == 0 or step == steps - 1):
            callback.log({"loss": losses[-1], "steps": steps}, step=step + 1)
    return losses


def check_model(model: str) -> str:
    """``model`` if it is one of :data:`MODELS`, else :class:`~kfw.errors.ConfigError`."""
    if model not in MODELS:
        raise ConfigError(f"unknown model {model!r}: choose one of {', '.join(MODELS)}")
    return model


def run(
    model: str, words: list[str], *, steps: int | None = None, seed: int = 0, samples: int = 10,
    callback: Any = None, **overrides: Any,
) -> Result:  # fmt: skip
    """Fit one rung of the ladder on the split of ``words`` and score it.

    Parameters
    ----------
    model : str
        One of :data:`MODELS`.
    words : list of str
        Normalised words (:func:`~kfw.dl.makemore.data.load_words`).
    steps : int, optional
        Optimiser steps (default: the model's in :data:`DEFAULTS`; ignored by ``bigram``).
    seed : int
        Seeds the split, the weights, the batches and the samples.
    samples : int
        Words to sample.
    callback : kfw.progress.Callback, optional
        Receives ``log({"loss": ..., "steps": total}, step)`` every 100 steps and after the
        last (``step`` counts the steps done).
    **overrides
        Any setting of :data:`DEFAULTS` for this model.

    Raises
    ------
    ConfigError
        An unknown model or setting.
    """
    check_model(model)
    settings = dict(DEFAULTS[model])
    unknown = sorted(set(overrides) - set(settings))
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]!r} for {model}: one of {sorted(settings)}")
    settings.update(overrides)
    if steps is not None:
        if steps < 1:
            raise ConfigError(f"--steps must be at least 1, got {steps}")
        if "steps" in settings:
            settings["steps"] = steps
    if samples < 0:
        raise ConfigError(f"--samples must be >= 0, got {samples}")
    split = split_words(words, seed)
    vocab = Vocab.of(words)
    torch.manual_seed(seed)
    start = time.perf_counter()
    if model in ("bigram", "bigram-net"):
        result = _bigram(model, split, vocab, settings, seed, samples)
    else:
        result = _neural(model, split, vocab, settings, seed, samples, callback)
    result.seconds = time.perf_counter() - start
    return result


def _bigram(
    model: str, split: Split, vocab: Vocab, settings: dict, seed: int, samples: int
) -> Result:
    parts = {name: bigram_pairs(getattr(split, name), vocab) for name in ("train", "val", "test")}
    counts = BigramCounts(vocab.size, k=settings["k"]).fit(*parts["train"])
    if model == "bigram":
        table = counts.probs.log()  # (V, V)
        losses: dict[str, float] = {name: counts.nll(*xy) for name, xy in parts.items()}
        out = Result(model, losses["val"], losses["test"], losses["train"], counts.num_params(),
                     sample_words(lambda h: table[h[:, -1]], vocab, samples, 1, seed), 0.0,
                     settings)  # fmt: skip
        return out
    net: BigramNet
    net, trace = fit_bigram_net(
        counts.counts, settings["k"], settings["steps"], settings["lr"], seed
    )
    with torch.no_grad():
        nll = {n: float(F.cross_entropy(net(x), y)) for n, (x, y) in parts.items()}
    return Result(
        model, nll["val"], nll["test"], nll["train"], num_params(net),
        sample_words(lambda h: net(h[:, -1]), vocab, samples, 1, seed), 0.0, settings, trace,
        {"counted_val_loss": counts.nll(*parts["val"])},
    )  # fmt: skip


def build(model: str, vocab: Vocab, settings: dict, block_size: int | None = None) -> nn.Module:
    """The untrained network of a neural rung (``block_size``: the GPT's, from the words)."""
    arch = {k: v for k, v in settings.items() if k not in ("steps", "batch_size", "lr")}
    if model == "mlp":
        return MLP(vocab.size, **arch)
    if model == "wavenet":
        return WaveNet(vocab.size, **arch)
    return CharGPT(vocab.size, block_size or 1, **arch)


def _neural(
    model: str, split: Split, vocab: Vocab, settings: dict, seed: int, samples: int,
    callback: Any,
) -> Result:  # fmt: skip
    if model == "gpt":
        longest = max(len(w) for w in split.train + split.val + split.test)
        block = longest + 1
        net = build(model, vocab, settings, block)
        data = {n: padded_rows(getattr(split, n), vocab, block) for n in ("train", "val", "test")}
        start = 1
        next_logits = lambda h: net(h[:, -block:])[0][:, -1]  # noqa: E731
    else:
        net = build(model, vocab, settings)
        block = settings["block_size"]
        data = {n: windows(getattr(split, n), vocab, block) for n in ("train", "val", "test")}
        start = block
        next_logits = lambda h: net(h[:, -block:])  # noqa: E731
    X, Y = data["train"]
    bs = settings["batch_size"]
    n_val = len(split.val)
    if model == "gpt":  # one row per word
        data["train"] = X[:n_val], Y[:n_val]
    else:  # the windows of the first n_val words
        n = sum(len(w) + 1 for w in split.train[:n_val])
        data["train"] = X[:n], Y[:n]

    def batch(g: torch.Generator) -> tuple[Tensor, Tensor]:
        ix = torch.randint(0, len(X), (bs,), generator=g)
        return X[ix], Y[ix]

    trace = _fit(net, batch, settings["steps"], settings["lr"], seed, callback)
    nll = {n: evaluate(net, *xy) for n, xy in data.items()}
    net.eval()
    # the GPT's learned positions end at its block size; a window model slides on for ever
    max_len = min(MAX_SAMPLE_LEN, block) if model == "gpt" else MAX_SAMPLE_LEN
    words = sample_words(next_logits, vocab, samples, start, seed, max_len)
    return Result(model, nll["val"], nll["test"], nll["train"], num_params(net), words, 0.0,
                  settings, trace)  # fmt: skip
