"""Training and sampling a character (or BPE) language model: presets, data, loop, checkpoints.

The recipe is nanoGPT's ``train.py``, read top to bottom:

1. the corpus is tokenized and split contiguously, the first 90% for training, the last 10% for
   validation (:func:`load_corpus`);
2. each step draws ``batch_size`` random windows of ``block_size + 1`` tokens from the training
   part with a seeded ``torch.Generator`` (:func:`get_batch`);
3. AdamW, weight decay on the 2-D weights only, a linear warm-up then a cosine decay to
   ``min_lr`` (:func:`lr_at`), gradients clipped to norm ``grad_clip``;
4. every ``eval_interval`` steps the train and validation losses are measured on FIXED
   evaluation batches (the same windows every time, drawn once from ``eval_seed``), so two
   evaluations differ only because the model changed;
5. every evaluation writes a checkpoint (model, optimiser, step, RNG states, config,
   tokenizer) atomically; the same command finds it by its key (corpus hash + resolved
   config) and continues, reproducing the uninterrupted run's losses exactly on CPU;
6. the finished run enters the run store (``runs/lm-<corpus stem>/<run id>/``) with
   ``model.pt`` and ``losses.csv``.

:func:`train` is the loop alone; it takes any module with ``forward(idx, targets) -> (logits,
loss)``, so ``benchmarks/charlm.py`` trains torch's own transformer layers through it too.
:func:`train_lm` is the whole command; :func:`sample` reads a saved run back.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kfw.errors import ConfigError, DataError, KfwError
from kfw.progress import NULL, Callback

POSITIONS = ("learned", "sinusoidal", "rope")
TOKENIZERS = ("char", "bpe")
TRAIN_FRACTION = 0.9
CHECKPOINT = "checkpoint.pt"


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
    """Read, tokenize and split a corpus; ``tokenizer`` (e.g. from a checkpoint) is reused.

    Characters: the vocabulary is every character of the corpus (nanoGPT's choice: a character
    seen only in validation must still be encodable). BPE: merges are learned on the training
    part only, so the validation loss is measured on text the tokenizer never saw.
    """
    from kfw.dl.tokenize import make_tokenizer

    text, sha = text_sha or read_text(path)
    if tokenizer is None:
        source = text if cfg.tokenizer == "char" else text[: split_point(len(text))]
        tokenizer = (
            make_tokenizer("char", source)
            if cfg.tokenizer == "char"
            else make_tokenizer("bpe", source, vocab_size=cfg.bpe_vocab)
        )
    data = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    n = split_point(len(data))
    train, val = data[:n], data[n:]
    need = cfg.block_size + 1
    if len(val) < need:
        unit = "characters" if cfg.tokenizer == "char" else "tokens"
        raise DataError(
            f"corpus {path} is too short: {len(data)} {unit}, its 10% validation part has "
            f"{len(val)}, context {cfg.block_size} needs {need} (at least {math.ceil(need / (1 - TRAIN_FRACTION))} in all)"
        )
    return Corpus(Path(path), sha, tokenizer, train, val)


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


# ---------------------------------------------------------------------------------------------
# optimisation


def lr_at(it: int, cfg: LMConfig) -> float:
    """Learning rate of step ``it``: linear warm-up, cosine decay to ``min_lr``, then flat."""
    if it < cfg.warmup_iters:
        return cfg.learning_rate * (it + 1) / (cfg.warmup_iters + 1)
    if it > cfg.lr_decay_iters:
        return cfg.min_lr
    span = max(1, cfg.lr_decay_iters - cfg.warmup_iters)
    ratio = (it - cfg.warmup_iters) / span
    coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))  # 1 -> 0
    return cfg.min_lr + coeff * (cfg.learning_rate - cfg.min_lr)


def make_optimizer(model: nn.Module, cfg: LMConfig, device: str) -> torch.optim.AdamW:
    """AdamW with decay on weights of 2 or more dimensions (matmuls, embeddings) only."""
    params = [p for p in model.parameters() if p.requires_grad]  # shared (tied) ones once
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    fused = torch.device(device).type == "cuda"
    return torch.optim.AdamW(
        groups, lr=cfg.learning_rate, betas=(cfg.beta1, cfg.beta2), fused=fused or None
    )


# ---------------------------------------------------------------------------------------------
# progress


class LMCallback(Callback):
    """The training loop's events (every method does nothing unless overridden)."""

    def train_start(self, total: int, start: int, tokens_per_iter: int) -> None:
        """Steps ``start .. total`` are about to run (``start > 0`` when resumed)."""

    def train_step(self, it: int, loss: float | None, tokens_per_s: float) -> None:
        """Step ``it`` finished; ``loss`` every ``log_interval`` steps, else None."""

    def evaluated(self, it: int, train_loss: float, val_loss: float) -> None:
        """An evaluation at step ``it`` (its checkpoint, if any, is already written)."""

    def train_end(self) -> None:
        """The loop finished."""


def _hook(callback: Callback, name: str, *args: Any) -> None:
    method = getattr(callback, name, None)
    if method is not None:
        method(*args)


# ---------------------------------------------------------------------------------------------
# the loop


@dataclass
class TrainResult:
    """What :func:`train` measured.

    Attributes
    ----------
    losses : list of dict
        One row per evaluation: ``iter``, ``train``, ``val``, ``lr``.
    val_loss : float
        The last evaluation's validation loss.
    seconds : float
        Wall time of this call (training and evaluation).
    train_seconds : float
        Time spent in optimiser steps (all calls, when resumed).
    tokens_per_s : float
        Training tokens per second of step time.
    iters : int
        Steps taken in all (all calls).
    resumed_from : int or None
        The step a checkpoint restored, if any.
    """

    losses: list[dict[str, float]]
    val_loss: float
    seconds: float
    train_seconds: float
    tokens_per_s: float
    iters: int
    resumed_from: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: torch.Tensor,
    starts: torch.Tensor,
    block: int,
    device: str,
    amp: bool = False,
) -> float:
    """Mean loss over fixed batches: ``starts`` is ``(n_batches, batch)``; eval mode, no grad."""
    was_training = model.training
    model.eval()
    losses = []
    for row in starts:
        x, y = get_batch(data, row, block)
        with _autocast(device, amp):
            _, loss = model(x.to(device), y.to(device))
        losses.append(loss.float())
    model.train(was_training)
    return torch.stack(losses).mean().item()


def _autocast(device: str, amp: bool) -> contextlib.AbstractContextManager[Any]:
    if amp:
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _rng_state(device: str) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.device(device).type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: str) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.device(device).type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged file of any kind: one line naming it
        raise KfwError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}); delete it"
        ) from None


def train(
    model: nn.Module,
    train_data: torch.Tensor,
    val_data: torch.Tensor,
    cfg: LMConfig,
    *,
    seed: int,
    runtime: Runtime | None = None,
    callback: Callback = NULL,
    checkpoint: Path | None = None,
    meta: dict[str, Any] | None = None,
) -> TrainResult:
    """Train ``model`` (any ``forward(idx, targets) -> (logits, loss)``) by the recipe above.

    Parameters
    ----------
    model : nn.Module
        Freshly initialised (its weights are replaced by the checkpoint's when resuming).
    train_data, val_data : Tensor
        1-D int64 token ids.
    cfg : LMConfig
        Optimisation and evaluation settings (the model's own settings are not read).
    seed : int
        Seeds the batch generator (and, through ``torch.manual_seed`` by the caller, the init).
    runtime : Runtime, optional
        Device, bf16 autocast and ``torch.compile`` (CUDA only).
    callback : Callback
        Receives the :class:`LMCallback` events it implements.
    checkpoint : Path, optional
        Written at every evaluation; when it exists, training continues from it.
    meta : dict, optional
        Stored in the checkpoint and required to match on resume (the run's config, its
        corpus hash, the tokenizer), so a checkpoint of another configuration is refused.

    Returns
    -------
    TrainResult
    """
    rt = (runtime or Runtime(device="cpu")).resolved()
    device = rt.device or "cpu"
    meta = meta or {}
    started = time.perf_counter()
    model.to(device)
    optimizer = make_optimizer(model, cfg, device)
    batches = torch.Generator().manual_seed(seed)
    n_train = len(train_data)
    eval_starts = {
        "train": fixed_starts(
            n_train, cfg.block_size, cfg.batch_size, cfg.eval_iters, cfg.eval_seed
        ),
        "val": fixed_starts(
            len(val_data), cfg.block_size, cfg.batch_size, cfg.eval_iters, cfg.eval_seed + 1
        ),
    }
    losses: list[dict[str, float]] = []
    start, train_seconds, resumed_from = 0, 0.0, None
    if checkpoint is not None and checkpoint.is_file():
        state = load_checkpoint(checkpoint)
        if state.get("meta") != meta:
            raise KfwError(
                f"checkpoint {checkpoint} was written by another configuration; "
                "delete it to start over"
            )
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise KfwError(
                f"checkpoint {checkpoint} does not fit this model ({str(exc).splitlines()[0]})"
            ) from None
        batches.set_state(state["rng"]["batches"])
        _set_rng_state(state["rng"], device)
        start, losses = state["iter"], list(state["losses"])
        train_seconds = state["train_seconds"]
        resumed_from = start
    step_model = torch.compile(model) if rt.compile else model
    tokens_per_iter = cfg.batch_size * cfg.block_size
    _hook(callback, "train_start", cfg.max_iters, start, tokens_per_iter)
    model.train()
    it = start
    while True:
        # evaluate (and checkpoint) before the step, as nanoGPT; a resumed run skips the
        # evaluation its checkpoint already holds
        if (it % cfg.eval_interval == 0 or it == cfg.max_iters) and it != resumed_from:
            row = {
                "iter": it,
                "train": evaluate(step_model, train_data, eval_starts["train"], cfg.block_size, device, rt.amp),
                "val": evaluate(step_model, val_data, eval_starts["val"], cfg.block_size, device, rt.amp),
                "lr": lr_at(it, cfg),
            }  # fmt: skip
            losses.append(row)
            if checkpoint is not None:
                save_atomic(
                    {
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "iter": it,
                        "losses": losses,
                        "train_seconds": train_seconds,
                        "rng": {**_rng_state(device), "batches": batches.get_state()},
                        "meta": meta,
                    },
                    checkpoint,
                )
            _hook(callback, "evaluated", it, row["train"], row["val"])
        if it >= cfg.max_iters:
            break
        t0 = time.perf_counter()
        lr = lr_at(it, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = get_batch(
            train_data,
            random_starts(n_train, cfg.block_size, cfg.batch_size, batches),
            cfg.block_size,
        )
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with _autocast(device, rt.amp):
            _, loss = step_model(x, y)
        loss.backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        it += 1
        report = it % cfg.log_interval == 0 or it == cfg.max_iters
        value = loss.item() if report else None  # .item() syncs a GPU: only when shown
        train_seconds += time.perf_counter() - t0
        _hook(
            callback,
            "train_step",
            it,
            value,
            tokens_per_iter * it / max(train_seconds, 1e-9) if it > start else 0.0,
        )
    _hook(callback, "train_end")
    done = cfg.max_iters
    return TrainResult(
        losses=losses,
        val_loss=losses[-1]["val"],
        seconds=time.perf_counter() - started,
        train_seconds=train_seconds,
        tokens_per_s=tokens_per_iter * done / train_seconds if train_seconds > 0 else 0.0,
        iters=done,
        resumed_from=resumed_from,
    )


# ---------------------------------------------------------------------------------------------
# the command: kfw lm train


def slug_for(corpus: Path) -> str:
    """The run store's competition slug of a corpus: ``lm-<stem>``."""
    stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in Path(corpus).stem.lower())
    return f"lm-{stem or 'corpus'}"


def build_model(cfg: LMConfig, vocab_size: int, fused: bool = False) -> nn.Module:
    """Our GPT for ``cfg`` (seed the global RNG first: it draws the initial weights)."""
    from kfw.dl.gpt import GPT

    return GPT(gpt_config(cfg, vocab_size, fused))


def gpt_config(cfg: LMConfig, vocab_size: int, fused: bool = False) -> Any:
    from kfw.dl.gpt import GPTConfig

    return GPTConfig(
        vocab_size=vocab_size,
        block_size=cfg.block_size,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        n_embd=cfg.n_embd,
        dropout=cfg.dropout,
        bias=cfg.bias,
        pos=cfg.pos,
        fused=fused,
    )


def set_threads(runtime: Runtime) -> None:
    """CPU threads: ``runtime.threads``, else every core (torch's default may be fewer)."""
    if torch.device(runtime.device or "cpu").type == "cpu":
        torch.set_num_threads(runtime.threads or os.cpu_count() or 1)


def train_lm(
    corpus: Path,
    kfw_home: Path,
    cfg: LMConfig,
    *,
    seed: int = 1337,
    runtime: Runtime | None = None,
    callback: Callback = NULL,
    wandb: bool = True,
) -> dict[str, Any]:
    """``kfw lm train``: train (or resume), save the run in the store, mirror it to W&B.

    The partial run lives in ``runs/lm-<stem>/.partial/<key>/checkpoint.pt`` where the key
    hashes the corpus bytes, the resolved config, the seed and the runtime switches that
    change the numbers; the same command finds it and continues. Returns the run record.
    """
    from kfw.track import RunStore, config_key, environment
    from kfw.wandb_mirror import Mirror

    cfg.check()
    rt = (runtime or Runtime()).resolved()
    text, sha = read_text(corpus)
    slug = slug_for(corpus)
    store = RunStore(kfw_home, slug)
    key_src = {"corpus": sha, "config": asdict(cfg), "seed": seed, "runtime": rt.key()}
    key = config_key(key_src)
    partial = store.root / ".partial" / key
    ckpt = partial / CHECKPOINT
    saved_tok = None
    if ckpt.is_file():  # the tokenizer comes back with the run: BPE is not retrained
        from kfw.dl.tokenize import tokenizer_from_dict

        state = load_checkpoint(ckpt)
        tok_dict = (state.get("meta") or {}).get("tokenizer")
        if not isinstance(tok_dict, dict) or (state.get("meta") or {}).get("key_src") != key_src:
            raise KfwError(
                f"checkpoint {ckpt} was written by another configuration; delete it to start over"
            )
        saved_tok = tokenizer_from_dict(tok_dict)
        callback.info(f"resuming from {ckpt} (step {state['iter']})")
    data = load_corpus(Path(corpus), cfg, saved_tok, (text, sha))
    set_threads(rt)
    torch.manual_seed(seed)
    model = build_model(cfg, data.tokenizer.vocab_size, fused=rt.fused)
    n_params = _count(model)  # every parameter, the tied embedding once
    callback.info(
        f"{slug}: {data.n_tokens:,} {cfg.tokenizer} tokens (vocabulary {data.tokenizer.vocab_size}), "
        f"GPT {cfg.n_layer}x{cfg.n_head}x{cfg.n_embd} {cfg.pos} positions, {n_params / 1e6:.2f}M "
        f"parameters, {rt.device}{', bf16' if rt.amp else ''}{', compiled' if rt.compile else ''}"
    )
    meta = {"key_src": key_src, "tokenizer": data.tokenizer.to_dict()}
    result = train(
        model, data.train, data.val, cfg, seed=seed, runtime=rt, callback=callback,
        checkpoint=ckpt, meta=meta,
    )  # fmt: skip
    run_id = store.new_id(f"gpt-{cfg.pos}-{cfg.tokenizer}", key)
    record = {
        "id": run_id,
        "competition": slug,
        "kind": "lm",
        "model": "gpt",
        "label": f"gpt-{cfg.pos}-{cfg.tokenizer}",
        "corpus": str(Path(corpus).resolve()),
        "corpus_sha256": sha,
        "config": asdict(cfg),
        "runtime": asdict(rt),
        "seed": seed,
        "key": key,
        "git_commit": None,
        "versions": None,
        "n_params": n_params,
        "vocab_size": data.tokenizer.vocab_size,
        "n_tokens": {"train": len(data.train), "val": len(data.val)},
        "losses": result.losses,
        "val_loss": result.val_loss,
        "unit": "nats per character" if cfg.tokenizer == "char" else "nats per token",
        "metric": "val_loss",
        "score": result.val_loss,
        "greater_is_better": False,
        "seconds": result.seconds,
        "train_seconds": result.train_seconds,
        "tokens_per_s": result.tokens_per_s,
        "resumed_from": result.resumed_from,
    }
    env = environment()
    record["git_commit"] = env.pop("git_commit")
    record["versions"] = env
    files = {
        "model.pt": model_bytes(model, cfg, data.tokenizer),
        "losses.csv": losses_csv(result.losses),
    }
    run_dir = store.save(record, files)
    # the run is published whole: its checkpoint has done its job
    ckpt.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        partial.rmdir()
        partial.parent.rmdir()  # .partial/ itself, when no other run is in progress
    return Mirror(kfw_home, enabled=wandb)(record, run_dir, callback)


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def model_bytes(model: nn.Module, cfg: LMConfig, tokenizer: Any) -> bytes:
    """``model.pt``: the state dict, the training config, the GPT config and the tokenizer."""
    buf = io.BytesIO()
    torch.save(
        {
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "config": asdict(cfg),
            "gpt_config": asdict(gpt_config(cfg, tokenizer.vocab_size)),
            "tokenizer": tokenizer.to_dict(),
        },
        buf,
    )
    return buf.getvalue()


def losses_csv(losses: list[dict[str, float]]) -> bytes:
    lines = ["iter,train_loss,val_loss,lr"]
    lines += [f"{r['iter']},{r['train']!r},{r['val']!r},{r['lr']!r}" for r in losses]
    return ("\n".join(lines) + "\n").encode()


# ---------------------------------------------------------------------------------------------
# kfw lm sample


def find_run(run: str, kfw_home: Path) -> Path:
    """A run folder from a path to it, or from a run id under ``runs/lm-*/``."""
    path = Path(run)
    if (path / "model.pt").is_file():
        return path
    if path.exists():
        raise KfwError(f"{path} is not an lm run folder (no model.pt)")
    matches = (
        sorted((Path(kfw_home) / "runs").glob(f"lm-*/{run}/model.pt")) if "/" not in run else []
    )
    if not matches:
        raise KfwError(
            f"no lm run {run!r} under {Path(kfw_home) / 'runs'} (a run id or a run folder)"
        )
    return matches[0].parent


def load_model(run_dir: Path, device: str = "cpu") -> tuple[nn.Module, Any, dict[str, Any]]:
    """The trained GPT of a run (eval mode), its tokenizer and its ``model.pt`` contents."""
    from kfw.dl.gpt import GPT, GPTConfig
    from kfw.dl.tokenize import tokenizer_from_dict

    path = Path(run_dir) / "model.pt"
    saved = load_checkpoint(path)
    try:
        tokenizer = tokenizer_from_dict(saved["tokenizer"])
        gcfg = GPTConfig(**saved["gpt_config"])
        if tokenizer.vocab_size != gcfg.vocab_size:
            raise ValueError(
                f"tokenizer of {tokenizer.vocab_size} tokens, model of {gcfg.vocab_size}"
            )
        model = GPT(gcfg)
        model.load_state_dict(saved["model"])
    except KfwError:
        raise
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise KfwError(
            f"{path} does not match its saved configuration ({str(exc).splitlines()[0]})"
        ) from None
    return model.to(device).eval(), tokenizer, saved


def sample(
    run_dir: Path,
    prompt: str = "",
    tokens: int = 500,
    *,
    temperature: float = 0.8,
    top_k: int | None = 200,
    seed: int = 1337,
    device: str | None = None,
) -> str:
    """``tokens`` new tokens after ``prompt`` from a saved run: prompt + continuation.

    An empty prompt starts from a newline (nanoGPT's start) when the vocabulary has one, else
    from token 0. A prompt with characters outside a character vocabulary raises KfwError.
    """
    if tokens < 0:
        raise ConfigError(f"--tokens must be >= 0, not {tokens}")
    if temperature < 0:
        raise ConfigError(f"--temperature must be >= 0 (0: the likeliest token), not {temperature}")
    if top_k is not None and top_k < 1:
        raise ConfigError(f"--top-k must be >= 1, not {top_k}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, tokenizer, _ = load_model(run_dir, device)
    if prompt:
        try:
            ids = tokenizer.encode(prompt)
        except KfwError as exc:
            raise KfwError(f"prompt: {exc}") from None
        start, skip = ids, 0
    else:
        try:
            start = tokenizer.encode("\n")
        except KfwError:
            start = [0]
        skip = len(start)
    idx = torch.tensor([start], dtype=torch.long, device=device)
    g = torch.Generator(device=device).manual_seed(seed)
    out = model.generate(idx, tokens, temperature=temperature, top_k=top_k, generator=g)
    return tokenizer.decode(out[0, skip:].tolist())
