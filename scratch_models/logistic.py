"""Logistic regression, binary and multinomial, with an L2 or an L1 penalty.

Objective (scikit-learn's ``LogisticRegression``)::

    min_{W, b}  C * sum_i -log softmax(W x_i + b)[y_i]  +  penalty(W)

with ``penalty = 1/2 ||W||_F^2`` (``"l2"``) or ``||W||_1`` (``"l1"``); the intercepts ``b``
are not penalised. With two classes W has one row and class 0's logit is pinned at 0 (the
softmax of ``[0, z]`` is the sigmoid), so ``coef_`` is (1, n_features) as in scikit-learn;
with three or more, one row per class (the multinomial model, scikit-learn's only
multiclass mode since 1.7 for these solvers). Its intercepts are defined up to a common
shift: every solver below starts at 0 and moves orthogonally to that shift, so they sum
to 0.

The solvers minimise the objective divided by ``C n``, ``f = mean log-loss + penalty / (C n)``,
whose gradient is ``(P - Y)' X / n + W / (C n)`` (P the probabilities, Y the one-hot labels):

* ``"newton"`` (L2): ``theta <- theta - t H^+ g`` with the exact Hessian (blocks
  ``X' diag(p_k (delta_kl - p_l)) X / n``), its pseudo-inverse (lstsq) because the shift of
  the multinomial intercepts is a null direction, and ``t`` by Armijo backtracking.
* ``"lbfgs"`` (L2): ``theta <- theta - t H_k g``, ``H_k`` from the last 10 steps by the
  two-loop recursion, ``t`` by Armijo backtracking.
* ``"proximal"`` (L1): FISTA, ``theta <- S(z - g(z) / L, 1 / (C n L))`` (soft-thresholding,
  not applied to the intercepts) with Nesterov momentum restarted when it points uphill;
  ``L`` starts at Boehning's curvature bound ``sigma_max(X)^2 / n`` times 1/4 (binary) or
  1/2 and adapts by backtracking (shrunk by 0.8 each step, doubled until the quadratic
  model bounds the loss).

All stop when ``max |g| <= tol`` (for ``proximal``: the gradient mapping ``L (z - theta)``).

References: Nocedal & Wright, *Numerical Optimization* (2nd ed., 2006), chapters 3 and 7
(Newton, L-BFGS, backtracking); Beck & Teboulle, "A fast iterative shrinkage-thresholding
algorithm for linear inverse problems", SIAM J. Imaging Sciences 2(1), 2009 (FISTA).
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

SOLVERS = {"l2": ("newton", "lbfgs"), "l1": ("proximal",)}


def _log_softmax(Z):
    """Row-wise log softmax of logits Z (n_samples, n_classes), without overflow."""
    Z = Z - Z.max(axis=1, keepdims=True)
    return Z - np.log(np.exp(Z).sum(axis=1, keepdims=True))


def _logits(theta, Xa):
    """(n_samples, n_classes) logits; a single (binary) row gets class 0 pinned at 0."""
    Z = Xa @ theta.T  # (n_samples, n_rows)
    return np.hstack([np.zeros((len(Z), 1)), Z]) if theta.shape[0] == 1 else Z


def _loss_grad(x, Xa, Y, l2, mask):
    """Mean log-loss + l2/2 ||mask * theta||^2, its flat gradient, and the probabilities."""
    theta = x.reshape(-1, Xa.shape[1])  # (n_rows, n_cols)
    log_P = _log_softmax(_logits(theta, Xa))  # (n_samples, n_classes)
    P = np.exp(log_P)
    penalised = mask * theta  # the intercept column zeroed
    loss = -np.sum(Y * log_P) / len(Xa) + 0.5 * l2 * np.sum(penalised**2)
    residual = (P - Y)[:, -theta.shape[0] :]  # (n_samples, n_rows); binary: class 1 only
    grad = residual.T @ Xa / len(Xa) + l2 * penalised  # (n_rows, n_cols)
    return loss, grad.ravel(), P


def _hessian(P, Xa, n_rows, l2, mask):
    """Exact Hessian of _loss_grad: block (k, l) is X' diag(p_k (delta_kl - p_l)) X / n."""
    P = P[:, -n_rows:]  # (n_samples, n_rows), the free classes
    blocks = [
        [Xa.T @ (Xa * (P[:, k] * ((k == m) - P[:, m]))[:, None]) / len(Xa) for m in range(n_rows)]
        for k in range(n_rows)
    ]
    return np.block(blocks) + l2 * np.diag(np.tile(mask, n_rows))  # (n_params, n_params)


def _backtrack(fun, x, f, g, d):
    """Armijo backtracking along d; None when no decrease is representable any more.

    The strict ``f_new < f`` matters near the optimum: there ``f + 1e-4 t slope`` rounds
    to ``f`` and a step that changes nothing would otherwise be accepted forever.
    """
    slope, t = g @ d, 1.0
    for _ in range(60):
        f_new, g_new, P_new = fun(x + t * d)
        if f_new < f and f_new <= f + 1e-4 * t * slope:
            return x + t * d, f_new, g_new, P_new
        t /= 2
    return None


def _newton(fun, x, Xa, n_rows, l2, mask, max_iter, tol):
    """Damped Newton from x; returns (x, n_iter, converged)."""
    f, g, P = fun(x)
    for n_iter in range(max_iter):
        if np.max(np.abs(g)) <= tol:
            return x, n_iter, True
        d = -np.linalg.lstsq(_hessian(P, Xa, n_rows, l2, mask), g, rcond=None)[0]
        step = _backtrack(fun, x, f, g, d)
        if step is None:  # at the optimum to machine precision
            return x, n_iter, True
        x, f, g, P = step
    return x, max_iter, np.max(np.abs(g)) <= tol


def _lbfgs(fun, x, max_iter, tol, memory=10):
    """L-BFGS from x; returns (x, n_iter, converged)."""
    f, g, _ = fun(x)
    pairs = []  # the last `memory` (s, y) = (step, gradient change)
    for n_iter in range(max_iter):
        if np.max(np.abs(g)) <= tol:
            return x, n_iter, True
        q, alphas = g.copy(), []  # two-loop recursion: q <- H_k g
        for s, y in reversed(pairs):
            alphas.append((s @ q) / (y @ s))
            q -= alphas[-1] * y
        if pairs:  # initial Hessian H_0 = (s'y / y'y) I from the newest pair
            s, y = pairs[-1]
            q *= (s @ y) / (y @ y)
        else:  # first step: steepest descent, at most unit length
            q /= max(1.0, np.linalg.norm(g))
        for (s, y), a in zip(pairs, reversed(alphas), strict=True):
            q += (a - (y @ q) / (y @ s)) * s
        step = _backtrack(fun, x, f, g, -q)
        if step is None:
            return x, n_iter, True
        x_new, f, g_new, _ = step
        s, y = x_new - x, g_new - g
        if s @ y > 1e-12 * np.linalg.norm(s) * np.linalg.norm(y):  # keep H_k positive
            pairs = [*pairs[-memory + 1 :], (s, y)]
        x, g = x_new, g_new
    return x, max_iter, np.max(np.abs(g)) <= tol


def _fista(fun, x, l1, mask, lipschitz, max_iter, tol):
    """FISTA for fun + l1 * ||mask * x||_1 from x; returns (x, n_iter, converged)."""
    z, t = x.copy(), 1.0
    for n_iter in range(max_iter):
        f_z, g_z, _ = fun(z)
        while True:  # backtracking: grow L until the quadratic model bounds f at x_new
            v = z - g_z / lipschitz
            x_new = np.sign(v) * np.maximum(np.abs(v) - l1 / lipschitz * mask, 0.0)
            d = x_new - z
            model = f_z + g_z @ d + 0.5 * lipschitz * (d @ d) + 1e-14 * abs(f_z)
            if fun(x_new)[0] <= model:
                break
            lipschitz *= 2
        if lipschitz * np.max(np.abs(d)) <= tol:
            return x_new, n_iter + 1, True
        if (z - x_new) @ (x_new - x) > 0:  # momentum points uphill: restart it
            t = 1.0
        t_new = (1 + np.sqrt(1 + 4 * t**2)) / 2
        z = x_new + (t - 1) / t_new * (x_new - x)
        x, t = x_new, t_new
        lipschitz *= 0.8  # try a longer step next time: local curvature is often far lower
    return x, max_iter, False


class LogisticRegression(ClassifierMixin, BaseEstimator):
    """Logistic regression (binary, or multinomial for 3+ classes).

    Parameters
    ----------
    penalty : {"l2", "l1"}, default="l2"
        ``1/2 ||W||^2`` or ``||W||_1``; the intercepts are not penalised.
    C : float, default=1.0
        Inverse penalty strength, ``> 0``; ``np.inf`` (with ``"l2"``) means no penalty.
    fit_intercept : bool, default=True
        Whether to fit intercepts.
    max_iter : int, default=100
        Maximum number of solver iterations.
    tol : float, default=1e-4
        Stop when the largest gradient entry of the objective divided by ``C n`` is at
        most ``tol``.
    solver : {"lbfgs", "newton", "proximal"}, default="lbfgs"
        ``lbfgs`` and ``newton`` for ``"l2"``, ``proximal`` (FISTA) for ``"l1"``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coef_ : ndarray of shape (1, n_features) or (n_classes, n_features)
    intercept_ : ndarray of shape (1,) or (n_classes,)
    n_iter_ : ndarray of shape (1,)
    n_features_in_ : int
    """

    def __init__(
        self, penalty="l2", *, C=1.0, fit_intercept=True, max_iter=100, tol=1e-4, solver="lbfgs"
    ):
        self.penalty = penalty
        self.C = C
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.solver = solver

    def _check_params(self):
        if self.penalty not in SOLVERS:
            raise ValueError(f"penalty must be one of {tuple(SOLVERS)}, got {self.penalty!r}.")
        if self.solver not in SOLVERS[self.penalty]:
            raise ValueError(
                f"Solver {self.solver!r} does not support penalty={self.penalty!r}; "
                f"use one of {SOLVERS[self.penalty]}."
            )
        if not (isinstance(self.C, Real) and self.C > 0):
            raise ValueError(f"C must be a float > 0, got {self.C!r}.")
        if not (isinstance(self.max_iter, Integral) and self.max_iter >= 0):
            raise ValueError(f"max_iter must be an int >= 0, got {self.max_iter!r}.")

    def fit(self, X, y):
        """Fit the model; returns self."""
        self._check_params()
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, y_index = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                "This solver needs samples of at least 2 classes in the data, but the data "
                f"contains only one class: {self.classes_[0]!r}"
            )
        n_samples, n_features = X.shape
        n_rows = 1 if len(self.classes_) == 2 else len(self.classes_)
        Y = np.eye(len(self.classes_))[y_index]  # (n_samples, n_classes) one-hot
        Xa = np.hstack([X, np.ones((n_samples, 1))]) if self.fit_intercept else X
        mask = np.r_[np.ones(n_features), np.zeros(Xa.shape[1] - n_features)]  # (n_cols,)
        strength = 1.0 / (self.C * n_samples)  # penalty weight once divided by C n
        x0 = np.zeros(n_rows * Xa.shape[1])  # (n_rows * n_cols,) flat parameters

        if self.penalty == "l2":

            def fun(x):
                return _loss_grad(x, Xa, Y, strength, mask)

            if self.solver == "newton":
                x, n_iter, converged = _newton(
                    fun, x0, Xa, n_rows, strength, mask, self.max_iter, self.tol
                )
            else:
                x, n_iter, converged = _lbfgs(fun, x0, self.max_iter, self.tol)
        else:

            def fun(x):
                return _loss_grad(x, Xa, Y, 0.0, mask)

            bound = 0.25 if n_rows == 1 else 0.5  # largest curvature of the log-loss
            lipschitz = bound * np.linalg.norm(Xa, ord=2) ** 2 / n_samples
            x, n_iter, converged = _fista(
                fun, x0, strength, np.tile(mask, n_rows), lipschitz, self.max_iter, self.tol
            )
        if not converged:
            warnings.warn(
                f"LogisticRegression ({self.solver}) did not converge in max_iter="
                f"{self.max_iter} iterations; increase max_iter or standardise the features.",
                UserWarning,
                stacklevel=2,
            )
        theta = x.reshape(n_rows, Xa.shape[1])  # (n_rows, n_cols)
        self.coef_ = theta[:, :n_features].copy()  # (n_rows, n_features)
        self.intercept_ = (
            theta[:, n_features].copy() if self.fit_intercept else np.zeros(n_rows)
        )  # (n_rows,)
        self.n_iter_ = np.array([n_iter])
        return self

    def decision_function(self, X):
        """Logits: (n_samples,) for two classes (of class 1), else (n_samples, n_classes)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        scores = X @ self.coef_.T + self.intercept_  # (n_samples, n_rows)
        return scores[:, 0] if scores.shape[1] == 1 else scores

    def predict_log_proba(self, X):
        """Log class probabilities, (n_samples, n_classes), columns as ``classes_``."""
        scores = self.decision_function(X)
        if scores.ndim == 1:
            scores = np.column_stack([np.zeros(len(scores)), scores])
        return _log_softmax(scores)

    def predict_proba(self, X):
        """Class probabilities, (n_samples, n_classes), columns as ``classes_``."""
        return np.exp(self.predict_log_proba(X))

    def predict(self, X):
        """The most probable class of each row."""
        scores = self.decision_function(X)
        index = (scores > 0).astype(int) if scores.ndim == 1 else np.argmax(scores, axis=1)
        return self.classes_[index]
