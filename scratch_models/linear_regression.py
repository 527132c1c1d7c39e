"""Ordinary least squares, solved three ways.

Objective (scikit-learn's ``LinearRegression``)::

    min_{w, b}  1/(2n) ||y - X w - b||^2

With an intercept, X and y are centred first: the optimal ``b`` is then
``mean(y) - mean(X) @ w`` and ``w`` solves the same problem on the centred data.

* ``solver="lstsq"``: ``np.linalg.lstsq`` (SVD) on the centred data; the minimum-norm
  solution when X is rank deficient, as scikit-learn returns.
* ``solver="normal"``: the normal equations ``X'X w = X'y``, solved by ``np.linalg.lstsq`` on
  the small (n_features, n_features) Gram matrix, never by inverting it; its minimum-norm
  solution is the pseudo-inverse one when X is rank deficient. Forming X'X squares the
  condition number, the price of touching the n_samples rows only once.
* ``solver="gd"``: batch gradient descent, ``w <- w - eta * X'(X w - y) / n``, with
  ``eta = 1 / L`` by default, ``L = sigma_max(X)^2 / n`` the gradient's Lipschitz constant,
  stopped when ``max |gradient| <= tol``.

Reference: Hastie, Tibshirani & Friedman, *The Elements of Statistical Learning* (2nd ed.,
2009), section 3.2.
"""

from __future__ import annotations

from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from scratch_models.ridge import _gradient_descent  # ridge's, with alpha = 0

SOLVERS = ("lstsq", "normal", "gd")


class LinearRegression(RegressorMixin, BaseEstimator):
    """Ordinary least squares linear regression.

    Parameters
    ----------
    fit_intercept : bool, default=True
        Whether to fit an intercept (by centring X and y).
    solver : {"lstsq", "normal", "gd"}, default="lstsq"
        ``lstsq``: SVD least squares; ``normal``: the normal equations; ``gd``: batch
        gradient descent.
    learning_rate : float or "auto", default="auto"
        Step size of ``gd``; ``"auto"`` is ``1 / L`` (``L`` the Lipschitz constant).
    max_iter : int, default=10_000
        Maximum number of ``gd`` iterations.
    tol : float, default=1e-6
        ``gd`` stops when the largest absolute gradient entry is at most ``tol``.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
    intercept_ : float
    n_iter_ : int
        Gradient-descent iterations run (1 for a direct solve).
    n_features_in_ : int
    """

    def __init__(
        self,
        *,
        fit_intercept=True,
        solver="lstsq",
        learning_rate="auto",
        max_iter=10_000,
        tol=1e-6,
    ):
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.tol = tol

    def _check_params(self):
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}.")
        if self.learning_rate != "auto" and not (
            isinstance(self.learning_rate, Real) and self.learning_rate > 0
        ):
            raise ValueError(f"learning_rate must be 'auto' or > 0, got {self.learning_rate!r}.")

    def fit(self, X, y):
        """Fit the linear model; returns self."""
        self._check_params()
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        if self.fit_intercept:
            X_offset, y_offset = X.mean(axis=0), y.mean()  # (n_features,), scalar
        else:
            X_offset, y_offset = np.zeros(X.shape[1]), 0.0
        Xc, yc = X - X_offset, y - y_offset  # (n_samples, n_features), (n_samples,)

        self.n_iter_ = 1  # a direct solve counts as one iteration
        if self.solver == "lstsq":
            coef = np.linalg.lstsq(Xc, yc, rcond=None)[0]
        elif self.solver == "normal":
            gram, Xty = Xc.T @ Xc, Xc.T @ yc  # (n_features, n_features), (n_features,)
            # SVD of the small Gram matrix: rank-revealing, so a singular X'X (collinear
            # columns) still gives the minimum-norm solution; np.linalg.solve would not
            coef = np.linalg.lstsq(gram, Xty, rcond=None)[0]
        else:
            coef, self.n_iter_ = _gradient_descent(
                Xc, yc, 0.0, self.learning_rate, self.max_iter, self.tol
            )
        self.coef_ = coef  # (n_features,)
        self.intercept_ = float(y_offset - X_offset @ coef)
        return self

    def predict(self, X):
        """Predict ``X @ coef_ + intercept_``."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return X @ self.coef_ + self.intercept_  # (n_samples,)
