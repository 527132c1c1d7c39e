"""Language-model settings: one dataclass of defaults, a subclass per preset, the runtime."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar

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
    vocab_size : int
        Rows of the embedding (and of the output layer); 0: the tokenizer's size. A larger
        value is allowed (GPT-2's 50257 whatever the merges a corpus yields); a smaller one is
        refused when the tokenizer is known.
    vocab_multiple : int
        The embedding is padded up to a multiple of this (64: nanoGPT's 50257 -> 50304, for
        matmul-friendly shapes). The padded rows are never a target; the model learns to give
        them no probability.
    pos : str
        Positions: ``"learned"``, ``"sinusoidal"`` or ``"rope"``.
    tokenizer : str
        ``"char"`` or ``"bpe"``; ``bpe_vocab`` tokens for BPE.
    batch_size : int
        Windows per forward pass (a micro-batch).
    tokens_per_step : int
        Tokens per optimiser step; 0: one micro-batch (``batch_size * block_size``). A multiple
        of the micro-batch's tokens: the gradients of ``tokens_per_step / (batch_size *
        block_size)`` micro-batches are accumulated (each loss divided by their number), which
        is the gradient of one batch that many times larger.
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
    vocab_size: int = 0
    vocab_multiple: int = 1
    pos: str = "learned"
    tokenizer: str = "char"
    bpe_vocab: int = 512
    batch_size: int = 12
    tokens_per_step: int = 0
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

    # what `auto` means for the runtime switches on a CPU (CUDA turns all three on): a class
    # attribute, not a setting, so it is not part of the run's key (the resolved switches are)
    cpu_runtime: ClassVar[dict[str, bool]] = {"amp": False, "compile": False, "fused": False}

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
        if self.vocab_size < 0 or self.vocab_multiple < 1 or self.tokens_per_step < 0:
            raise ConfigError("vocab_size and tokens_per_step must be >= 0, vocab_multiple >= 1")
        micro = self.batch_size * self.block_size
        if self.tokens_per_step % micro:
            raise ConfigError(
                f"tokens_per_step {self.tokens_per_step} is not a multiple of a micro-batch's "
                f"{micro} tokens (batch_size {self.batch_size} x block_size {self.block_size})"
            )
        if self.max_iters < 0 or self.eval_interval < 1 or self.log_interval < 1:
            raise ConfigError("max_iters must be >= 0, eval_interval and log_interval >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), not {self.dropout}")
        return self

    @property
    def micro_steps(self) -> int:
        """Micro-batches per optimiser step (1 without gradient accumulation)."""
        return max(1, self.tokens_per_step // (self.batch_size * self.block_size))

    @property
    def step_tokens(self) -> int:
        """Training tokens per optimiser step."""
        return self.micro_steps * self.batch_size * self.block_size

    def model_vocab(self, tokenizer_vocab: int) -> int:
        """Rows of the embedding for a tokenizer of ``tokenizer_vocab`` ids, padded."""
        n = self.vocab_size or tokenizer_vocab
        if n < tokenizer_vocab:
            raise ConfigError(
                f"vocab_size {n} is smaller than the tokenizer's {tokenizer_vocab} ids"
            )
        return -(-n // self.vocab_multiple) * self.vocab_multiple


@dataclass
class CPU(LMConfig):
    """The best character GPT we measured for 10 minutes of 2 CPU cores, start-up included.

    Chosen from a measured sweep (``benchmarks/lm_cpu_sweep.py``, the tables in
    ``docs/language-models.md``): bf16 autocast (this runtime's CPU choice) makes a step 2-3x
    faster than float32 on a CPU with AMX, and the time goes to a wider model (4 x 4 x 192) in
    small batches (16 windows of 128: 2,048 tokens a step) at a higher peak learning rate
    (3e-3): 6,200 steps, 12.7M tokens. Width 192 beat 128 at the same wall time (1.505 against
    1.517 over 540 s of steps), batch 16 beat 32 and tied with 8, 3e-3 beat 2e-3; more depth and a longer
    context cost more throughput than they gave. The evaluations average 40 batches (82k
    tokens) a split every 800 steps.
    """

    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 192
    block_size: int = 128
    batch_size: int = 16
    dropout: float = 0.0
    learning_rate: float = 3e-3
    max_iters: int = 6200
    lr_decay_iters: int = 6200
    min_lr: float = 3e-4
    warmup_iters: int = 100
    beta2: float = 0.99
    eval_interval: int = 800
    eval_iters: int = 40
    cpu_runtime: ClassVar[dict[str, bool]] = {"amp": True, "compile": False, "fused": False}


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


@dataclass
class GPT2(LMConfig):
    """GPT-2 small (Radford et al. 2019) on GPT-3's recipe for its size (Brown et al. 2020).

    The model: 12 layers, 12 heads, 768 wide, context 1024, GPT-2's 50257-token vocabulary
    padded to 50304 (a multiple of 64), tied embeddings, biases: 124,439,808 parameters before
    the padding. The tokens come from kfw's byte-level BPE trained on the corpus (no download of
    GPT-2's merges), up to 50257 ids.

    The optimisation is GPT-3's "Small" row of Table 2.1 and its section 2.3 / appendix B:
    0.5M-token steps (2**19 = 524,288: 16 windows x 1024 per micro-batch, 32 micro-batches
    accumulated on one device), peak learning rate 6e-4, linear warm-up over 375M tokens (715
    steps), cosine decay to a tenth (6e-5), AdamW with beta2 0.95 and weight decay 0.1 on the
    matrices only, gradients clipped to norm 1. 19,073 steps are 10B tokens (build-nanogpt's
    FineWeb-Edu budget); on a small corpus that is many epochs, so shorten it with
    ``--max-iters``.
    """

    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    block_size: int = 1024
    dropout: float = 0.0
    vocab_size: int = 50257
    vocab_multiple: int = 64
    tokenizer: str = "bpe"
    bpe_vocab: int = 50257
    batch_size: int = 16
    tokens_per_step: int = 524_288
    learning_rate: float = 6e-4
    min_lr: float = 6e-5
    warmup_iters: int = 715
    max_iters: int = 19073
    lr_decay_iters: int = 19073
    weight_decay: float = 0.1
    beta2: float = 0.95
    eval_interval: int = 250
    eval_iters: int = 20
    # on a CPU with AMX, bf16 autocast halves the step of these shapes and torch's fused
    # attention (its CPU flash kernel) is slower than ours: benchmarks/lm_cpu_sweep.py
    cpu_runtime: ClassVar[dict[str, bool]] = {"amp": True, "compile": False, "fused": False}


@dataclass
class GPT2Mini(GPT2):
    """The GPT-2 recipe at CPU scale: 4 layers, 4 heads, 128 wide, context 256.

    Everything else is :class:`GPT2`'s code path: byte-level BPE (1024 ids, padded to a
    multiple of 64), gradient accumulation (4 micro-batches of 8 windows: 8,192 tokens a step),
    warm-up and cosine decay to a tenth, AdamW (0.9, 0.95), decay 0.1 on matrices, clipping 1.
    The peak learning rate is higher, as GPT-3's Table 2.1 has it for smaller models.
    """

    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 256
    vocab_size: int = 0
    bpe_vocab: int = 1024
    batch_size: int = 8
    tokens_per_step: int = 8192
    learning_rate: float = 2e-3
    min_lr: float = 2e-4
    warmup_iters: int = 50
    max_iters: int = 600
    lr_decay_iters: int = 600
    eval_interval: int = 100


PRESETS: dict[str, type[LMConfig]] = {
    "cpu": CPU,
    "gpu": GPU,
    "gpt2": GPT2,
    "gpt2-mini": GPT2Mini,
}


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

    ``device=None`` picks CUDA when present. The three switches, ``amp`` (bf16 autocast),
    ``compile`` (``torch.compile``) and ``fused`` (``F.scaled_dot_product_attention``, flash
    where available, behind the same weights), are True, False or None for "auto": on CUDA
    auto is on; on a CPU it is the preset's choice (``LMConfig.cpu_runtime``), measured for its
    shapes. ``threads`` CPU threads (default: every core).
    """

    device: str | None = None
    amp: bool | None = None
    compile: bool | None = None
    fused: bool | None = None
    threads: int | None = None

    def resolved(self, cfg: LMConfig | None = None) -> Runtime:
        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            dev = torch.device(device)
        except RuntimeError:
            raise ConfigError(f"unknown device {device!r}: cpu, cuda or cuda:N") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device {device!r}: CUDA is not available on this machine")
        auto = (
            {"amp": True, "compile": True, "fused": True}
            if dev.type == "cuda"
            else (cfg or LMConfig()).cpu_runtime
        )

        def pick(name: str) -> bool:
            value = getattr(self, name)
            return auto[name] if value is None else bool(value)

        return Runtime(
            device=device,
            amp=pick("amp"),
            compile=pick("compile"),
            fused=pick("fused"),
            threads=self.threads,
        )

    def key(self) -> dict[str, Any]:
        # what changes the numbers: the kind of device and the switches (resolved first)
        return {
            "device": torch.device(self.device or "cpu").type,
            "amp": bool(self.amp),
            "compile": bool(self.compile),
            "fused": bool(self.fused),
        }
