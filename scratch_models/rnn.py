"""Sequence layers as pure functions: embedding, vanilla RNN, LSTM, temporal affine and loss.

Shapes: N sequences of T steps, input size D, hidden size H, vocabulary (or classes) V. Each
``*_forward`` returns ``(out, cache)`` (the LSTM sequence also its last cell state) and its
``*_backward(dout, cache)`` returns the gradients of a scalar loss given ``dout = dL/dout``.
Weights multiply on the right (``x Wx``): torch's ``weight_ih`` is ``Wx'``, ``weight_hh`` is
``Wh'``, and the single bias ``b`` is torch's ``b_ih + b_hh``.

* word embedding: ``out[n, t] = W[x[n, t]]``;  ``dW[v] = sum of dout[n, t] over x[n, t] = v``.
* vanilla RNN step: ``h = tanh(x Wx + h_prev Wh + b)``;  with ``da = dh * (1 - h^2)``:
  ``dx = da Wx'``, ``dh_prev = da Wh'``, ``dWx = x' da``, ``dWh = h_prev' da``, ``db = 1' da``.
* LSTM step, gates in torch's order i, f, g, o: ``a = x Wx + h_prev Wh + b`` (N, 4H) split in
  four, ``i = s(a_i)``, ``f = s(a_f)``, ``g = tanh(a_g)``, ``o = s(a_o)``,
  ``c = f * c_prev + i * g``, ``h = o * tanh(c)``. Backward, with ``dc`` the total gradient of
  c (from the next step and through h): ``dc += dh * o * (1 - tanh(c)^2)``,
  ``da_i = dc g i (1 - i)``, ``da_f = dc c_prev f (1 - f)``, ``da_g = dc i (1 - g^2)``,
  ``da_o = dh tanh(c) o (1 - o)``, ``dc_prev = dc * f``; then as the RNN from ``da``.
* sequences run the step over t = 1..T; backpropagation through time runs it backwards,
  adding the gradient from step t + 1 to the one from above at each step. The input
  projection ``x Wx`` of all steps is one matrix product, and so are ``dx`` and ``dWx``.
* temporal affine: ``out[n, t] = x[n, t] W + b``, the affine layer on N T rows.
* temporal softmax loss with a mask m (1 = counted): ``sum_{n,t} -m log softmax(x[n, t])[y]``
  divided by the number of counted tokens (``normalize="tokens"``, torch's ``cross_entropy``
  with ``ignore_index``: nats per token) or by N (``normalize="batch"``, CS231n's);
  ``dx = m (p - onehot(y)) / Z`` with Z that divisor.

Reference: Stanford CS231n assignment 3, "RNN captioning" and "LSTM captioning"
(https://cs231n.github.io); Hochreiter & Schmidhuber (1997); the gate layout of ``torch.nn.LSTM``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Cache = Any  # what a backward pass needs from its forward


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * np.tanh(0.5 * x) + 0.5  # = 1 / (1 + e^-x), without overflow, one pass


# --------------------------------------------------------------------------- embedding


def word_embedding_forward(x: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, Cache]:
    """Look up the rows of W (V, D) at the integer ids x (N, T); out is (N, T, D)."""
    return W[x], (x, W.shape)


def word_embedding_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """Gradient dW (V, D): each row sums the dout of the positions that looked it up."""
    x, shape = cache
    dW = np.zeros(shape, dtype=dout.dtype)
    np.add.at(dW, x, dout)  # a repeated id adds up
    return dW


# --------------------------------------------------------------------------- vanilla RNN


def _rnn_cell(ax, prev_h, Wh):
    """One tanh step given the input part ``ax = x Wx + b`` (N, H)."""
    next_h = np.tanh(ax + prev_h @ Wh)  # (N, H)
    return next_h, (prev_h, next_h)


def _rnn_cell_backward(dnext_h, cache, Wh):
    """(da, dprev_h, dWh) of one tanh step; da is the gradient of the pre-activation."""
    prev_h, next_h = cache
    da = dnext_h * (1 - next_h**2)  # (N, H)
    return da, da @ Wh.T, prev_h.T @ da


def rnn_step_forward(x, prev_h, Wx, Wh, b) -> tuple[np.ndarray, Cache]:
    """One tanh RNN step.

    Parameters
    ----------
    x : ndarray of shape (N, D)
    prev_h : ndarray of shape (N, H)
    Wx : ndarray of shape (D, H)
    Wh : ndarray of shape (H, H)
    b : ndarray of shape (H,)

    Returns
    -------
    next_h : ndarray of shape (N, H)
    cache : tuple
    """
    next_h, cell = _rnn_cell(x @ Wx + b, prev_h, Wh)
    return next_h, (x, Wx, Wh, cell)


def rnn_step_backward(dnext_h, cache) -> tuple[np.ndarray, ...]:
    """Gradients ``(dx, dprev_h, dWx, dWh, db)`` of one RNN step."""
    x, Wx, Wh, cell = cache
    da, dprev_h, dWh = _rnn_cell_backward(dnext_h, cell, Wh)
    return da @ Wx.T, dprev_h, x.T @ da, dWh, da.sum(axis=0)


def rnn_forward(x, h0, Wx, Wh, b) -> tuple[np.ndarray, Cache]:
    """A tanh RNN over a sequence x (N, T, D) from h0 (N, H); returns every h (N, T, H).

    The final hidden state is ``h[:, -1]``.
    """
    n, t, d = x.shape
    ax = (x.reshape(n * t, d) @ Wx + b).reshape(n, t, -1)  # (N, T, H): all steps at once
    h = np.empty_like(ax)
    cells, prev_h = [], h0
    for step in range(t):
        prev_h, cell = _rnn_cell(ax[:, step], prev_h, Wh)
        h[:, step] = prev_h
        cells.append(cell)
    return h, (x, Wx, Wh, cells)


def rnn_backward(dh, cache) -> tuple[np.ndarray, ...]:
    """Backpropagation through time: ``(dx, dh0, dWx, dWh, db)`` given dh (N, T, H)."""
    x, Wx, Wh, cells = cache
    n, t, d = x.shape
    da = np.empty_like(dh)  # (N, T, H)
    dWh = np.zeros_like(Wh)
    dprev_h = np.zeros_like(dh[:, 0])  # nothing flows back from after the last step
    for step in reversed(range(t)):
        da[:, step], dprev_h, dWh_t = _rnn_cell_backward(dh[:, step] + dprev_h, cells[step], Wh)
        dWh += dWh_t
    da2 = da.reshape(n * t, -1)  # (N T, H)
    dx = (da2 @ Wx.T).reshape(x.shape)
    return dx, dprev_h, x.reshape(n * t, d).T @ da2, dWh, da2.sum(axis=0)


# --------------------------------------------------------------------------- LSTM


def _lstm_cell(ax, prev_h, prev_c, Wh):
    """One LSTM step given ``ax = x Wx + b`` (N, 4H); gates i, f, g, o as torch."""
    a = ax + prev_h @ Wh  # (N, 4H)
    i, f, g, o = np.split(a, 4, axis=1)  # (N, H) each
    i, f, g, o = _sigmoid(i), _sigmoid(f), np.tanh(g), _sigmoid(o)
    next_c = f * prev_c + i * g
    tanh_c = np.tanh(next_c)
    next_h = o * tanh_c
    return next_h, next_c, (prev_h, prev_c, i, f, g, o, tanh_c)


def _lstm_cell_backward(dnext_h, dnext_c, cache, Wh):
    """(da, dprev_h, dprev_c, dWh) of one LSTM step; da (N, 4H) is the pre-activation's."""
    prev_h, prev_c, i, f, g, o, tanh_c = cache
    dc = dnext_c + dnext_h * o * (1 - tanh_c**2)  # both paths into c
    da = np.concatenate(
        [
            dc * g * i * (1 - i),
            dc * prev_c * f * (1 - f),
            dc * i * (1 - g**2),
            dnext_h * tanh_c * o * (1 - o),
        ],
        axis=1,
    )  # (N, 4H)
    return da, da @ Wh.T, dc * f, prev_h.T @ da


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b) -> tuple[np.ndarray, np.ndarray, Cache]:
    """One LSTM step.

    Parameters
    ----------
    x : ndarray of shape (N, D)
    prev_h, prev_c : ndarray of shape (N, H)
    Wx : ndarray of shape (D, 4H)
        Columns in blocks of H: input, forget, cell (g) and output gates.
    Wh : ndarray of shape (H, 4H)
    b : ndarray of shape (4H,)

    Returns
    -------
    next_h, next_c : ndarray of shape (N, H)
    cache : tuple
    """
    next_h, next_c, cell = _lstm_cell(x @ Wx + b, prev_h, prev_c, Wh)
    return next_h, next_c, (x, Wx, Wh, cell)


def lstm_step_backward(dnext_h, dnext_c, cache) -> tuple[np.ndarray, ...]:
    """Gradients ``(dx, dprev_h, dprev_c, dWx, dWh, db)`` of one LSTM step."""
    x, Wx, Wh, cell = cache
    da, dprev_h, dprev_c, dWh = _lstm_cell_backward(dnext_h, dnext_c, cell, Wh)
    return da @ Wx.T, dprev_h, dprev_c, x.T @ da, dWh, da.sum(axis=0)


def lstm_forward(x, h0, Wx, Wh, b, c0=None) -> tuple[np.ndarray, np.ndarray, Cache]:
    """An LSTM over a sequence x (N, T, D) from h0 and c0 (N, H) (c0 = 0 when None).

    Returns
    -------
    h : ndarray of shape (N, T, H)
        Every hidden state; the final one is ``h[:, -1]``.
    c : ndarray of shape (N, H)
        The final cell state (to carry into the next window).
    cache : tuple
    """
    n, t, d = x.shape
    ax = (x.reshape(n * t, d) @ Wx + b).reshape(n, t, -1)  # (N, T, 4H): all steps at once
    h = np.empty((n, t, Wh.shape[0]), dtype=ax.dtype)
    prev_h, prev_c = h0, np.zeros_like(h0) if c0 is None else c0
    cells = []
    for step in range(t):
        prev_h, prev_c, cell = _lstm_cell(ax[:, step], prev_h, prev_c, Wh)
        h[:, step] = prev_h
        cells.append(cell)
    return h, prev_c, (x, Wx, Wh, cells)


def lstm_backward(dh, cache, dc=None) -> tuple[np.ndarray, ...]:
    """Backpropagation through time of :func:`lstm_forward`.

    Parameters
    ----------
    dh : ndarray of shape (N, T, H)
        Gradient of every hidden state.
    cache : tuple
    dc : ndarray of shape (N, H), optional
        Gradient of the final cell state (0 when None).

    Returns
    -------
    dx, dh0, dc0, dWx, dWh, db
    """
    x, Wx, Wh, cells = cache
    n, t, d = x.shape
    da = np.empty((n, t, Wh.shape[1]), dtype=dh.dtype)  # (N, T, 4H)
    dWh = np.zeros_like(Wh)
    dprev_h = np.zeros_like(dh[:, 0])
    dprev_c = np.zeros_like(dprev_h) if dc is None else dc
    for step in reversed(range(t)):
        da[:, step], dprev_h, dprev_c, dWh_t = _lstm_cell_backward(
            dh[:, step] + dprev_h, dprev_c, cells[step], Wh
        )
        dWh += dWh_t
    da2 = da.reshape(n * t, -1)  # (N T, 4H)
    dx = (da2 @ Wx.T).reshape(x.shape)
    return dx, dprev_h, dprev_c, x.reshape(n * t, d).T @ da2, dWh, da2.sum(axis=0)


# --------------------------------------------------------------------------- output and loss


def temporal_affine_forward(x, w, b) -> tuple[np.ndarray, Cache]:
    """``out[n, t] = x[n, t] w + b`` for x (N, T, D), w (D, M), b (M,); out is (N, T, M)."""
    return x @ w + b, (x, w)


def temporal_affine_backward(dout, cache) -> tuple[np.ndarray, ...]:
    """Gradients ``(dx, dw, db)`` of the temporal affine layer."""
    x, w = cache
    n, t, d = x.shape
    dw = x.reshape(n * t, d).T @ dout.reshape(n * t, -1)  # (D, M)
    return dout @ w.T, dw, dout.sum(axis=(0, 1))


def temporal_softmax_loss(x, y, mask=None, normalize: str = "tokens") -> tuple[float, np.ndarray]:
    """Masked cross-entropy of scores x (N, T, V) at integer targets y (N, T).

    Parameters
    ----------
    x : ndarray of shape (N, T, V)
    y : ndarray of int of shape (N, T)
    mask : ndarray of bool of shape (N, T), optional
        True where the token counts (all of them when None).
    normalize : {"tokens", "batch"}, default="tokens"
        Divide the summed loss by the number of counted tokens (the mean per token, as
        ``torch.nn.functional.cross_entropy`` with ``ignore_index``) or by N (CS231n).

    Returns
    -------
    loss : float
    dx : ndarray of shape (N, T, V)
    """
    n, t, v = x.shape
    m = np.ones((n, t), dtype=bool) if mask is None else mask.astype(bool)
    if normalize == "tokens":
        if not m.any():
            raise ValueError("the mask counts no token: the mean per token is undefined.")
        z = m.sum()
    elif normalize == "batch":
        z = n
    else:
        raise ValueError(f"normalize must be 'tokens' or 'batch', got {normalize!r}.")
    m2 = m.reshape(n * t)
    x2, y2 = x.reshape(n * t, v), np.where(m2, y.reshape(n * t), 0)  # any id where masked out
    shifted = x2 - x2.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))  # (N T, V)
    rows = np.arange(n * t)
    loss = -(log_p[rows, y2] * m2).sum() / z
    dx = np.exp(log_p)
    dx[rows, y2] -= 1
    dx *= m2[:, None] / z
    return float(loss), dx.reshape(n, t, v)
