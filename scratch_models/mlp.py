"""Multilayer perceptron classifier with hand-written forward and backward passes.

Forward pass over a batch of B rows (``h_0 = X``; hidden layers l = 1..L; K classes)::

    a_l  = h_{l-1} W_l                          affine (+ b_l when batch_norm is off)
    y_l  = gamma_l * xhat_l + beta_l,           xhat_l = (a_l - mu_l) / sqrt(var_l + eps)
    h_l  = relu(y_l) * m_l / (1 - p)            inverted dropout, m_l ~ Bernoulli(1 - p)
    z    = h_L W_out + b_out                    logits, (B, K)
    loss = -1/B sum_i log softmax(z_i)[y_i]  +  alpha/2 sum ||W||_F^2   (weights only)

In training ``mu_l`` and ``var_l`` are the batch mean and (biased) variance; running averages
(momentum 0.1, unbiased variance, as PyTorch's ``BatchNorm1d``) replace them at predict time,
when dropout is off too. Backward pass, with ``g_l = [y_l > 0] m_l / (1 - p)`` the gate that
relu and dropout multiplied by::

    dz       = (softmax(z) - Y) / B             Y one-hot, (B, K)
    dW_out   = h_L' dz + alpha W_out,           db_out = sum_i dz,    dh_L = dz W_out'
    dy_l     = dh_l * g_l
    dgamma_l = sum_i dy_l * xhat_l,             dbeta_l = sum_i dy_l
    da_l     = gamma_l / (B sqrt(var_l + eps)) * (B dy_l - dbeta_l - xhat_l * dgamma_l)
    dW_l     = h_{l-1}' da_l + alpha W_l,       dh_{l-1} = da_l W_l'

Without batch norm ``da_l = dy_l`` and ``db_l = sum_i dy_l``. Weights start He-normal,
``N(0, 2 / fan_in)``; biases and ``beta`` at 0, ``gamma`` at 1.

Adam (in PyTorch's arithmetic, so the two agree to rounding), at step t = 1, 2, ...::

    m <- b1 m + (1 - b1) g,    v <- b2 v + (1 - b2) g^2
    theta <- theta - lr_t / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

The learning rate anneals by a cosine over all ``T = max_iter * ceil(n / batch_size)`` steps,
``lr_t = lr_0 (1 + cos(pi (t - 1) / T)) / 2``, from ``learning_rate_init`` towards 0.
With ``early_stopping`` a stratified ``validation_fraction`` of the rows is held out; after
every epoch its log-loss is measured in predict mode, training stops after
``n_iter_no_change`` epochs without an improvement of ``tol``, and the weights (and running
statistics) of the best epoch are restored.

References: Ioffe & Szegedy, "Batch normalization", ICML 2015; Srivastava et al., "Dropout",
JMLR 15, 2014; Kingma & Ba, "Adam", ICLR 2015; Loshchilov & Hutter, "SGDR", ICLR 2017.
"""

from __future__ import annotations

import itertools
import math
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

EPS_BN = 1e-5
MOMENTUM_BN = 0.1


def init_params(sizes, batch_norm, rng, dtype=np.float32):
    """He-normal weights for layer sizes ``(n_features, *hidden, n_classes)``; a dict of arrays."""
    params = {}
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        W = rng.standard_normal((fan_in, fan_out)) * math.sqrt(2.0 / fan_in)
        params[f"W{i}"] = W.astype(dtype)  # (fan_in, fan_out)
        if batch_norm and i < len(sizes) - 2:  # batch norm's beta makes a bias redundant
            params[f"gamma{i}"] = np.ones(fan_out, dtype)
            params[f"beta{i}"] = np.zeros(fan_out, dtype)
        else:
            params[f"b{i}"] = np.zeros(fan_out, dtype)
    return params


def forward(params, X, *, dropout=0.0, rng=None, stats=None, train=True):
    """Logits (B, K) and the cache backward needs.

    ``stats``: per hidden layer ``[running_mean, running_var]`` (batch norm only), updated in
    place in training and read in predict mode (``train=False``, which also turns dropout off).
    Temporaries are updated in place: the arithmetic is memory-bound at these sizes.
    """
    n_hidden = sum(k.startswith("W") for k in params) - 1
    h, cache = X, []
    for i in range(n_hidden):
        y = h @ params[f"W{i}"]  # (B, n_out): a_i, then y_i in place
        xhat = inv_std = None
        if f"gamma{i}" in params:
            if train:
                mu = y.mean(axis=0)
                y -= mu
                var = np.einsum("ij,ij->j", y, y) / len(y)  # biased, (n_out,)
                if stats is not None:  # running variance is unbiased, as in PyTorch
                    unbiased = var * (len(y) / max(len(y) - 1, 1))
                    stats[i][0] += MOMENTUM_BN * (mu - stats[i][0])
                    stats[i][1] += MOMENTUM_BN * (unbiased - stats[i][1])
            else:
                mu, var = stats[i]
                y -= mu
            inv_std = (1.0 / np.sqrt(var + EPS_BN)).astype(y.dtype)
            y *= inv_std
            xhat = y.copy() if train else None
            y *= params[f"gamma{i}"]
            y += params[f"beta{i}"]
        else:
            y += params[f"b{i}"]
        if not train:
            h = np.maximum(y, 0, out=y)
            continue
        gate = (y > 0).astype(y.dtype)  # relu, then dropout: h = y * gate
        if dropout > 0:
            gate *= rng.random(y.shape, dtype=y.dtype) >= dropout
            gate *= np.asarray(1.0 / (1.0 - dropout), y.dtype)
        cache.append((h, xhat, inv_std, gate))
        h = y
        h *= gate
    cache.append(h)
    return h @ params[f"W{n_hidden}"] + params[f"b{n_hidden}"], cache


def log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def backward(params, logits, cache, y, alpha=0.0):
    """Mean cross-entropy + L2 of the batch with integer labels ``y``, and its gradients."""
    B, n_hidden = len(y), len(cache) - 1
    log_p = log_softmax(logits)  # (B, K)
    rows = np.arange(B)
    weights = [params[f"W{i}"] for i in range(n_hidden + 1)]
    loss = -log_p[rows, y].mean() + 0.5 * alpha * sum(float(np.sum(W * W)) for W in weights)
    dz = np.exp(log_p)
    dz[rows, y] -= 1.0
    dz /= B  # (B, K)
    h = cache[-1]
    grads = {f"W{n_hidden}": h.T @ dz, f"b{n_hidden}": dz.sum(axis=0)}
    dh = dz @ weights[-1].T  # (B, n_hidden_last)
    for i in range(n_hidden - 1, -1, -1):
        h, xhat, inv_std, gate = cache[i]
        dy = dh
        dy *= gate
        if xhat is not None:
            dbeta = dy.sum(axis=0)
            dgamma = np.einsum("ij,ij->j", dy, xhat)
            # da = gamma inv_std / B (B dy - dbeta - xhat dgamma), with xhat as scratch
            xhat *= dgamma / B
            xhat += dbeta / B
            dy -= xhat
            dy *= params[f"gamma{i}"] * inv_std
            grads[f"gamma{i}"], grads[f"beta{i}"] = dgamma, dbeta
        else:
            grads[f"b{i}"] = dy.sum(axis=0)
        grads[f"W{i}"] = h.T @ dy  # (n_in, n_out)
        if i > 0:  # the input needs no gradient
            dh = dy @ weights[i].T
    if alpha:
        for i, W in enumerate(weights):
            grads[f"W{i}"] += alpha * W
    return loss, grads


def adam_step(params, grads, state, lr, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
    """One Adam update of ``params`` in place; ``state`` holds ``t`` and the moments.

    The moments are kept unnormalised, ``M = m / (1 - b1)`` and ``V = v / (1 - b2)``, and
    the constants folded into two scalars, so each parameter takes ten passes over memory::

        M <- b1 M + g,   V <- b2 V + g^2,   k = sqrt(1 - b2) / sqrt(1 - b2^t)
        theta <- theta - lr (1 - b1) / ((1 - b1^t) k) * M / (sqrt(V) + eps / k)
    """
    state["t"] = t = state.get("t", 0) + 1
    k = math.sqrt(1 - beta_2) / math.sqrt(1 - beta_2**t)
    scale = lr * (1 - beta_1) / ((1 - beta_1**t) * k)
    for name, g in grads.items():
        if name not in state:
            state[name] = (np.zeros_like(g), np.zeros_like(g), np.empty_like(g))
        M, V, tmp = state[name]
        M *= beta_1
        M += g
        V *= beta_2
        np.multiply(g, g, out=tmp)
        V += tmp
        np.sqrt(V, out=tmp)
        tmp += epsilon / k
        np.divide(M, tmp, out=tmp)
        tmp *= scale
        params[name] -= tmp


def cosine_lr(lr0, step, total):
    """The learning rate of step ``step`` (from 1) of ``total``."""
    return lr0 * 0.5 * (1.0 + math.cos(math.pi * (step - 1) / max(total, 1)))


def validation_rows(y, fraction, rng):
    """A stratified boolean mask of about ``fraction`` of the rows (at least one per class)."""
    mask = np.zeros(len(y), dtype=bool)
    for k in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == k))
        take = min(max(1, round(fraction * len(rows))), len(rows) - 1)
        mask[rows[:take]] = True
    return mask


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """Feed-forward network: affine, batch norm, ReLU, dropout; softmax output; Adam.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(512, 256)
    alpha : float, default=1e-4
        L2 penalty ``alpha / 2 ||W||^2`` on the weight matrices (not biases or batch norm).
    batch_size : int, default=128
    learning_rate_init : float, default=1e-3
        Adam's step size at the first step; annealed by a cosine to 0 over ``max_iter`` epochs.
    max_iter : int, default=30
        Number of epochs.
    dropout : float, default=0.2
        Probability of zeroing a hidden unit in training, in [0, 1).
    batch_norm : bool, default=True
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the rows, stop when their log-loss stops improving
        and restore the best epoch's weights.
    validation_fraction : float, default=0.1
    n_iter_no_change : int, default=10
    tol : float, default=1e-4
    beta_1, beta_2, epsilon : float
        Adam's constants.
    random_state : int, Generator or None
        Seeds initialisation, shuffling, dropout and the validation split.
    verbose : bool, default=False
        Print the loss of every epoch.
    dtype : {"float32", "float64"}, default="float32"
        Arithmetic precision: float32 for speed, float64 for gradient checks.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    params_ : dict of ndarray
        ``W{i}`` (n_in, n_out), ``b{i}``, and ``gamma{i}`` / ``beta{i}`` with batch norm.
    running_stats_ : list of [ndarray, ndarray]
        Running mean and variance of each hidden layer (batch norm only).
    loss_curve_ : list of float
        Mean training loss of each epoch.
    validation_loss_curve_ : list of float
        Held-out log-loss after each epoch (early stopping only).
    best_validation_loss_ : float or None
    n_iter_ : int
        Epochs run.
    t_ : int
        Adam steps taken.
    n_features_in_ : int
    """

    def __init__(
        self,
        hidden_layer_sizes=(512, 256),
        *,
        alpha=1e-4,
        batch_size=128,
        learning_rate_init=1e-3,
        max_iter=30,
        dropout=0.2,
        batch_norm=True,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-4,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        random_state=None,
        verbose=False,
        dtype="float32",
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.random_state = random_state
        self.verbose = verbose
        self.dtype = dtype

    def _check_params(self):
        sizes = tuple(self.hidden_layer_sizes)
        if not all(isinstance(s, Integral) and s > 0 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be positive ints, got {sizes!r}.")
        for name in ("batch_size", "max_iter", "n_iter_no_change"):
            value = getattr(self, name)
            if not (isinstance(value, Integral) and value > 0):
                raise ValueError(f"{name} must be an int > 0, got {value!r}.")
        if not (isinstance(self.dropout, Real) and 0 <= self.dropout < 1):
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}.")
        if not (isinstance(self.validation_fraction, Real) and 0 < self.validation_fraction < 1):
            raise ValueError(
                f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}."
            )
        if np.dtype(self.dtype) not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}.")
        return sizes

    def fit(self, X, y):
        """Train the network; returns self."""
        hidden = self._check_params()
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        self.classes_, y = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"y has only 1 class ({self.classes_[0]!r}); a classifier needs 2+.")
        rng = np.random.default_rng(self.random_state)
        dtype = np.dtype(self.dtype)
        X = np.asarray(X, dtype=dtype)
        valid = None
        if self.early_stopping and np.bincount(y).min() >= 2:
            valid = validation_rows(y, self.validation_fraction, rng)
            X, y, X_val, y_val = X[~valid], y[~valid], X[valid], y[valid]

        sizes = (X.shape[1], *hidden, len(self.classes_))
        self.params_ = init_params(sizes, self.batch_norm, rng, dtype)
        self.running_stats_ = (
            [[np.zeros(s, dtype), np.ones(s, dtype)] for s in hidden] if self.batch_norm else []
        )
        batch = min(self.batch_size, len(X))
        total = self.max_iter * math.ceil(len(X) / batch)
        state, best, no_change, reference = {}, None, 0, np.inf
        self.loss_curve_, self.validation_loss_curve_, self.best_validation_loss_ = [], [], None
        for epoch in range(self.max_iter):
            order, loss_sum = rng.permutation(len(X)), 0.0
            for start in range(0, len(X), batch):
                rows = order[start : start + batch]
                logits, cache = forward(
                    self.params_, X[rows], dropout=self.dropout, rng=rng, stats=self.running_stats_
                )
                loss, grads = backward(self.params_, logits, cache, y[rows], self.alpha)
                lr = cosine_lr(self.learning_rate_init, state.get("t", 0) + 1, total)
                adam_step(self.params_, grads, state, lr, self.beta_1, self.beta_2, self.epsilon)
                loss_sum += loss * len(rows)
            self.loss_curve_.append(loss_sum / len(X))
            message = f"epoch {epoch + 1}: loss {self.loss_curve_[-1]:.5f}"
            self.n_iter_ = epoch + 1
            if valid is not None:
                log_p = log_softmax(self._logits(X_val))
                val_loss = float(-log_p[np.arange(len(y_val)), y_val].mean())
                self.validation_loss_curve_.append(val_loss)
                message += f", validation log-loss {val_loss:.5f}"
                if best is None or val_loss < self.best_validation_loss_:
                    self.best_validation_loss_, best = val_loss, self._snapshot()
                # patience counts epochs that fail to beat the best by tol
                no_change = 0 if val_loss < reference - self.tol else no_change + 1
                reference = min(reference, val_loss)
            if self.verbose:
                print(message)
            if valid is not None and no_change >= self.n_iter_no_change:
                break
        if best is not None:
            self.params_, self.running_stats_ = best
        self.t_ = state.get("t", 0)
        return self

    def _snapshot(self):
        params = {k: v.copy() for k, v in self.params_.items()}
        return params, [[m.copy(), v.copy()] for m, v in self.running_stats_]

    def _logits(self, X, chunk=8192):
        out = [
            forward(self.params_, X[i : i + chunk], stats=self.running_stats_, train=False)[0]
            for i in range(0, len(X), chunk)
        ]
        return np.concatenate(out).astype(np.float64)  # (n_samples, n_classes)

    def predict_proba(self, X):
        """Class probabilities, (n_samples, n_classes), columns as ``classes_``."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        return np.exp(log_softmax(self._logits(np.asarray(X, dtype=self.dtype))))

    def predict(self, X):
        """The most probable class of each row."""
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
