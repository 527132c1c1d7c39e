"""Ridge regression: least squares with an L2 penalty on the coefficients.

Objective (scikit-learn's ``Ridge``; note: no 1/n in front of the squared error)::

    min_{w, b}  ||y - X w - b||^2 + alpha ||w||^2

The intercept ``b`` is not penalised. Centring X and y removes it: the optimal ``b`` is
``mean(y) - mean(X) @ w``, and ``w`` solves the penalised problem on the centred data.

* ``solver="cholesky"``: the closed form ``(X'X + alpha I) w = X'y``, solved with
  ``np.linalg.solve`` (symmetric positive definite for ``alpha > 0``; never an inverse).
  When n_samples < n_features the equivalent dual form ``w = X' (X X' + alpha I)^-1 y`` is
  solved instead, an (n_samples, n_samples) system.
* ``solver="gd"``: batch gradient descent on the objective divided by ``2n``,
  ``w <- w - eta * (X'(X w - y) + alpha w) / n``, with ``eta = 1 / L`` by default,
  ``L = (sigma_max(X)^2 + alpha) / n``, stopped when ``max |gradient| <= tol``.

Reference: Hoerl & Kennard, "Ridge regression: biased estimation for nonorthogonal
problems", Technometrics 12(1), 1970; Hastie, Tibshirani & Friedman, *The Elements of
Statistical Learning* (2nd ed., 2009), section 3.4.1.
"""

from __future__ import annotations

import warnings
from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

SOLVERS = ("cholesky", "gd")
GD_MAX_ITER = 10_000  # what max_iter=None means for "gd"


def _solve(A, b):
    """Solve A x = b; a singular A (only possible with alpha=0) gets the min-norm x."""
    try:
        return np.linalg.solve(A, b)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(A, b, rcond=None)[0]


def _closed_form(X, y, alpha):
    """Solve (X'X + alpha I) w = X'y, in whichever of primal / dual is smaller."""
    n_samples, n_features = X.shape
    if n_samples >= n_features:
        gram = X.T @ X + alpha * np.eye(n_features)  # (n_features, n_features)
        return _solve(gram, X.T @ y)
    kernel = X @ X.T + alpha * np.eye(n_samples)  # (n_samples, n_samples)
    return X.T @ _solve(kernel, y)


def _gradient_descent(X, y, alpha, learning_rate, max_iter, tol):
    """Minimise (||y - X w||^2 + alpha ||w||^2) / (2n) by batch gradient descent."""
    n_samples, n_features = X.shape
    if learning_rate == "auto":
        # Lipschitz constant of the gradient: largest eigenvalue of (X'X + alpha I) / n
        lipschitz = (np.linalg.norm(X, ord=2) ** 2 + alpha) / n_samples
        learning_rate = 1.0 / lipschitz if lipschitz > 0 else 1.0
    w = np.zeros(n_features)  # (n_features,)
    for n_iter in range(1, max_iter + 1):
        gradient = (X.T @ (X @ w - y) + alpha * w) / n_samples  # (n_features,)
        if np.max(np.abs(gradient), initial=0.0) <= tol:
            return w, n_iter - 1
        w -= learning_rate * gradient
    warnings.warn(
        f"Gradient descent did not converge in max_iter={max_iter} iterations "
        f"(max |gradient| = {np.max(np.abs(gradient)):.3e} > tol = {tol}); "
        "increase max_iter or standardise the features.",
        UserWarning,
        stacklevel=3,
    )
    return w, max_iter


class Ridge(RegressorMixin, BaseEstimator):
    """Linear least squares with L2 regularisation (intercept not penalised).

    Parameters
    ----------
    alpha : float, default=1.0
        Penalty strength, ``>= 0``; on the sum (not the mean) of squared errors, as in
        scikit-learn.
    fit_intercept : bool, default=True
        Whether to fit an intercept (by centring X and y).
    solver : {"cholesky", "gd"}, default="cholesky"
        Closed form or batch gradient descent.
    learning_rate : float or "auto", default="auto"
        Step size of ``gd``; ``"auto"`` is ``1 / L`` (``L`` the Lipschitz constant).
    max_iter : int or None, default=None
        Maximum number of ``gd`` iterations; ``None`` means 10 000.
    tol : float, default=1e-4
        ``gd`` stops when the largest absolute gradient entry of the objective divided by
        ``2n`` is at most ``tol``.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
    intercept_ : float
    n_iter_ : int
        Gradient-descent iterations run (1 for the closed form).
    n_features_in_ : int
    """

    def __init__(
        self,
        alpha=1.0,
        *,
        fit_intercept=True,
        solver="cholesky",
        learning_rate="auto",
        max_iter=None,
        tol=1e-4,
    ):
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.tol = tol

    def _check_params(self):
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}.")
        if not (isinstance(self.alpha, Real) and self.alpha >= 0):
            raise ValueError(f"alpha must be a float >= 0, got {self.alpha!r}.")
        if self.learning_rate != "auto" and not (
            isinstance(self.learning_rate, Real) and self.learning_rate > 0
        ):
            raise ValueError(f"learning_rate must be 'auto' or > 0, got {self.learning_rate!r}.")

    def fit(self, X, y):
        """Fit the ridge model; returns self."""
        self._check_params()
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        if self.fit_intercept:
            X_offset, y_offset = X.mean(axis=0), y.mean()  # (n_features,), scalar
        else:
            X_offset, y_offset = np.zeros(X.shape[1]), 0.0
        Xc, yc = X - X_offset, y - y_offset  # (n_samples, n_features), (n_samples,)

        self.n_iter_ = 1  # a direct solve counts as one iteration
        if self.solver == "cholesky":
            coef = _closed_form(Xc, yc, float(self.alpha))
        else:
            max_iter = GD_MAX_ITER if self.max_iter is None else self.max_iter
            coef, self.n_iter_ = _gradient_descent(
                Xc, yc, float(self.alpha), self.learning_rate, max_iter, self.tol
            )
        self.coef_ = coef  # (n_features,)
        self.intercept_ = float(y_offset - X_offset @ coef)
        return self

    def predict(self, X):
        """Predict ``X @ coef_ + intercept_``."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return X @ self.coef_ + self.intercept_  # (n_samples,)
