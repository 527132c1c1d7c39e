"""Neural-network layers as pure functions with an explicit forward and backward pass.

Each ``*_forward`` returns ``(out, cache)`` and its ``*_backward(dout, cache)`` returns the
gradient of a scalar loss L with respect to every input, given ``dout = dL/dout``. The two
losses return ``(loss, dx)`` directly. Shapes: x is (N, D) for dense layers (affine flattens
any (N, d_1, ..., d_k)), (N, C, H, W) for convolution and pooling. ``1`` is a column of ones,
``*`` elementwise, sums run over the batch unless stated.

* affine: ``out = x W + b``;  ``dx = dout W'``, ``dW = x' dout``, ``db = 1' dout``.
* ReLU: ``out = max(0, x)``;  ``dx = dout * [x > 0]``. Leaky ReLU: slope ``alpha`` for x < 0.
* sigmoid: ``s = 1 / (1 + e^-x)``;  ``dx = dout * s (1 - s)``.
* softmax loss: ``p = softmax(x)``, ``L = -mean_i log p_{i, y_i}``;  ``dx = (p - Y) / N``.
* multiclass SVM (hinge) loss: ``m_ij = max(0, x_ij - x_{i y_i} + 1)`` for j != y_i,
  ``L = sum m / N``;  ``dx_ij = [m_ij > 0] / N``, ``dx_{i y_i} = -sum_j [m_ij > 0] / N``.
* batch norm (train): ``xh = (x - mu) / sqrt(var + eps)`` with the batch mean and (biased)
  variance per feature, ``out = gamma xh + beta``; ``dgamma = 1'(dout * xh)``,
  ``dbeta = 1' dout``, and with ``g = dout * gamma``:
  ``dx = (N g - 1'g - xh * 1'(g * xh)) / (N sqrt(var + eps))``. The running statistics move as
  ``r <- momentum r + (1 - momentum) batch_stat``; eval mode normalises with them, so there
  ``dx = g / sqrt(running_var + eps)``.
* layer norm: the same normalisation per sample, over the features (the sums in dx run over
  features instead of the batch); gamma and beta stay per feature; no running statistics.
* inverted dropout (train): ``mask = [u >= p] / (1 - p)`` with u ~ U[0, 1) and p the drop
  probability, ``out = x * mask``;  ``dx = dout * mask``. Eval: identity.
* convolution, F filters of (C, HH, WW), stride s, zero padding P: with xp the padded input,
  ``out[n, f, i, j] = sum_{c, a, b} xp[n, c, s i + a, s j + b] w[f, c, a, b] + b[f]``;
  ``dw[f] = sum_{n, i, j} dout[n, f, i, j] xp[n, :, window(i, j)]``, ``db[f] = sum dout[:, f]``,
  ``dxp[n, :, window(i, j)] += sum_f dout[n, f, i, j] w[f]``, then dx is dxp unpadded.
  ``im2col`` lays every window out as a column, so the forward is one matrix product
  ``W_rows @ cols`` and the backward ``dW = dout cols'``, ``dcols = W_rows' dout`` scattered back
  (``col2im``, adding where windows overlap).
* max-pool: ``out[n, c, i, j] = max`` of the window; the gradient goes to the (first) argmax of
  each window, added where windows overlap.

Reference: Stanford CS231n, "Convolutional Neural Networks for Visual Recognition",
assignments 1-2 (https://cs231n.github.io); Ioffe & Szegedy (2015), batch normalization;
Ba, Kiros & Hinton (2016), layer normalization; Srivastava et al. (2014), dropout.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Cache = Any  # what a backward pass needs from its forward


# --------------------------------------------------------------------------- dense layers


def affine_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, Cache]:
    """Affine layer ``x W + b``; x of shape (N, d_1, ..., d_k) is flattened to (N, D).

    Parameters
    ----------
    x : ndarray of shape (N, d_1, ..., d_k)
    w : ndarray of shape (D, M), D = d_1 * ... * d_k
    b : ndarray of shape (M,)

    Returns
    -------
    out : ndarray of shape (N, M)
    cache : tuple
    """
    out = x.reshape(len(x), -1) @ w + b  # (N, M)
    return out, (x, w)


def affine_backward(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients ``(dx, dw, db)`` of the affine layer, dx shaped like x."""
    x, w = cache
    dx = (dout @ w.T).reshape(x.shape)
    dw = x.reshape(len(x), -1).T @ dout  # (D, M)
    return dx, dw, dout.sum(axis=0)


def relu_forward(x: np.ndarray, alpha: float = 0.0) -> tuple[np.ndarray, Cache]:
    """(Leaky) ReLU ``max(x, alpha x)``, ``0 <= alpha < 1``; ``alpha = 0`` is the plain ReLU."""
    return np.where(x > 0, x, alpha * x), (x, alpha)


def relu_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """Gradient of the (leaky) ReLU: ``dout`` where x > 0, ``alpha dout`` elsewhere."""
    x, alpha = cache
    return np.where(x > 0, dout, alpha * dout)


def sigmoid_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """Logistic sigmoid, computed without overflow for large ``|x|``."""
    e = np.exp(-np.abs(x))
    s = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
    return s, s


def sigmoid_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """Gradient of the sigmoid, ``dout s (1 - s)``."""
    s = cache
    return dout * s * (1 - s)


# --------------------------------------------------------------------------- losses


def softmax_loss(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of the softmax of scores x (N, C) at integer labels y (N,).

    Returns
    -------
    loss : float
    dx : ndarray of shape (N, C)
    """
    z = x - x.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))  # (N, C)
    n = len(x)
    loss = -log_p[np.arange(n), y].mean()
    dx = np.exp(log_p)
    dx[np.arange(n), y] -= 1
    return float(loss), dx / n


def svm_loss(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean multiclass hinge loss (Weston-Watkins, margin 1) of scores x (N, C) at labels y."""
    n = len(x)
    margins = np.maximum(0, x - x[np.arange(n), y][:, None] + 1)  # (N, C)
    margins[np.arange(n), y] = 0
    active = (margins > 0).astype(x.dtype)
    active[np.arange(n), y] = -active.sum(axis=1)
    return float(margins.sum() / n), active / n


# --------------------------------------------------------------------------- normalisation


def _normalise(x, axis, eps):
    """(xh, inv_std) for x normalised to zero mean and unit variance along ``axis``."""
    mu = x.mean(axis=axis, keepdims=True)
    inv_std = 1 / np.sqrt(x.var(axis=axis, keepdims=True) + eps)
    return (x - mu) * inv_std, inv_std


def _normalise_backward(g, xh, inv_std, axis):
    """dx of ``xh = (x - mean) * inv_std`` along ``axis``, given g = dL/dxh."""
    n = g.shape[axis]
    return (
        inv_std
        / n
        * (n * g - g.sum(axis=axis, keepdims=True) - xh * (g * xh).sum(axis=axis, keepdims=True))
    )


def batchnorm_forward(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, bn_param: dict
) -> tuple[np.ndarray, Cache]:
    """Batch normalisation of x (N, D) per feature.

    Parameters
    ----------
    x : ndarray of shape (N, D)
    gamma, beta : ndarray of shape (D,)
        Scale and shift.
    bn_param : dict
        ``mode`` ("train" or "eval", required), ``eps`` (default 1e-5), ``momentum`` (default
        0.9), ``running_mean`` and ``running_var`` (D,) (zeros and ones when absent). Train
        mode updates the running statistics in place in this dict.

    Returns
    -------
    out : ndarray of shape (N, D)
    cache : tuple
    """
    mode, eps = bn_param["mode"], bn_param.get("eps", 1e-5)
    momentum = bn_param.get("momentum", 0.9)
    d = x.shape[1]
    running_mean = bn_param.get("running_mean", np.zeros(d, dtype=x.dtype))
    running_var = bn_param.get("running_var", np.ones(d, dtype=x.dtype))
    if mode == "train":
        xh, inv_std = _normalise(x, 0, eps)
        bn_param["running_mean"] = momentum * running_mean + (1 - momentum) * x.mean(axis=0)
        bn_param["running_var"] = momentum * running_var + (1 - momentum) * x.var(axis=0)
    elif mode == "eval":
        inv_std = 1 / np.sqrt(running_var + eps)
        xh = (x - running_mean) * inv_std
    else:
        raise ValueError(f"bn_param['mode'] must be 'train' or 'eval', got {mode!r}.")
    return gamma * xh + beta, (mode, xh, inv_std, gamma)


def batchnorm_backward(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, ...]:
    """Gradients ``(dx, dgamma, dbeta)`` of batch normalisation (train or eval mode)."""
    mode, xh, inv_std, gamma = cache
    g = dout * gamma
    dx = _normalise_backward(g, xh, inv_std, 0) if mode == "train" else g * inv_std
    return dx, (dout * xh).sum(axis=0), dout.sum(axis=0)


def layernorm_forward(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, ln_param: dict | None = None
) -> tuple[np.ndarray, Cache]:
    """Layer normalisation of x (N, D): each sample over its features; ``ln_param["eps"]``."""
    xh, inv_std = _normalise(x, 1, (ln_param or {}).get("eps", 1e-5))
    return gamma * xh + beta, (xh, inv_std, gamma)


def layernorm_backward(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, ...]:
    """Gradients ``(dx, dgamma, dbeta)`` of layer normalisation."""
    xh, inv_std, gamma = cache
    dx = _normalise_backward(dout * gamma, xh, inv_std, 1)
    return dx, (dout * xh).sum(axis=0), dout.sum(axis=0)


def dropout_forward(x: np.ndarray, dropout_param: dict) -> tuple[np.ndarray, Cache]:
    """Inverted dropout: zero each unit with probability p, scale the kept ones by 1 / (1 - p).

    Parameters
    ----------
    x : ndarray
    dropout_param : dict
        ``p``, the drop probability in [0, 1); ``mode``, "train" or "eval" (identity);
        ``seed``, an int (the same mask on every call: for gradient checks), a
        ``np.random.Generator`` (a fresh mask each call) or None.
    """
    p, mode = dropout_param["p"], dropout_param["mode"]
    if mode == "eval" or p == 0:
        return x, None
    rng = np.random.default_rng(dropout_param.get("seed"))
    mask = (rng.random(x.shape) >= p) / (1 - p)
    return x * mask, mask


def dropout_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """Gradient of inverted dropout: ``dout * mask`` (``dout`` in eval mode)."""
    return dout if cache is None else dout * cache


# --------------------------------------------------------------------------- convolution


def _out_size(size, field, stride, pad):
    span = size + 2 * pad - field
    if span < 0 or span % stride:
        raise ValueError(f"field {field}, stride {stride}, pad {pad} do not tile size {size}.")
    return span // stride + 1


def conv_forward_naive(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, conv_param: dict
) -> tuple[np.ndarray, Cache]:
    """Convolution (cross-correlation) by loops over the output positions.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    w : ndarray of shape (F, C, HH, WW)
    b : ndarray of shape (F,)
    conv_param : dict
        ``stride`` and ``pad`` (zero padding on each side), ints.

    Returns
    -------
    out : ndarray of shape (N, F, H', W'), ``H' = (H + 2 pad - HH) / stride + 1``
    cache : tuple
    """
    s, p = conv_param["stride"], conv_param["pad"]
    (n, _, h, width), (f, _, hh, ww) = x.shape, w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    ho, wo = _out_size(h, hh, s, p), _out_size(width, ww, s, p)
    out = np.empty((n, f, ho, wo), dtype=np.result_type(x, w))
    for i in range(ho):
        for j in range(wo):
            window = xp[:, :, s * i : s * i + hh, s * j : s * j + ww]  # (N, C, HH, WW)
            out[:, :, i, j] = np.tensordot(window, w, axes=([1, 2, 3], [1, 2, 3])) + b
    return out, (x, w, conv_param)


def conv_backward_naive(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, ...]:
    """Gradients ``(dx, dw, db)`` of :func:`conv_forward_naive`, by the same loops."""
    x, w, conv_param = cache
    s, p = conv_param["stride"], conv_param["pad"]
    hh, ww = w.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            rows, cols = slice(s * i, s * i + hh), slice(s * j, s * j + ww)
            d = dout[:, :, i, j]  # (N, F)
            dw += np.tensordot(d, xp[:, :, rows, cols], axes=([0], [0]))  # (F, C, HH, WW)
            dxp[:, :, rows, cols] += np.tensordot(d, w, axes=([1], [0]))  # (N, C, HH, WW)
    dx = dxp[:, :, p : p + x.shape[2], p : p + x.shape[3]]
    return dx, dw, dout.sum(axis=(0, 2, 3))


def _im2col_indices(c, hh, ww, ho, wo, s):
    """Index arrays (k, i, j), each broadcasting to (C HH WW, H' W'): xp[:, k, i, j] = cols."""
    k = np.repeat(np.arange(c), hh * ww)[:, None]
    i = np.tile(np.repeat(np.arange(hh), ww), c)[:, None] + s * np.repeat(np.arange(ho), wo)
    j = np.tile(np.arange(ww), hh * c)[:, None] + s * np.tile(np.arange(wo), ho)
    return k, i, j


def conv_forward_im2col(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, conv_param: dict
) -> tuple[np.ndarray, Cache]:
    """Convolution as one matrix product over im2col columns; same contract as the naive one."""
    s, p = conv_param["stride"], conv_param["pad"]
    (n, c, h, width), (f, _, hh, ww) = x.shape, w.shape
    ho, wo = _out_size(h, hh, s, p), _out_size(width, ww, s, p)
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    index = _im2col_indices(c, hh, ww, ho, wo, s)
    cols = xp[:, index[0], index[1], index[2]]  # (N, C HH WW, H' W')
    out = w.reshape(f, -1) @ cols + b[:, None]  # (N, F, H' W')
    return out.reshape(n, f, ho, wo), (x.shape, w, conv_param, cols, index)


def conv_backward_im2col(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, ...]:
    """Gradients ``(dx, dw, db)`` of :func:`conv_forward_im2col` (col2im by ``np.add.at``)."""
    (n, c, h, width), w, conv_param, cols, (k, i, j) = cache
    p, f = conv_param["pad"], w.shape[0]
    d = dout.reshape(n, f, -1)  # (N, F, H' W')
    dw = np.einsum("nfl,nkl->fk", d, cols).reshape(w.shape)
    dcols = w.reshape(f, -1).T @ d  # (N, C HH WW, H' W')
    dxp = np.zeros((n, c, h + 2 * p, width + 2 * p), dtype=dcols.dtype)
    np.add.at(dxp, (slice(None), k, i, j), dcols)  # overlapping windows add up
    return dxp[:, :, p : p + h, p : p + width], dw, dout.sum(axis=(0, 2, 3))


def max_pool_forward_naive(x: np.ndarray, pool_param: dict) -> tuple[np.ndarray, Cache]:
    """Max-pooling of x (N, C, H, W) by loops over the output positions.

    ``pool_param``: ``pool_height``, ``pool_width`` and ``stride``; no padding.
    """
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    n, c, h, width = x.shape
    ho, wo = _out_size(h, ph, s, 0), _out_size(width, pw, s, 0)
    out = np.empty((n, c, ho, wo), dtype=x.dtype)
    for i in range(ho):
        for j in range(wo):
            out[:, :, i, j] = x[:, :, s * i : s * i + ph, s * j : s * j + pw].max(axis=(2, 3))
    return out, (x, pool_param)


def max_pool_backward_naive(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """Gradient of max-pooling: each window's dout goes to its first argmax."""
    x, pool_param = cache
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    n, c = x.shape[:2]
    dx = np.zeros_like(x)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            rows, cols = slice(s * i, s * i + ph), slice(s * j, s * j + pw)
            flat = x[:, :, rows, cols].reshape(n, c, -1)  # (N, C, ph pw)
            grad = np.zeros_like(flat)
            np.put_along_axis(
                grad, flat.argmax(axis=2)[..., None], dout[:, :, i, j][..., None], axis=2
            )
            dx[:, :, rows, cols] += grad.reshape(n, c, ph, pw)
    return dx
