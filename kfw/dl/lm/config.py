"""Language-model settings: one dataclass of defaults, a subclass per preset, the runtime."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import torch

from kfw.errors import ConfigError

POSITIONS = ("learned", "sinusoidal", "rope")
TOKENIZERS = ("char", "bpe")


# ---------------------------------------------------------------------------------------------
# configuration: one dataclass, one subclass per preset


@dataclass
class LMConfig:
    """Everything that shapes a language-model run (the run's key is a hash of it).

    Attributes
    ----------
    n_layer, n_head, n_embd, block_size, dropout, bias
        The model (see :class:`kfw.dl.gpt.GPTConfig`).
    pos : str
        Positions: ``"learned"``, ``"sinusoidal"`` or ``"rope"``.
    tokenizer : str
        ``"char"`` or ``"bpe"``; ``bpe_vocab`` tokens for BPE.
    batch_size : int
        Windows per step.
    learning_rate, min_lr, warmup_iters, lr_decay_iters
        Linear warm-up to ``learning_rate`` over ``warmup_iters`` steps, cosine decay to
        ``min_lr`` at ``lr_decay_iters``, flat after.
    max_iters : int
        Optimiser steps.
    weight_decay, beta1, beta2, grad_clip
        AdamW (decay on 2-D weights only) and the clipping norm.
    eval_interval, eval_iters, eval_seed
        Evaluate every ``eval_interval`` steps (and after the last) on ``eval_iters`` fixed
        batches per split, drawn once from ``eval_seed``.
    log_interval : int
        Steps between the training-loss reports of the progress bar.
    """

    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 64
    dropout: float = 0.0
    bias: bool = True
    pos: str = "learned"
    tokenizer: str = "char"
    bpe_vocab: int = 512
    batch_size: int = 12
    learning_rate: float = 1e-3
    max_iters: int = 2000
    lr_decay_iters: int = 2000
    min_lr: float = 1e-4
    warmup_iters: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0
    eval_interval: int = 250
    eval_iters: int = 200
    eval_seed: int = 1337
    log_interval: int = 10

    def check(self) -> LMConfig:
        """Raise :class:`ConfigError` on an impossible value; return self."""
        if self.pos not in POSITIONS:
            raise ConfigError(f"unknown pos {self.pos!r}: one of {', '.join(POSITIONS)}")
        if self.tokenizer not in TOKENIZERS:
            raise ConfigError(
                f"unknown tokenizer {self.tokenizer!r}: one of {', '.join(TOKENIZERS)}"
            )
        if self.n_embd % self.n_head:
            raise ConfigError(f"n_embd {self.n_embd} is not a multiple of n_head {self.n_head}")
        if self.pos == "rope" and (self.n_embd // self.n_head) % 2:
            raise ConfigError("rope needs an even head size (n_embd / n_head)")
        for name in ("n_layer", "n_head", "n_embd", "block_size", "batch_size", "eval_iters"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.max_iters < 0 or self.eval_interval < 1 or self.log_interval < 1:
            raise ConfigError("max_iters must be >= 0, eval_interval and log_interval >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), not {self.dropout}")
        return self


@dataclass
class CPU(LMConfig):
    """The best model we expect to train in about 10 minutes on 2 CPU cores.

    nanoGPT's CPU configuration (4 x 4 x 128, context 64, batch 12, 2000 steps: 1.5M training
    tokens) reaches about 1.88. This one keeps the model and spends the time on data: context
    128 and batch 32 (4,096 tokens per step, 8.2M tokens over 2,000 steps) with a higher peak
    learning rate. 2,000 steps: 15,600 tokens/s (0.26 s per step) measured on 2 idle cores
    (`kfw lm train CORPUS --max-iters 30`), about 9 minutes of steps plus the evaluations.
    """

    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 128
    batch_size: int = 32
    dropout: float = 0.0
    learning_rate: float = 2e-3
    max_iters: int = 2000
    lr_decay_iters: int = 2000
    min_lr: float = 2e-4
    warmup_iters: int = 100
    beta2: float = 0.99
    eval_interval: int = 250
    eval_iters: int = 20


@dataclass
class GPU(LMConfig):
    """nanoGPT's ``config/train_shakespeare_char.py``: 6 x 6 x 384, context 256, 5000 steps."""

    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    block_size: int = 256
    batch_size: int = 64
    dropout: float = 0.2
    learning_rate: float = 1e-3
    max_iters: int = 5000
    lr_decay_iters: int = 5000
    min_lr: float = 1e-4
    warmup_iters: int = 100
    beta2: float = 0.99
    eval_interval: int = 250
    eval_iters: int = 200


PRESETS: dict[str, type[LMConfig]] = {"cpu": CPU, "gpu": GPU}


def resolve_config(preset: str = "cpu", **overrides: Any) -> LMConfig:
    """The preset's config with ``overrides`` (None values ignored), checked.

    ``max_iters`` alone also moves ``lr_decay_iters`` to the same value, so a shorter run
    still decays its learning rate to ``min_lr``; ``warmup_iters`` is capped at a tenth of a
    run shorter than ten warm-ups. The schedule therefore depends on the configured total,
    which is part of the run's key, never on how far a resumed call has got.
    """
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}: one of {', '.join(PRESETS)}")
    cfg = PRESETS[preset]()
    names = {f.name: f.type for f in fields(cfg)}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]!r}: one of {', '.join(names)}")
    cast = {"int": int, "float": float, "bool": _bool, "str": str}
    for k, v in overrides.items():
        try:
            overrides[k] = cast[str(names[k])](v)
        except (TypeError, ValueError):
            raise ConfigError(f"setting {k}: {v!r} is not a valid {names[k]}") from None
    if "max_iters" in overrides and "lr_decay_iters" not in overrides:
        overrides["lr_decay_iters"] = overrides["max_iters"]
        if "warmup_iters" not in overrides:
            overrides["warmup_iters"] = min(cfg.warmup_iters, overrides["max_iters"] // 10)
    return replace(cfg, **overrides).check()


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)


def parse_setting(text: str) -> tuple[str, str]:
    """``"key=value"`` -> ``("key", "value")`` (the CLI's ``--set``)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE")
    return key.strip().replace("-", "_"), value.strip()


@dataclass
class Runtime:
    """How a run executes, not what it computes (except that bf16 and compile change the bits).

    ``device=None`` picks CUDA when present; ``amp`` (bf16 autocast), ``compile``
    (``torch.compile``) and ``fused`` (the fused attention path of the same weights) are used
    only on CUDA unless turned off; ``threads`` CPU threads (default: every core).
    """

    device: str | None = None
    amp: bool = True
    compile: bool = True
    fused: bool = True
    threads: int | None = None

    def resolved(self) -> Runtime:
        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            dev = torch.device(device)
        except RuntimeError:
            raise ConfigError(f"unknown device {device!r}: cpu, cuda or cuda:N") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device {device!r}: CUDA is not available on this machine")
        cuda = dev.type == "cuda"
        return Runtime(
            device=device,
            amp=self.amp and cuda,
            compile=self.compile and cuda,
            fused=self.fused and cuda,
            threads=self.threads,
        )

    def key(self) -> dict[str, Any]:
        # what changes the numbers: the kind of device and the CUDA-only switches
        return {
            "device": torch.device(self.device or "cpu").type,
            "amp": self.amp,
            "compile": self.compile,
            "fused": self.fused,
        }
