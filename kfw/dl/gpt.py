"""A decoder-only transformer (GPT), in one file, top to bottom, after nanoGPT's ``model.py``.

    tokens -> token embedding (+ learned / sinusoidal positions) -> dropout
           -> n_layer x [x + attn(LN(x)), x + MLP(LN(x))]     (pre-LayerNorm blocks)
           -> LN -> linear head tied to the token embedding -> logits

Positions come in three kinds (``GPTConfig.pos``):

- ``learned``: a trainable table ``(block_size, n_embd)`` added to the token embeddings; it has
  no row past the training context, so longer inputs are refused.
- ``sinusoidal``: the fixed table of Vaswani et al. (2017), section 3.5, computed for any length,
  added to the token embeddings scaled by sqrt(n_embd) as in their section 3.4.
- ``rope``: rotary embeddings (Su et al., 2021): each head's queries and keys are rotated by an
  angle proportional to their position, so ``q_i . k_j`` depends on ``i - j`` only; any length.

The attention is ours (``kfw.dl.attention.causal_attention``: matmul, causal mask, softmax);
``fused=True`` swaps in ``F.scaled_dot_product_attention`` behind the same weights.
GPT-2 initialisation: weights N(0, 0.02), biases 0, and the two residual projections of each
block N(0, 0.02 / sqrt(2 n_layer)) so the residual stream's variance does not grow with depth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kfw.dl.attention import causal_attention
from kfw.dl.flops import transformer_flops_per_token
from kfw.errors import ConfigError, KfwError

__all__ = ["GPT", "GPTConfig", "apply_rope", "rope_tables", "sinusoidal_positions"]

POSITIONS = ("learned", "sinusoidal", "rope")


@dataclass
class GPTConfig:
    """The shape of the model.

    Parameters
    ----------
    vocab_size : int
        Number of token ids.
    block_size : int
        Training context (longest sequence for ``learned`` positions; generation crops to it).
    n_layer, n_head, n_embd : int
        Depth, heads per layer and width (``n_embd`` divisible by ``n_head``).
    dropout : float
        On embeddings, attention weights, and each residual branch.
    bias : bool
        Biases in the linear layers and LayerNorms.
    pos : str
        ``"learned"``, ``"sinusoidal"`` or ``"rope"``.
    fused : bool
        Use ``F.scaled_dot_product_attention`` (same weights, same result to rounding).
    """

    vocab_size: int
    block_size: int = 256
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    dropout: float = 0.0
    bias: bool = True
    pos: str = "learned"
    fused: bool = False

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"GPTConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise ConfigError(
                f"GPTConfig.n_embd {self.n_embd} is not divisible by n_head {self.n_head}"
            )
        if self.pos not in POSITIONS:
            raise ConfigError(f"unknown position kind {self.pos!r}: choose one of {POSITIONS}")
        if self.pos == "rope" and (self.n_embd // self.n_head) % 2:
            raise ConfigError(
                f"rotary positions rotate pairs of dimensions: the head size "
                f"{self.n_embd // self.n_head} must be even"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout}")


def sinusoidal_positions(T: int, dim: int, device=None) -> Tensor:
    """``(T, dim)``: sin at even, cos at odd dimensions, wavelengths 2 pi .. 10000 * 2 pi."""
    pos = torch.arange(T, device=device, dtype=torch.float32).unsqueeze(1)  # (T, 1)
    inv_freq = torch.exp(
        torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim)
    )  # (ceil(dim/2),)
    table = torch.zeros(T, dim, device=device)
    table[:, 0::2] = torch.sin(pos * inv_freq)
    table[:, 1::2] = torch.cos(pos * inv_freq[: dim // 2])
    return table


def rope_tables(
    T: int, head_size: int, device=None, dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor]:
    """``cos, sin`` of the rotation angles ``t * 10000^(-2i/hs)``, each ``(T, head_size // 2)``."""
    inv_freq = 1.0 / (
        10000.0 ** (torch.arange(0, head_size, 2, device=device, dtype=dtype) / head_size)
    )  # (hs/2,)
    angles = torch.outer(torch.arange(T, device=device, dtype=dtype), inv_freq)  # (T, hs/2)
    return angles.cos(), angles.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate the pairs ``(x[..., i], x[..., i + hs/2])`` of ``x (B, nh, T, hs)`` by the angles."""
    half = x.size(-1) // 2
    x1, x2 = x[..., :half], x[..., half:]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class CausalSelfAttention(nn.Module):
    """All heads at once: one ``(C, 3C)`` projection, our causal kernel, one output projection."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout
        self.fused = config.fused
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(
        self, x: Tensor, rope: tuple[Tensor, Tensor] | None = None, need_weights: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        B, T, C = x.size()
        hs = C // self.n_head
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # 3 x (B, T, C)
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        y, att = causal_attention(
            q,
            k,
            v,
            dropout_p=self.dropout,
            training=self.training,
            fused=self.fused and not need_weights,
            need_weights=need_weights,
        )  # (B, nh, T, hs), (B, nh, T, T) or None
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # heads side by side again
        return self.resid_dropout(self.c_proj(y)), att


class MLP(nn.Module):
    """Position-wise feed-forward: C -> 4C -> GELU -> C."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: normalise, transform, add back to the residual stream."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(
        self, x: Tensor, rope: tuple[Tensor, Tensor] | None = None, need_weights: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        a, att = self.attn(self.ln_1(x), rope, need_weights)
        x = x + a
        x = x + self.mlp(self.ln_2(x))
        return x, att


class GPT(nn.Module):
    """The language model: ``forward`` gives next-token logits (and the loss given targets).

    Parameters
    ----------
    config : GPTConfig

    Attributes
    ----------
    transformer : nn.ModuleDict
        ``wte`` (token embedding), ``wpe`` (learned positions only), ``drop``, ``h`` (the
        blocks), ``ln_f``.
    lm_head : nn.Linear
        ``n_embd -> vocab_size``, its weight *is* ``transformer.wte.weight`` (tied).
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        modules = {"wte": nn.Embedding(config.vocab_size, config.n_embd)}
        if config.pos == "learned":
            modules["wpe"] = nn.Embedding(config.block_size, config.n_embd)
        modules |= {
            "drop": nn.Dropout(config.dropout),
            "h": nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            "ln_f": nn.LayerNorm(config.n_embd, bias=config.bias),
        }
        self.transformer = nn.ModuleDict(modules)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # weight tying (Press & Wolf, 2017): the embedding of a token is its output direction
        self.transformer.wte.weight = self.lm_head.weight

        # fixed position tables up to the training context; longer inputs compute their own.
        # Not persistent: a checkpoint holds only what training changed.
        hs = config.n_embd // config.n_head
        if config.pos == "sinusoidal":
            table = sinusoidal_positions(config.block_size, config.n_embd)
            self.register_buffer("pos_table", table, persistent=False)
        elif config.pos == "rope":
            cos, sin = rope_tables(config.block_size, hs)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)

        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):  # the two residual projections of each block
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding: bool = True) -> int:
        """Number of parameters (the tied embedding once).

        With ``non_embedding`` the learned position table is left out, as in nanoGPT; the token
        embedding stays in, since it is also the output layer.
        """
        n = sum(p.numel() for p in self.parameters())
        if non_embedding and self.config.pos == "learned":
            n -= self.transformer.wpe.weight.numel()
        return n

    def flops_per_token(self, context: int | None = None) -> float:
        """Training FLOPs per token at ``context`` (default the block size): PaLM's estimate."""
        c = self.config
        return transformer_flops_per_token(
            self.num_params(), c.n_layer, c.n_head, c.n_embd // c.n_head, context or c.block_size
        )

    def _hidden(self, idx: Tensor, need_weights: bool = False) -> tuple[Tensor, list[Tensor]]:
        """Final-LayerNorm activations ``(B, T, C)`` and, if asked, each layer's weights."""
        if idx.dim() != 2:
            raise ValueError(f"idx must be (batch, time) token ids, got shape {tuple(idx.shape)}")
        T = idx.size(1)
        cfg = self.config
        if cfg.block_size < T and cfg.pos == "learned":
            raise KfwError(
                f"sequence of {T} tokens is longer than the block size {cfg.block_size}: learned "
                "positions exist only up to the training context (sinusoidal or rope go further)"
            )
        x = self.transformer.wte(idx)  # (B, T, C)
        rope = None
        if cfg.pos == "learned":
            pos = torch.arange(T, dtype=torch.long, device=idx.device)
            x = x + self.transformer.wpe(pos)  # (T, C) broadcast over the batch
        elif cfg.pos == "sinusoidal":
            table = self.pos_table[:T] if cfg.block_size >= T else None
            if table is None:
                table = sinusoidal_positions(T, cfg.n_embd, device=idx.device)
            # Vaswani et al. section 3.4: the embeddings are multiplied by sqrt(d_model). The
            # table's entries have RMS 0.71 against the 0.02 of a GPT-2-initialised embedding:
            # unscaled, the sum is almost all position and the model starts blind to the tokens
            # (measured in docs/attention-and-positions.md).
            x = x * math.sqrt(cfg.n_embd) + table.to(x.dtype)
        else:
            if cfg.block_size >= T:
                rope = (self.rope_cos[:T], self.rope_sin[:T])
            else:
                rope = rope_tables(T, cfg.n_embd // cfg.n_head, device=idx.device)
        x = self.transformer.drop(x)
        maps = []
        for block in self.transformer.h:
            x, att = block(x, rope, need_weights)
            if need_weights:
                maps.append(att)
        return self.transformer.ln_f(x), maps

    def forward(self, idx: Tensor, targets: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Logits of the next token at every position, and the mean cross-entropy given targets.

        Parameters
        ----------
        idx : Tensor
            ``(B, T)`` token ids; ``T <= block_size`` for learned positions, any ``T`` otherwise.
        targets : Tensor, optional
            ``(B, T)`` next-token ids; ``-1`` entries are ignored.

        Returns
        -------
        logits : Tensor
            ``(B, T, vocab_size)``.
        loss : Tensor or None
            Scalar mean cross-entropy (nats per token), or None without targets.
        """
        x, _ = self._hidden(idx)
        logits = self.lm_head(x)  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(
                logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1
            )
        return logits, loss

    @torch.no_grad()
    def generate(
        self,
        idx: Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
        vocab: int | None = None,
    ) -> Tensor:
        """Extend ``idx (B, T)`` by ``max_new_tokens`` sampled tokens, one at a time.

        The model runs in eval mode (no dropout) during the call and is put back as it was. The
        context is cropped to the last ``block_size`` tokens. ``temperature=0`` takes the most
        likely token; ``top_k`` keeps the ``k`` most likely before sampling. ``generator`` (on the
        model's device) makes the samples reproducible. ``vocab`` limits the choice to the first
        ids (a padded embedding's extra rows are never generated).
        """
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        was_training = self.training
        self.eval()
        try:
            for _ in range(max_new_tokens):
                idx_cond = idx[:, -self.config.block_size :]
                x, _ = self._hidden(idx_cond)
                logits = self.lm_head(x[:, -1, :]).float()  # (B, V): only the last position
                if vocab is not None:
                    logits = logits[:, :vocab]
                if temperature == 0:
                    idx_next = logits.argmax(dim=-1, keepdim=True)
                else:
                    logits = logits / temperature
                    if top_k is not None:
                        v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                        logits = logits.masked_fill(logits < v[:, [-1]], float("-inf"))
                    probs = F.softmax(logits, dim=-1)
                    idx_next = torch.multinomial(probs, num_samples=1, generator=generator)
                idx = torch.cat((idx, idx_next), dim=1)  # (B, T + 1)
        finally:
            self.train(was_training)
        return idx

    @torch.no_grad()
    def attention_maps(self, idx: Tensor) -> list[Tensor]:
        """Each layer's attention weights ``(B, n_head, T, T)`` on ``idx``, in eval mode.

        Row ``i`` of a map is how position ``i`` spreads its attention over positions ``0..i``:
        non-negative, summing to 1, zero above the diagonal. Always the explicit kernel (the
        fused one does not return weights).
        """
        was_training = self.training
        self.eval()
        try:
            _, maps = self._hidden(idx, need_weights=True)
        finally:
            self.train(was_training)
        return maps
