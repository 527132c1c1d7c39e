"""The training loop: schedule, AdamW, fixed evaluation batches, atomic checkpoints, resume."""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kfw.dl.checkpoint import load_checkpoint, rng_state, save_atomic, set_rng_state
from kfw.dl.flops import mfu, peak_flops
from kfw.dl.lm.config import LMConfig, Runtime
from kfw.dl.lm.data import fixed_starts, random_starts
from kfw.dl.lm.shards import TokenStream
from kfw.errors import KfwError
from kfw.progress import NULL, Callback

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

    def train_step(
        self, it: int, loss: float | None, tokens_per_s: float, mfu: float = 0.0
    ) -> None:
        """Step ``it`` finished; ``loss`` every ``log_interval`` steps, else None.

        ``tokens_per_s`` is the mean over this call's steps so far; ``mfu`` the model FLOPs
        utilisation it means against the device's peak (0 when the peak is unknown).
        """

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
    mfu : float
        Model FLOPs utilisation of the step time (0 when the model or the peak is unknown).
    peak : dict
        ``flops`` (FLOP/s) and ``source`` of the peak the MFU is measured against, and the
        model's training ``flops_per_token``.
    """

    losses: list[dict[str, float]]
    val_loss: float
    seconds: float
    train_seconds: float
    tokens_per_s: float
    iters: int
    resumed_from: int | None = None
    mfu: float = 0.0
    peak: dict[str, Any] = field(default_factory=dict)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: TokenStream | torch.Tensor,
    starts: torch.Tensor,
    block: int,
    device: str,
    amp: bool = False,
) -> float:
    """Mean loss over fixed batches: ``starts`` is ``(n_batches, batch)``; eval mode, no grad."""
    was_training = model.training
    model.eval()
    losses = []
    stream = TokenStream.of(data)
    for row in starts:
        x, y = stream.batch(row, block)
        with _autocast(device, amp):
            _, loss = model(x.to(device), y.to(device))
        losses.append(loss.float())
    model.train(was_training)
    return torch.stack(losses).mean().item()


def _autocast(device: str, amp: bool) -> contextlib.AbstractContextManager[Any]:
    if amp:
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def accumulate(
    model: nn.Module,
    data: TokenStream,
    cfg: LMConfig,
    generator: torch.Generator,
    device: str,
    amp: bool = False,
) -> torch.Tensor:
    """One optimiser step's gradients: ``cfg.micro_steps`` micro-batches, losses averaged.

    Each micro-batch draws its ``batch_size`` windows from ``generator`` in turn, runs forward
    (under bf16 autocast when ``amp``) and backward with its loss divided by the number of
    micro-batches. The micro-batches being of equal size, the summed gradient is the gradient
    of the mean loss over all their windows: that of one batch ``micro_steps`` times larger.
    Returns the step's mean loss (detached).
    """
    k = cfg.micro_steps
    total = torch.zeros((), device=device)
    for _ in range(k):
        x, y = data.batch(
            random_starts(len(data), cfg.block_size, cfg.batch_size, generator), cfg.block_size
        )
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with _autocast(device, amp):
            _, loss = model(x, y)
        (loss / k).backward()
        total += loss.detach().float()
    return total / k


def flops_per_token(model: nn.Module, block: int) -> float:
    """Training FLOPs per token of ``model`` at context ``block`` (0 when it cannot tell)."""
    count = getattr(model, "flops_per_token", None)
    return float(count(block)) if callable(count) else 0.0


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
    """Train ``model`` (any ``forward(idx, targets) -> (logits, loss)``) by the package's recipe.

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
    train_data, val_data = TokenStream.of(train_data), TokenStream.of(val_data)
    eval_starts = {
        "train": fixed_starts(
            len(train_data), cfg.block_size, cfg.batch_size, cfg.eval_iters, cfg.eval_seed
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
        set_rng_state(state["rng"], device)
        start, losses = state["iter"], list(state["losses"])
        train_seconds = state["train_seconds"]
        resumed_from = start
    step_model = torch.compile(model) if rt.compile else model
    tokens_per_iter = cfg.step_tokens
    per_token = flops_per_token(model, cfg.block_size)
    peak, peak_source = peak_flops(device, rt.amp)
    _hook(callback, "train_start", cfg.max_iters, start, tokens_per_iter)
    model.train()
    it = start
    call_seconds = 0.0  # step time of this call: the rate is this call's, not the resumed one's
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
                        "rng": {**rng_state(device), "batches": batches.get_state()},
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
        loss = accumulate(step_model, train_data, cfg, batches, device, rt.amp)
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        it += 1
        report = it % cfg.log_interval == 0 or it == cfg.max_iters
        value = loss.item() if report else None  # .item() syncs a GPU: only when shown
        spent = time.perf_counter() - t0
        train_seconds += spent
        call_seconds += spent
        rate = tokens_per_iter * (it - start) / max(call_seconds, 1e-9)
        _hook(callback, "train_step", it, value, rate, mfu(rate, per_token, peak))
    _hook(callback, "train_end")
    done = cfg.max_iters
    rate = tokens_per_iter * done / train_seconds if train_seconds > 0 else 0.0
    return TrainResult(
        losses=losses,
        val_loss=losses[-1]["val"],
        seconds=time.perf_counter() - started,
        train_seconds=train_seconds,
        tokens_per_s=rate,
        iters=done,
        resumed_from=resumed_from,
        mfu=mfu(rate, per_token, peak),
        peak={
            "flops": peak,
            "source": peak_source,
            "flops_per_token": per_token,
            # what the caching allocator held at most: the measured side of `kfw lm info`
            "max_memory_bytes": torch.cuda.max_memory_allocated(device)
            if torch.device(device).type == "cuda"
            else None,
        },
    )
