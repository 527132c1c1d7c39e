"""``kfw lm info``: a preset's architecture, exact parameter count and memory, nothing allocated.

The model is built on torch's ``meta`` device: every parameter has its shape and no storage,
so GPT-2 (124M) or a model far larger is counted exactly, through the very constructor that
trains it, in milliseconds and without a byte of its weights.

Memory of training with AdamW in float32, per device, without sharding:

- weights 4 bytes, gradients 4, Adam's two moments 8: 16 bytes a parameter;
- activations kept for the backward pass, per micro-batch of ``b`` windows of ``s`` tokens,
  after Korthikanti et al. (2022), "Reducing Activation Recomputation in Large Transformer
  Models", section 4.1: ``s b h (34 + 5 a s / h)`` bytes a layer with 16-bit activations (``h``
  the width, ``a`` the heads), the ``5 a s / h`` term being the attention scores, softmax and
  its dropout mask, which a fused (flash) kernel never stores; float32 activations double the
  16-bit part;
- the logits and their gradient in float32 for the loss: ``2 x 4 b s V`` bytes (``V`` the
  padded vocabulary), which for GPT-2 rivals all its layers' activations.

These are estimates to size a run (a caching allocator's fragmentation and temporary buffers
come on top), not a measurement.
"""

from __future__ import annotations

from typing import Any

import torch

from kfw.dl.flops import peak_flops
from kfw.dl.lm.config import LMConfig
from kfw.dl.lm.runs import build_model

CHAR_VOCAB = 65  # tinyshakespeare's characters: the default for a character preset


def _gb(n: float) -> str:
    return f"{n / 2**30:,.2f} GiB" if n >= 2**30 else f"{n / 2**20:,.1f} MiB"


def count(cfg: LMConfig, vocab: int) -> dict[str, Any]:
    """Exact parameter counts of ``cfg``'s GPT for a tokenizer of ``vocab`` ids (meta device)."""
    with torch.device("meta"):
        model = build_model(cfg, vocab)
    padded = model.config.vocab_size
    total = sum(p.numel() for p in model.parameters())  # the tied embedding once
    wte = model.transformer.wte.weight.numel()
    wpe = model.transformer.wpe.weight.numel() if cfg.pos == "learned" else 0
    block = sum(p.numel() for p in model.transformer.h[0].parameters())
    return {
        "vocab": vocab,
        "padded_vocab": padded,
        "total": total,
        "unpadded": total - (padded - vocab) * cfg.n_embd,
        "embedding": wte,
        "positions": wpe,
        "per_block": block,
        "final_norm": sum(p.numel() for p in model.transformer.ln_f.parameters()),
        "flops_per_token": model.flops_per_token(cfg.block_size),
    }


def memory(cfg: LMConfig, n_params: int, padded_vocab: int, fused: bool, bf16: bool) -> dict:
    """Estimated training memory in bytes (module docstring): states, activations, logits."""
    s, b, h, a = cfg.block_size, cfg.batch_size, cfg.n_embd, cfg.n_head
    scores = 0 if fused else 5 * a * s / h
    layer = s * b * h * (34 + scores) * (1 if bf16 else 2)
    activations = cfg.n_layer * layer
    logits = 2 * 4 * b * s * padded_vocab
    states = 16 * n_params
    return {
        "states": states,
        "activations": activations,
        "logits": logits,
        "total": states + activations + logits,
    }


def describe(cfg: LMConfig, vocab: int | None = None, *, device: str = "cpu") -> list[str]:
    """The lines of ``kfw lm info``."""
    if vocab is None:
        vocab = cfg.vocab_size or (cfg.bpe_vocab if cfg.tokenizer == "bpe" else CHAR_VOCAB)
    c = count(cfg, vocab)
    hs = cfg.n_embd // cfg.n_head
    lines = [
        f"GPT {cfg.n_layer} layers x {cfg.n_head} heads x {cfg.n_embd} wide (head size {hs}), "
        f"context {cfg.block_size}, {cfg.pos} positions, MLP {4 * cfg.n_embd}, "
        f"{'biases' if cfg.bias else 'no biases'}, dropout {cfg.dropout:g}, tied embeddings",
        f"vocabulary: {vocab:,} ids ({cfg.tokenizer})"
        + (f", embedding padded to {c['padded_vocab']:,}" if c["padded_vocab"] != vocab else ""),
        f"parameters: {c['unpadded']:,}"
        + (f" ({c['total']:,} with the padding)" if c["total"] != c["unpadded"] else ""),
        f"  token embedding = output layer {c['embedding']:,}; positions {c['positions']:,}; "
        f"{cfg.n_layer} blocks x {c['per_block']:,}; final LayerNorm {c['final_norm']:,}",
    ]
    step = cfg.step_tokens
    flops_step = c["flops_per_token"] * step
    lines.append(
        f"step: {step:,} tokens = {cfg.micro_steps} micro-batch"
        f"{'es' if cfg.micro_steps > 1 else ''} of {cfg.batch_size} x {cfg.block_size}; "
        f"{c['flops_per_token'] / 1e6:,.1f} MFLOPs a token, {flops_step / 1e12:,.3g} TFLOPs a step"
    )
    lines.append(
        f"schedule: {cfg.max_iters:,} steps ({cfg.max_iters * step / 1e9:,.3g}B tokens), peak lr "
        f"{cfg.learning_rate:g} after {cfg.warmup_iters} warm-up steps, cosine to {cfg.min_lr:g}, "
        f"AdamW ({cfg.beta1}, {cfg.beta2}) decay {cfg.weight_decay:g} on matrices, clip {cfg.grad_clip:g}"
    )
    for label, fused, bf16 in (
        ("float32, our attention", False, False),
        ("bf16, fused attention", True, True),
    ):
        m = memory(cfg, c["total"], c["padded_vocab"], fused, bf16)
        lines.append(
            f"memory ({label}): {_gb(m['total'])} = weights, gradients and AdamW "
            f"{_gb(m['states'])} + activations {_gb(m['activations'])} + logits {_gb(m['logits'])}"
        )
    if device.startswith("cuda") and not torch.cuda.is_available():
        lines.append("step time: no CUDA device here to take a peak from")
        return lines
    peak, source = peak_flops(device, bf16=True)
    if peak:
        seconds = flops_step / (0.4 * peak)
        lines.append(
            f"at 40% MFU of {peak / 1e12:,.3g} TFLOP/s bf16 ({source}): {seconds:,.3g} s a step, "
            f"{seconds * cfg.max_iters / 3600:,.3g} h for the schedule"
        )
    return lines
