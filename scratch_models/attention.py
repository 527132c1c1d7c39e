"""Multi-head attention as a pure function with a hand-written backward pass.

Shapes: batch B, query length L, key length S, embedding E, h heads of d = E / h dimensions.
The parameters are laid out as torch's ``nn.MultiheadAttention``: ``in_proj_weight`` (3E, E)
stacks ``W_q, W_k, W_v`` (each (E, E), applied as ``x W'``), ``in_proj_bias`` (3E,) stacks
``b_q, b_k, b_v``, and ``out_proj`` has a weight ``W_o`` (E, E) and a bias ``b_o`` (E,).

Forward, per head (``Q_h`` are the h-th block of d columns of Q, ``M`` the mask)::

    Q = x_q W_q' + b_q,   K = x_k W_k' + b_k,   V = x_v W_v' + b_v          # (B, L|S, E)
    A_h = Q_h K_h' / sqrt(d) + M,   P_h = softmax_rows(A_h)                # (B, L, S)
    C = concat_h(P_h V_h),   out = C W_o' + b_o                            # (B, L, E)

``M`` is -inf where a key is masked (a boolean ``attn_mask`` (L, S), True = masked; a padded
key of ``key_padding_mask`` (B, S); the future keys ``j > i`` when ``causal``) and a float
``attn_mask`` is added as it is. Backward (``G`` = dL/dout, sums over the batch for the
parameters)::

    dW_o = sum G' C,   db_o = sum G,   dC = G W_o
    dP_h = dC_h V_h',   dV_h = P_h' dC_h
    dA_h = P_h * (dP_h - rowsum(dP_h * P_h))          # softmax Jacobian; 0 where masked
    dQ_h = dA_h K_h / sqrt(d),   dK_h = dA_h' Q_h / sqrt(d)
    dW_q = sum dQ' x_q,   db_q = sum dQ,   dx_q = dQ W_q   (the same for k and v)

When query, key and value are one tensor (self-attention) its gradient is the sum of the three.
No dropout on the weights: this is the deterministic layer the gradients are checked on.

Reference: Vaswani et al. (2017), "Attention is all you need", section 3.2; the parameter
layout of ``torch.nn.MultiheadAttention``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Cache = Any  # what the backward pass needs from the forward


def _split_heads(x: np.ndarray, num_heads: int) -> np.ndarray:
    """(B, T, E) -> (B, h, T, d)."""
    b, t, e = x.shape
    return x.reshape(b, t, num_heads, e // num_heads).transpose(0, 2, 1, 3)


def _merge_heads(x: np.ndarray) -> np.ndarray:
    """(B, h, T, d) -> (B, T, E)."""
    b, h, t, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, t, h * d)


def attention_mask(
    batch: int,
    length: int,
    source: int,
    attn_mask: np.ndarray | None = None,
    key_padding_mask: np.ndarray | None = None,
    causal: bool = False,
    dtype: Any = np.float64,
) -> np.ndarray:
    """The additive mask ``M`` (B, 1, L, S): 0 where attended, -inf where masked.

    Parameters
    ----------
    batch, length, source : int
        B, L and S.
    attn_mask : ndarray of shape (L, S), optional
        Boolean (True = masked) or float (added to the scores).
    key_padding_mask : ndarray of bool of shape (B, S), optional
        True for the padded keys of each sequence.
    causal : bool, default=False
        Mask key j for query i when ``j > i``.
    dtype : numpy dtype, default=np.float64
    """
    m = np.zeros((batch, 1, length, source), dtype=dtype)  # broadcasts over the heads
    if attn_mask is not None:
        if attn_mask.shape != (length, source):
            raise ValueError(f"attn_mask must be ({length}, {source}), got {attn_mask.shape}.")
        m = np.where(attn_mask, -np.inf, m) if attn_mask.dtype == bool else m + attn_mask
    if key_padding_mask is not None:
        if key_padding_mask.shape != (batch, source):
            raise ValueError(
                f"key_padding_mask must be ({batch}, {source}), got {key_padding_mask.shape}."
            )
        m = np.where(key_padding_mask.astype(bool)[:, None, None, :], -np.inf, m)
    if causal:
        m = np.where(np.triu(np.ones((length, source), dtype=bool), k=1), -np.inf, m)
    if np.any(np.all(np.isneginf(m), axis=-1)):
        raise ValueError("a query has every key masked: its softmax is undefined.")
    return m


def multihead_attention_forward(
    query: np.ndarray,
    key: np.ndarray,
    value: np.ndarray,
    in_proj_weight: np.ndarray,
    in_proj_bias: np.ndarray,
    out_proj_weight: np.ndarray,
    out_proj_bias: np.ndarray,
    num_heads: int,
    attn_mask: np.ndarray | None = None,
    key_padding_mask: np.ndarray | None = None,
    causal: bool = False,
) -> tuple[np.ndarray, np.ndarray, Cache]:
    """Multi-head attention, batch first, with torch's parameter layout.

    Parameters
    ----------
    query : ndarray of shape (B, L, E)
    key, value : ndarray of shape (B, S, E)
    in_proj_weight : ndarray of shape (3E, E)
    in_proj_bias : ndarray of shape (3E,)
    out_proj_weight : ndarray of shape (E, E)
    out_proj_bias : ndarray of shape (E,)
    num_heads : int
        Must divide E.
    attn_mask, key_padding_mask, causal
        See :func:`attention_mask`; they combine (a key masked by any one is masked).

    Returns
    -------
    out : ndarray of shape (B, L, E)
    weights : ndarray of shape (B, num_heads, L, S)
        The attention probabilities of each head (rows sum to 1, 0 on masked keys).
    cache : tuple
    """
    (b, length, e), s = query.shape, key.shape[1]
    if e % num_heads:
        raise ValueError(f"num_heads={num_heads} does not divide embed_dim={e}.")
    d = e // num_heads
    w_q, w_k, w_v = np.split(in_proj_weight, 3)  # (E, E) each
    b_q, b_k, b_v = np.split(in_proj_bias, 3)  # (E,) each
    q = _split_heads(query @ w_q.T + b_q, num_heads)  # (B, h, L, d)
    k = _split_heads(key @ w_k.T + b_k, num_heads)  # (B, h, S, d)
    v = _split_heads(value @ w_v.T + b_v, num_heads)  # (B, h, S, d)
    mask = attention_mask(b, length, s, attn_mask, key_padding_mask, causal, query.dtype)
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d) + mask  # (B, h, L, S)
    scores = scores - scores.max(axis=-1, keepdims=True)  # stable: exp(-inf) is an exact 0
    p = np.exp(scores)
    p /= p.sum(axis=-1, keepdims=True)  # (B, h, L, S)
    ctx = _merge_heads(p @ v)  # (B, L, E)
    out = ctx @ out_proj_weight.T + out_proj_bias  # (B, L, E)
    cache = (query, key, value, in_proj_weight, out_proj_weight, q, k, v, p, ctx)
    return out, p, cache


def multihead_attention_backward(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, ...]:
    """Gradients of :func:`multihead_attention_forward` given ``dout`` (B, L, E).

    Returns
    -------
    dquery : ndarray of shape (B, L, E)
    dkey, dvalue : ndarray of shape (B, S, E)
    din_proj_weight : ndarray of shape (3E, E)
    din_proj_bias : ndarray of shape (3E,)
    dout_proj_weight : ndarray of shape (E, E)
    dout_proj_bias : ndarray of shape (E,)
    """
    query, key, value, in_proj_weight, out_proj_weight, q, k, v, p, ctx = cache
    num_heads, d = q.shape[1], q.shape[3]
    dw_o = np.einsum("ble,blf->ef", dout, ctx)  # (E, E)
    db_o = dout.sum(axis=(0, 1))  # (E,)
    dctx = _split_heads(dout @ out_proj_weight, num_heads)  # (B, h, L, d)
    dp = dctx @ v.transpose(0, 1, 3, 2)  # (B, h, L, S)
    dv = p.transpose(0, 1, 3, 2) @ dctx  # (B, h, S, d)
    dscores = p * (dp - (dp * p).sum(axis=-1, keepdims=True))  # (B, h, L, S)
    dq = dscores @ k / np.sqrt(d)  # (B, h, L, d)
    dk = dscores.transpose(0, 1, 3, 2) @ q / np.sqrt(d)  # (B, h, S, d)
    dq, dk, dv = _merge_heads(dq), _merge_heads(dk), _merge_heads(dv)  # (B, L|S, E)
    w_q, w_k, w_v = np.split(in_proj_weight, 3)
    dw_in = np.concatenate(
        [np.einsum("bte,btf->ef", g, x) for g, x in ((dq, query), (dk, key), (dv, value))]
    )  # (3E, E)
    db_in = np.concatenate([g.sum(axis=(0, 1)) for g in (dq, dk, dv)])  # (3E,)
    return dq @ w_q, dk @ w_k, dv @ w_v, dw_in, db_in, dw_o, db_o
