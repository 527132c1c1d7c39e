"""An encoder-decoder transformer (Vaswani et al., 2017), and greedy and beam-search decoding.

    source -> embedding (+ positions) -> n_enc x [x + SelfAttn(LN(x)), x + MLP(LN(x))] -> LN
           = memory: every source position sees every other (no mask but the padding)
    target -> embedding (+ positions) -> n_dec x [x + CausalSelfAttn(LN(x)),
                                                  x + CrossAttn(LN(x), memory),
                                                  x + MLP(LN(x))] -> LN -> head -> logits

The blocks are pre-LayerNorm (as kfw's GPT, not the post-LN of the paper: it trains without a
long warm-up). Attention is kfw's :class:`kfw.dl.attention.MultiheadAttention` (torch's twin),
batch first. One token embedding serves the source, the target and the output layer (the
paper's section 3.4 shares all three). Positions are ``learned`` (a table per side) or
``sinusoidal`` (the paper's, added to the embeddings scaled by sqrt(n_embd)).

Padding: sources are right-padded with ``pad_id``; padded keys are masked out of the encoder's
self-attention and of every cross-attention, so a padded source gives the same outputs as the
unpadded one. Targets need no key mask: the causal mask already hides the padding that follows
a shorter target, and the loss ignores it (target ``-1``).

Decoding (:func:`greedy_search`, :func:`beam_search`) is written against a ``step`` function
(prefixes -> next-token log-probabilities), so the decoder-only GPT decodes through the same
code (see :mod:`kfw.dl.seqtrain`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kfw.dl.attention import MultiheadAttention, causal_mask
from kfw.dl.gpt import sinusoidal_positions
from kfw.errors import ConfigError, KfwError

__all__ = ["Seq2Seq", "Seq2SeqConfig", "beam_search", "greedy_search"]

POSITIONS = ("learned", "sinusoidal")
Step = Callable[[Tensor], Tensor]


@dataclass
class Seq2SeqConfig:
    """The shape of the model.

    Parameters
    ----------
    vocab_size : int
        Token ids, shared by source and target.
    max_len : int
        Longest source and longest decoder input (learned positions have no row past it).
    n_enc, n_dec : int
        Encoder and decoder blocks.
    n_head, n_embd : int
        Heads per attention and width (``n_embd`` divisible by ``n_head``).
    dropout : float
        On embeddings, attention weights and residual branches (training only).
    pos : str
        ``"learned"`` or ``"sinusoidal"``.
    pad_id, bos_id, eos_id : int
        Padding (masked), start of the decoder input, end of the output.
    """

    vocab_size: int
    max_len: int = 32
    n_enc: int = 2
    n_dec: int = 2
    n_head: int = 4
    n_embd: int = 64
    dropout: float = 0.0
    pos: str = "learned"
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2

    def __post_init__(self) -> None:
        for name in ("vocab_size", "max_len", "n_enc", "n_dec", "n_head", "n_embd"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"Seq2SeqConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise ConfigError(f"n_embd {self.n_embd} is not divisible by n_head {self.n_head}")
        if self.pos not in POSITIONS:
            raise ConfigError(f"unknown position kind {self.pos!r}: choose one of {POSITIONS}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"Seq2SeqConfig.dropout must be in [0, 1), got {self.dropout}")


class MLP(nn.Module):
    """Position-wise feed-forward: C -> 4C -> GELU -> C."""

    def __init__(self, c: Seq2SeqConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(c.n_embd, 4 * c.n_embd)
        self.proj = nn.Linear(4 * c.n_embd, c.n_embd)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.proj(F.gelu(self.fc(x))))


class EncoderBlock(nn.Module):
    """Bidirectional self-attention (padding masked), then the MLP; pre-LN residuals."""

    def __init__(self, c: Seq2SeqConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(c.n_embd)
        self.attn = MultiheadAttention(c.n_embd, c.n_head, dropout=c.dropout, batch_first=True)
        self.ln_2 = nn.LayerNorm(c.n_embd)
        self.mlp = MLP(c)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x: Tensor, src_pad: Tensor) -> Tensor:
        h = self.ln_1(x)
        a, _ = self.attn(h, h, h, key_padding_mask=src_pad, need_weights=False)
        x = x + self.drop(a)
        return x + self.mlp(self.ln_2(x))


class DecoderBlock(nn.Module):
    """Causal self-attention, cross-attention to the memory, the MLP; pre-LN residuals."""

    def __init__(self, c: Seq2SeqConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(c.n_embd)
        self.self_attn = MultiheadAttention(c.n_embd, c.n_head, c.dropout, batch_first=True)
        self.ln_2 = nn.LayerNorm(c.n_embd)
        self.cross_attn = MultiheadAttention(c.n_embd, c.n_head, c.dropout, batch_first=True)
        self.ln_3 = nn.LayerNorm(c.n_embd)
        self.mlp = MLP(c)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x: Tensor, memory: Tensor, src_pad: Tensor, causal: Tensor) -> Tensor:
        h = self.ln_1(x)
        a, _ = self.self_attn(h, h, h, attn_mask=causal, need_weights=False)
        x = x + self.drop(a)
        a, _ = self.cross_attn(
            self.ln_2(x), memory, memory, key_padding_mask=src_pad, need_weights=False
        )
        x = x + self.drop(a)
        return x + self.mlp(self.ln_3(x))


class Seq2Seq(nn.Module):
    """The encoder-decoder: ``forward(src, tgt_in)`` gives next-token logits of the target.

    Parameters
    ----------
    config : Seq2SeqConfig

    Attributes
    ----------
    wte : nn.Embedding
        Token embedding of source and target; its weight is also ``lm_head.weight``.
    enc_pos, dec_pos : nn.Embedding
        Learned position tables (``learned`` only).
    encoder, decoder : nn.ModuleList
        The blocks; ``ln_enc`` and ``ln_dec`` close each stack.
    """

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        c = self.config = config
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)
        if c.pos == "learned":
            self.enc_pos = nn.Embedding(c.max_len, c.n_embd)
            self.dec_pos = nn.Embedding(c.max_len, c.n_embd)
        else:
            table = sinusoidal_positions(c.max_len, c.n_embd)
            self.register_buffer("pos_table", table, persistent=False)
        self.drop = nn.Dropout(c.dropout)
        self.encoder = nn.ModuleList([EncoderBlock(c) for _ in range(c.n_enc)])
        self.ln_enc = nn.LayerNorm(c.n_embd)
        self.decoder = nn.ModuleList([DecoderBlock(c) for _ in range(c.n_dec)])
        self.ln_dec = nn.LayerNorm(c.n_embd)
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.wte.weight = self.lm_head.weight  # tied (Press & Wolf, 2017)
        # GPT-2's initialisation for linears and embeddings, as kfw's GPT; the attention's packed
        # in-projection keeps torch's Xavier initialisation
        for m in self.modules():
            if isinstance(m, nn.Linear | nn.Embedding):
                nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def num_params(self) -> int:
        """Number of parameters, the tied embedding once (position tables included)."""
        return sum(p.numel() for p in self.parameters())

    def _embed(self, idx: Tensor, table: nn.Embedding | None) -> Tensor:
        T = idx.size(1)
        if self.config.max_len < T:
            raise KfwError(f"sequence of {T} tokens is longer than max_len {self.config.max_len}")
        x = self.wte(idx)  # (B, T, C)
        if table is not None:
            x = x + table(torch.arange(T, device=idx.device))
        else:  # sinusoidal: scale the embeddings as the paper's section 3.4 (see kfw.dl.gpt)
            x = x * math.sqrt(self.config.n_embd) + self.pos_table[:T].to(x.dtype)
        return self.drop(x)

    def encode(self, src: Tensor) -> tuple[Tensor, Tensor]:
        """The memory ``(B, S, C)`` of ``src (B, S)`` and its padding mask ``(B, S)`` (True = pad)."""
        if src.dim() != 2:
            raise ValueError(f"src must be (batch, time) token ids, got shape {tuple(src.shape)}")
        src_pad = src == self.config.pad_id
        x = self._embed(src, getattr(self, "enc_pos", None))
        for block in self.encoder:
            x = block(x, src_pad)
        return self.ln_enc(x), src_pad

    def decode(self, tgt: Tensor, memory: Tensor, src_pad: Tensor) -> Tensor:
        """Logits ``(B, T, V)`` of the token after each position of ``tgt (B, T)``."""
        T = tgt.size(1)
        causal = causal_mask(T, T, device=tgt.device)
        x = self._embed(tgt, getattr(self, "dec_pos", None))
        for block in self.decoder:
            x = block(x, memory, src_pad, causal)
        return self.lm_head(self.ln_dec(x))

    def forward(
        self, src: Tensor, tgt: Tensor, targets: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """Teacher-forced logits, and the mean cross-entropy given targets.

        Parameters
        ----------
        src : Tensor
            ``(B, S)`` source ids, right-padded with ``pad_id``.
        tgt : Tensor
            ``(B, T)`` decoder input: ``bos_id`` then the target shifted right.
        targets : Tensor, optional
            ``(B, T)`` the target then ``eos_id``; ``-1`` entries (padding) are ignored.

        Returns
        -------
        logits : Tensor
            ``(B, T, vocab_size)``.
        loss : Tensor or None
            Mean cross-entropy in nats per target token, or None without targets.
        """
        memory, src_pad = self.encode(src)
        logits = self.decode(tgt, memory, src_pad)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    def stepper(self, src: Tensor, k: int = 1) -> Step:
        """The ``step`` function of :func:`beam_search` for ``src (B, S)``, ``k`` rows each.

        The source is encoded once; each call decodes the whole prefix again (no key/value
        cache: the outputs here are a few tokens long).
        """
        memory, src_pad = self.encode(src)
        memory, src_pad = memory.repeat_interleave(k, 0), src_pad.repeat_interleave(k, 0)

        def step(prefix: Tensor) -> Tensor:
            return F.log_softmax(self.decode(prefix, memory, src_pad)[:, -1].float(), dim=-1)

        return step

    @torch.no_grad()
    def generate(
        self, src: Tensor, max_new_tokens: int, beam: int = 1, length_penalty: float = 0.0
    ) -> tuple[Tensor, Tensor]:
        """Decode ``src (B, S)``: greedy for ``beam=1``, else beam search of that width.

        Runs in eval mode and puts the model back as it was. Returns the tokens ``(B, T)``
        after ``bos_id`` (``eos_id`` included, then ``pad_id``) and their scores ``(B,)``, the
        summed log-probabilities (see :func:`beam_search`).
        """
        was_training = self.training
        self.eval()
        try:
            c = self.config
            start = torch.full((src.size(0), 1), c.bos_id, dtype=torch.long, device=src.device)
            if beam == 1:
                return greedy_search(self.stepper(src), start, max_new_tokens, c.eos_id, c.pad_id)
            return beam_search(
                self.stepper(src, beam), start, beam, max_new_tokens, c.eos_id, c.pad_id,
                length_penalty,
            )  # fmt: skip
        finally:
            self.train(was_training)


# ---------------------------------------------------------------------------------------------
# decoding


def greedy_search(
    step: Step, start: Tensor, max_new_tokens: int, eos_id: int, pad_id: int
) -> tuple[Tensor, Tensor]:
    """Take the most likely token at every step until ``eos_id`` (or ``max_new_tokens``).

    Parameters
    ----------
    step : callable
        ``prefix (B, t) -> (B, V)`` log-probabilities of the next token.
    start : Tensor
        ``(B, t0)`` the prefixes to extend (a column of ``bos_id``, say).
    max_new_tokens : int
        At most this many tokens per row.
    eos_id, pad_id : int
        A row ends at ``eos_id``; ``pad_id`` fills it after that.

    Returns
    -------
    tokens : Tensor
        ``(B, T)`` the new tokens, ``T <= max_new_tokens``.
    scores : Tensor
        ``(B,)`` the summed log-probabilities of each row's tokens up to and with ``eos_id``.
    """
    if max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    seqs = start
    scores = torch.zeros(start.size(0), device=start.device)
    done = torch.zeros(start.size(0), dtype=torch.bool, device=start.device)
    for _ in range(max_new_tokens):
        logp = step(seqs)  # (B, V)
        best, tok = logp.max(dim=-1)  # (B,), (B,)
        scores = scores + best.masked_fill(done, 0.0)
        tok = tok.masked_fill(done, pad_id)
        seqs = torch.cat((seqs, tok[:, None]), dim=1)
        done = done | (tok == eos_id)
        if done.all():
            break
    return seqs[:, start.size(1) :], scores


def beam_search(
    step: Step,
    start: Tensor,
    k: int,
    max_new_tokens: int,
    eos_id: int,
    pad_id: int,
    length_penalty: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """Keep the ``k`` best prefixes of every row; return the best finished one.

    At every step each of the ``k`` live prefixes of a row is extended by every token, and the
    ``k`` extensions with the highest summed log-probability survive; a prefix that has
    emitted ``eos_id`` is finished and carries on unchanged (extended by ``pad_id`` at no cost),
    competing with the live ones on its score. Since a score only falls as a prefix grows, the
    search stops once the ``k`` best of every row are all finished.

    Length normalisation (the choice, stated): pruning always uses the raw sum, which is the
    exact probability of the prefix; ``length_penalty`` alpha only ranks the ``k`` final
    hypotheses, by ``score / length ** alpha`` (length counts ``eos_id``). The default 0 picks
    the most probable hypothesis found, which is what an exact-answer task wants; alpha > 0
    favours longer outputs (Wu et al., 2016, use a variant of this for translation).

    With ``k=1`` this is greedy search (:func:`greedy_search` gives the same tokens).

    Parameters
    ----------
    step : callable
        ``prefix (B * k, t) -> (B * k, V)`` next-token log-probabilities; rows ``b * k ..
        b * k + k - 1`` belong to row ``b`` of ``start``.
    start : Tensor
        ``(B, t0)`` the prefixes to extend.
    k : int
        Beam width.
    max_new_tokens, eos_id, pad_id
        As in :func:`greedy_search`.
    length_penalty : float
        Alpha above (>= 0).

    Returns
    -------
    tokens : Tensor
        ``(B, T)`` the chosen hypothesis of each row (``eos_id`` then ``pad_id``).
    scores : Tensor
        ``(B,)`` its summed log-probability (not length-normalised).
    """
    if k < 1 or max_new_tokens < 1:
        raise ConfigError(f"beam width and max_new_tokens must be >= 1, got {k}, {max_new_tokens}")
    if length_penalty < 0:
        raise ConfigError(f"length_penalty must be >= 0, got {length_penalty}")
    B, device = start.size(0), start.device
    seqs = start.repeat_interleave(k, 0)  # (B*k, t0)
    # all beams of a row start identical: keep only the first alive, or the first step would
    # return k copies of the same best token
    scores = torch.full((B, k), float("-inf"), device=device)
    scores[:, 0] = 0.0
    done = torch.zeros(B * k, dtype=torch.bool, device=device)
    base = torch.arange(B, device=device)[:, None] * k  # (B, 1) first row of each example
    for _ in range(max_new_tokens):
        logp = step(seqs)  # (B*k, V)
        V = logp.size(-1)
        if k > V:
            raise ConfigError(f"beam width {k} is larger than the vocabulary ({V})")
        finished = torch.full_like(logp, float("-inf"))
        finished[:, pad_id] = 0.0
        logp = torch.where(done[:, None], finished, logp)
        cand = (scores.reshape(-1, 1) + logp).view(B, k * V)  # (B, k*V)
        scores, flat = cand.topk(k, dim=1)  # (B, k)
        rows = (base + flat // V).reshape(-1)  # (B*k,) the prefix each survivor extends
        tok = (flat % V).reshape(-1)  # (B*k,)
        seqs = torch.cat((seqs[rows], tok[:, None]), dim=1)
        done = done[rows] | (tok == eos_id)
        if done.all():
            break
    new = seqs[:, start.size(1) :].view(B, k, -1)  # (B, k, T)
    rank = scores
    if length_penalty > 0:
        length = (new != pad_id).sum(-1).clamp(min=1).to(scores.dtype)  # (B, k)
        rank = scores / length**length_penalty
    best = rank.argmax(dim=1)  # (B,)
    pick = torch.arange(B, device=device)
    return new[pick, best], scores[pick, best]
