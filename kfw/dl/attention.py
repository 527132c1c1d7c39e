"""Multi-head attention from the equations: softmax(Q K^T / sqrt(d)) V, in plain tensor operations.

Two things live here:

- ``MultiheadAttention``: a drop-in twin of ``torch.nn.MultiheadAttention`` (same parameter names
  and shapes, same ``forward`` signature and return values), written with ``F.linear``,
  ``torch.bmm`` / ``torch.baddbmm``, ``softmax`` and masking only. Its float32 results equal
  torch's bit for bit with ``need_weights=True``, because it performs the same operations in the
  same order (see the class docstring).
- ``causal_attention``: the lean causal kernel the GPT uses on ``(B, nh, T, hs)`` tensors, with an
  optional ``fused=True`` path through ``F.scaled_dot_product_attention`` for speed.

Reference: Vaswani et al., "Attention Is All You Need" (2017), section 3.2.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MultiheadAttention", "causal_attention", "causal_mask"]


def causal_mask(tgt_len: int, src_len: int, device: torch.device | None = None) -> Tensor:
    """Boolean mask, True where attention is NOT allowed: key ``j`` after query ``i``.

    Parameters
    ----------
    tgt_len, src_len : int
        Query length ``L`` and key length ``S``. Query ``i`` sees keys ``0..i`` (aligned top-left,
        torch's convention in ``scaled_dot_product_attention(is_causal=True)``).
    device : torch.device, optional
        Where to build the mask.

    Returns
    -------
    Tensor
        ``(L, S)`` bool, the strict upper triangle set.
    """
    ones = torch.ones(tgt_len, src_len, dtype=torch.bool, device=device)
    return ones.triu(1)


def _float_mask(mask: Tensor, dtype: torch.dtype) -> Tensor:
    # torch's F._canonical_mask: a bool mask becomes an additive float mask (0 allowed, -inf not)
    if mask.dtype == torch.bool:
        return torch.zeros_like(mask, dtype=dtype).masked_fill_(mask, float("-inf"))
    if not torch.is_floating_point(mask):
        raise TypeError(f"only bool and floating masks are supported, got {mask.dtype}")
    return mask


class MultiheadAttention(nn.Module):
    r"""Multi-head attention written from the equations, a drop-in twin of torch's.

    .. math::
        \mathrm{head}_h = \mathrm{softmax}\!\left(\frac{Q W^Q_h (K W^K_h)^\top}{\sqrt{d}} + M
        \right) V W^V_h, \qquad \mathrm{out} = [\mathrm{head}_1; \dots; \mathrm{head}_H] W^O

    with ``d = embed_dim / num_heads`` and ``M`` the additive mask (0 where allowed, -inf where
    not).

    Order of operations (``need_weights=True``), which is that of
    ``torch.nn.functional.multi_head_attention_forward`` so that float32 results agree bit for bit
    (floating-point addition is not associative: the same numbers combined in another order
    differ in the last bits, so only the same sequence of kernels gives ``torch.equal``):

    1. batch-first inputs are transposed to ``(L, B, E)`` views, keeping ``query is key is
       value`` identities;
    2. the in-projection is one ``F.linear`` of the packed ``(3E, E)`` weight for
       self-attention (``q is k is v``) split into q, k, v by ``unflatten`` + ``contiguous``; for
       ``k is v`` one linear for q and one for the packed k/v; otherwise three linears;
    3. masks become float: bool ``True`` -> ``-inf``; a 2-D ``attn_mask`` gets a leading 1; the
       key-padding mask is broadcast to ``(B*nh, 1, S)`` and *added* to the attention mask;
    4. heads become the batch: ``q.view(L, B*nh, d).transpose(0, 1)`` -> ``(B*nh, L, d)``;
    5. ``q`` is scaled *before* the product, ``q * sqrt(1/d)`` (not the scores after it, not
       ``1/sqrt(d)``), then ``baddbmm(mask, q, k^T)`` (mask added inside the kernel) or ``bmm``;
    6. ``softmax`` over the keys, ``dropout`` on the weights (training only);
    7. ``bmm(weights, v)``, heads put back with ``transpose(0, 1).reshape(L*B, E)``, then one
       ``F.linear`` of the out-projection on that 2-D view;
    8. the returned weights are the per-head ones ``(B, nh, L, S)`` or their ``mean`` over heads.

    With ``need_weights=False`` torch switches to ``F.scaled_dot_product_attention``, which this
    class does not use: the same steps above run, and results agree with torch's to rounding
    (1e-12 in float64), not bit for bit.

    ``is_causal`` follows torch: with an ``attn_mask`` it is a hint that the mask is causal. Where
    torch drops the mask and lets the kernel apply causality (``need_weights=False`` and no
    key-padding mask) the causal mask is used here too; otherwise ``attn_mask`` is used as given.
    Unlike torch, which raises when ``is_causal=True`` comes without ``attn_mask``, this class
    builds the causal mask itself.

    Parameters
    ----------
    embed_dim : int
        Model width ``E``; must be divisible by ``num_heads``.
    num_heads : int
        Number of heads ``nh``; each has width ``d = E // nh``.
    dropout : float
        Dropout probability on the attention weights, in training mode only.
    bias : bool
        Whether the in- and out-projections have biases.
    batch_first : bool
        Inputs and output are ``(B, L, E)`` rather than ``(L, B, E)``.
    device, dtype : optional
        Where and in what type the parameters are created.

    Attributes
    ----------
    in_proj_weight : Parameter
        ``(3E, E)``, rows ``[W^Q; W^K; W^V]``; Xavier-uniform initialised as torch does.
    in_proj_bias : Parameter or None
        ``(3E,)``, zeros at initialisation.
    out_proj : nn.Linear
        ``E -> E``; bias zeroed at initialisation.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        batch_first: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"embed_dim and num_heads must be > 0, got {embed_dim}, {num_heads}")
        if embed_dim % num_heads != 0:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        factory = {"device": device, "dtype": dtype}
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = dropout
        self.batch_first = batch_first
        # created in torch's order, so that the same seed gives the same initial weights
        self.in_proj_weight = nn.Parameter(torch.empty((3 * embed_dim, embed_dim), **factory))
        if bias:
            self.in_proj_bias = nn.Parameter(torch.empty(3 * embed_dim, **factory))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **factory)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.in_proj_weight)
        if self.in_proj_bias is not None:
            nn.init.zeros_(self.in_proj_bias)
            nn.init.zeros_(self.out_proj.bias)

    def _in_projection(self, query: Tensor, key: Tensor, value: Tensor) -> tuple[Tensor, ...]:
        # the three branches of torch's _in_projection_packed: different GEMM shapes can round
        # differently, so self-attention must be one (.., 3E) product as in torch
        E = self.embed_dim
        w, b = self.in_proj_weight, self.in_proj_bias
        if key is value:
            if query is key:
                proj = F.linear(query, w, b)  # (L, B, 3E)
                proj = proj.unflatten(-1, (3, E)).unsqueeze(0).transpose(0, -2).squeeze(-2)
                proj = proj.contiguous()  # (3, L, B, E)
                return proj[0], proj[1], proj[2]
            w_q, w_kv = w.split([E, 2 * E])
            b_q, b_kv = (None, None) if b is None else b.split([E, 2 * E])
            kv = F.linear(key, w_kv, b_kv)  # (S, B, 2E)
            kv = kv.unflatten(-1, (2, E)).unsqueeze(0).transpose(0, -2).squeeze(-2).contiguous()
            return F.linear(query, w_q, b_q), kv[0], kv[1]
        w_q, w_k, w_v = w.chunk(3)
        b_q, b_k, b_v = (None, None, None) if b is None else b.chunk(3)
        return F.linear(query, w_q, b_q), F.linear(key, w_k, b_k), F.linear(value, w_v, b_v)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = True,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Attend from ``query`` to ``key`` / ``value``.

        Parameters
        ----------
        query : Tensor
            ``(L, E)`` unbatched, ``(L, B, E)``, or ``(B, L, E)`` with ``batch_first``.
        key, value : Tensor
            ``(S, E)``, ``(S, B, E)`` or ``(B, S, E)``, the same layout as ``query``.
        key_padding_mask : Tensor, optional
            ``(B, S)`` (``(S,)`` unbatched); bool (True = ignore that key) or float (added).
        need_weights : bool
            Return the attention weights as well.
        attn_mask : Tensor, optional
            ``(L, S)`` or ``(B*nh, L, S)`` (``(nh, L, S)`` unbatched); bool (True = not allowed)
            or float (added to the scores).
        average_attn_weights : bool
            Average the returned weights over heads (``(B, L, S)``) or not (``(B, nh, L, S)``).
        is_causal : bool
            Causal masking; see the class docstring for how it combines with ``attn_mask``.

        Returns
        -------
        output : Tensor
            Same layout as ``query``.
        weights : Tensor or None
            ``(B, L, S)`` / ``(B, nh, L, S)`` (no batch dimension when unbatched), or None when
            ``need_weights=False``.
        """
        is_batched = query.dim() == 3
        if query.dim() not in (2, 3) or key.dim() != query.dim() or value.dim() != query.dim():
            raise ValueError(
                "query, key and value must all be 2-D (unbatched) or all 3-D (batched), got "
                f"{query.dim()}-D, {key.dim()}-D and {value.dim()}-D"
            )
        if self.batch_first and is_batched:
            # (B, L, E) -> (L, B, E) views; keep the identities the in-projection branches on
            if key is value:
                if query is key:
                    query = key = value = query.transpose(1, 0)
                else:
                    query, key = (x.transpose(1, 0) for x in (query, key))
                    value = key
            else:
                query, key, value = (x.transpose(1, 0) for x in (query, key, value))
        if not is_batched:
            # a batch of one in the middle: (L, E) -> (L, 1, E)
            # torch unsqueezes each separately, which breaks `is`: its unbatched self-attention
            # then takes the three-linears branch of the in-projection, and so does ours
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)

        tgt_len, bsz, embed_dim = query.shape
        src_len = key.shape[0]
        nh, hd = self.num_heads, self.head_dim
        if embed_dim != self.embed_dim:
            raise ValueError(f"expected embedding dimension {self.embed_dim}, got {embed_dim}")
        if key.shape != value.shape:
            raise ValueError(
                f"key shape {tuple(key.shape)} differs from value's {tuple(value.shape)}"
            )

        if key_padding_mask is not None:
            key_padding_mask = _float_mask(key_padding_mask, query.dtype)
        if is_causal and (attn_mask is None or (key_padding_mask is None and not need_weights)):
            # torch hands is_causal to its kernel in the second case, dropping attn_mask
            attn_mask = causal_mask(tgt_len, src_len, device=query.device)
        if attn_mask is not None:
            attn_mask = _float_mask(attn_mask, query.dtype)
            if attn_mask.dim() == 2:
                if attn_mask.shape != (tgt_len, src_len):
                    raise ValueError(
                        f"2-D attn_mask has shape {tuple(attn_mask.shape)}, "
                        f"expected {(tgt_len, src_len)}"
                    )
                attn_mask = attn_mask.unsqueeze(0)  # (1, L, S)
            elif attn_mask.dim() == 3:
                if attn_mask.shape != (bsz * nh, tgt_len, src_len):
                    raise ValueError(
                        f"3-D attn_mask has shape {tuple(attn_mask.shape)}, "
                        f"expected {(bsz * nh, tgt_len, src_len)}"
                    )
            else:
                raise ValueError(f"attn_mask must be 2-D or 3-D, got {attn_mask.dim()}-D")

        q, k, v = self._in_projection(query, key, value)  # (L, B, E), (S, B, E), (S, B, E)

        # heads into the batch dimension
        q = q.view(tgt_len, bsz * nh, hd).transpose(0, 1)  # (B*nh, L, d)
        k = k.view(src_len, bsz * nh, hd).transpose(0, 1)  # (B*nh, S, d)
        v = v.view(src_len, bsz * nh, hd).transpose(0, 1)  # (B*nh, S, d)

        if key_padding_mask is not None:
            if key_padding_mask.shape != (bsz, src_len):
                raise ValueError(
                    f"key_padding_mask has shape {tuple(key_padding_mask.shape)}, "
                    f"expected {(bsz, src_len)}"
                )
            kpm = key_padding_mask.view(bsz, 1, 1, src_len).expand(-1, nh, -1, -1)
            kpm = kpm.reshape(bsz * nh, 1, src_len)  # (B*nh, 1, S)
            attn_mask = kpm if attn_mask is None else attn_mask + kpm

        # scale q, not the scores: one multiply of L*d numbers rather than L*S, as torch does
        q_scaled = q * math.sqrt(1.0 / float(hd))
        if attn_mask is not None:
            scores = torch.baddbmm(attn_mask, q_scaled, k.transpose(-2, -1))  # (B*nh, L, S)
        else:
            scores = torch.bmm(q_scaled, k.transpose(-2, -1))  # (B*nh, L, S)
        weights = F.softmax(scores, dim=-1)
        if self.training and self.dropout > 0.0:
            weights = F.dropout(weights, p=self.dropout)

        out = torch.bmm(weights, v)  # (B*nh, L, d)
        out = out.transpose(0, 1).reshape(tgt_len * bsz, embed_dim)  # (L*B, E)
        out = F.linear(out, self.out_proj.weight, self.out_proj.bias)
        out = out.view(tgt_len, bsz, out.size(1))  # (L, B, E)

        if need_weights:
            weights = weights.view(bsz, nh, tgt_len, src_len)
            if average_attn_weights:
                weights = weights.mean(dim=1)  # (B, L, S)
        if not is_batched:
            out = out.squeeze(1)
            if need_weights:
                weights = weights.squeeze(0)
        elif self.batch_first:
            out = out.transpose(1, 0)  # (B, L, E)
        return out, (weights if need_weights else None)


def causal_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    dropout_p: float = 0.0,
    training: bool = False,
    fused: bool = False,
    need_weights: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """Causal scaled dot-product attention over heads, the kernel of the GPT.

    Parameters
    ----------
    q : Tensor
        ``(B, nh, T, hs)`` queries.
    k, v : Tensor
        ``(B, nh, S, hs)`` keys and values; query ``i`` sees keys ``0..i``.
    dropout_p : float
        Dropout on the attention weights, applied only when ``training``.
    training : bool
        Whether dropout is active.
    fused : bool
        Use ``F.scaled_dot_product_attention(is_causal=True)`` (flash / memory-efficient kernels)
        instead of the explicit product; same result to rounding, but it cannot return weights
        and draws its dropout mask differently.
    need_weights : bool
        Also return the ``(B, nh, T, S)`` attention weights (explicit path only).

    Returns
    -------
    out : Tensor
        ``(B, nh, T, hs)``.
    weights : Tensor or None
        ``(B, nh, T, S)`` after dropout, when ``need_weights``.
    """
    p = dropout_p if training else 0.0
    T, S = q.size(-2), k.size(-2)
    if fused:
        if need_weights:
            raise ValueError("the fused path cannot return attention weights")
        return F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True), None
    # scale q (T*hs numbers) rather than the scores (T*S); mask in place: the product's output is
    # not needed by its backward, so no (B, nh, T, S) copy is made
    att = (q * (1.0 / math.sqrt(k.size(-1)))) @ k.transpose(-2, -1)  # (B, nh, T, S)
    att.masked_fill_(causal_mask(T, S, device=q.device), float("-inf"))
    att = F.softmax(att, dim=-1)
    if p > 0.0:
        att = F.dropout(att, p=p)
    return att @ v, (att if need_weights else None)  # (B, nh, T, hs)
