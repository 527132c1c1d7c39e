"""Lasso and elastic net by cyclic coordinate descent, plus the lasso path.

Objective (scikit-learn's ``ElasticNet``; ``Lasso`` is ``l1_ratio=1``)::

    min_w  1/(2n) ||y - X w||^2 + alpha * l1_ratio * ||w||_1
                                + alpha * (1 - l1_ratio) / 2 * ||w||^2

Multiplied by ``n`` it reads ``1/2 ||y - X w||^2 + l1 ||w||_1 + l2/2 ||w||^2`` with
``l1 = n alpha l1_ratio`` and ``l2 = n alpha (1 - l1_ratio)``, the form the solver works in.
With an intercept, X and y are centred first (the intercept is not penalised).

Update rule, cycling over the coordinates j with the residual ``R = y - X w`` kept current::

    rho_j = X_j' R + w_j ||X_j||^2                 # X_j' (y - X w + w_j X_j)
    w_j  <- S(rho_j, l1) / (||X_j||^2 + l2)        # S(z, t) = sign(z) max(|z| - t, 0)
    R    <- R - (w_j_new - w_j_old) X_j

Stopping rule (scikit-learn's): after a sweep whose largest coefficient change is at most
``tol`` times the largest coefficient, compute the duality gap; stop once it is at most
``tol * ||y||^2``. The dual point is the residual scaled into the dual feasible set
``||X'v - l2 w||_inf <= l1``. The gap also drives the "gap safe" screening rule (Fercoq,
Gramfort & Salmon 2015), which drops features that are provably zero at the optimum.

Reference: Friedman, Hastie & Tibshirani, "Regularization paths for generalized linear
models via coordinate descent", Journal of Statistical Software 33(1), 2010.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import (
    check_array,
    check_consistent_length,
    check_is_fitted,
    validate_data,
)


def _duality_gap(w, l1, l2, X, y, R):
    """Duality gap of the n-scaled problem at w, and X'R - l2 w, the dual's gradient."""
    XtA = X.T @ R - l2 * w  # (n_features,)
    R_norm2, w_norm2, Ry = R @ R, w @ w, R @ y
    if l1 == 0:
        XtR_norm2 = (XtA + l2 * w) @ (XtA + l2 * w)
        if l2 == 0:  # least squares: no dual, use the squared gradient norm
            return XtR_norm2, XtA
        # ridge: the dual without the feasibility constraint (Duenner et al. 2016)
        return R_norm2 + 0.5 * l2 * w_norm2 - Ry + XtR_norm2 / (2 * l2), XtA
    dual_norm = np.max(np.abs(XtA), initial=0.0)
    scale = l1 / dual_norm if dual_norm > l1 else 1.0  # makes v = scale * R dual feasible
    primal = 0.5 * (R_norm2 + l2 * w_norm2) + l1 * np.sum(np.abs(w))
    dual = -0.5 * scale**2 * (R_norm2 + l2 * w_norm2) + scale * Ry
    return primal - dual, XtA


def _screen(active, w, l1, l2, X, R, col_norms, gap, XtA):
    """Gap safe rule: drop the features that are zero at every point of the safe sphere."""
    theta = XtA / max(l1, np.max(np.abs(XtA)))  # X_j' (dual point), per feature
    radius = np.sqrt(2 * gap) / l1
    keep = active & ((1 - np.abs(theta)) / np.sqrt(col_norms + l2) <= radius)
    dropped = active & ~keep & (w != 0)
    if dropped.any():  # put the dropped coefficients back into the residual, in place
        R += X[:, dropped] @ w[dropped]
        w[dropped] = 0.0
    return keep


def _enet_coordinate_descent(w, l1, l2, X, y, col_norms, max_iter, tol):
    """Minimise 1/2 ||y - X w||^2 + l1 ||w||_1 + l2/2 ||w||^2 from w, in place.

    X must be Fortran-ordered so each column is contiguous; col_norms holds the squared
    column norms ||X_j||^2 (computed once per path). Returns (w, gap, n_iter).
    """
    columns = list(X.T)  # contiguous views of the columns of a Fortran-ordered X
    R = y - X @ w  # (n_samples,) residual, updated in place from here on
    gap_tol = tol * (y @ y)
    gap, XtA = _duality_gap(w, l1, l2, X, y, R)
    if gap <= gap_tol:
        return w, gap, 0
    active = col_norms > 0  # (n_features,) bool: features still cycled over
    w[~active] = 0.0
    if l1 > 0:
        active = _screen(active, w, l1, l2, X, R, col_norms, gap, XtA)

    for n_iter in range(max_iter):
        w_max = d_w_max = 0.0
        for j in np.flatnonzero(active).tolist():
            w_j, X_j, norm_j = float(w[j]), columns[j], float(col_norms[j])
            rho = float(X_j @ R) + w_j * norm_j
            shrunk = abs(rho) - l1  # soft-thresholding, with plain Python floats
            new = (shrunk if rho > 0 else -shrunk) / (norm_j + l2) if shrunk > 0 else 0.0
            if new != w_j:
                R -= (new - w_j) * X_j
                w[j] = new
            d_w_max = max(d_w_max, abs(new - w_j))
            w_max = max(w_max, abs(new))
        if w_max == 0.0 or d_w_max / w_max <= tol or n_iter == max_iter - 1:
            gap, XtA = _duality_gap(w, l1, l2, X, y, R)
            if gap <= gap_tol:
                return w, gap, n_iter + 1
            if l1 > 0:
                active = _screen(active, w, l1, l2, X, R, col_norms, gap, XtA)
    warnings.warn(
        f"Coordinate descent did not converge: duality gap {gap:.3e} > tolerance "
        f"{gap_tol:.3e} after max_iter={max_iter} sweeps; increase max_iter or tol.",
        UserWarning,
        stacklevel=3,
    )
    return w, gap, max_iter


def lasso_path(
    X, y, *, eps=1e-3, n_alphas=100, alphas=None, coef_init=None, max_iter=1000, tol=1e-4
):
    """Lasso solutions along a decreasing grid of alphas, each warm-started from the last.

    As scikit-learn's ``lasso_path``, no intercept is fitted: centre X and y beforehand.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    eps : float, default=1e-3
        ``alpha_min / alpha_max`` of the generated grid.
    n_alphas : int, default=100
        Length of the generated grid.
    alphas : array-like or int, default=None
        The alphas to use (sorted decreasing); an int is a grid length, None means
        ``n_alphas``.
    coef_init : array-like of shape (n_features,), default=None
        Starting coefficients; zeros when None.
    max_iter, tol : int, float
        As in :class:`Lasso`.

    Returns
    -------
    alphas : ndarray of shape (n_alphas,)
    coefs : ndarray of shape (n_features, n_alphas)
    dual_gaps : ndarray of shape (n_alphas,)
        The duality gap at the end of each fit, on the 1/(2n) scale of the objective.
    """
    X = check_array(X, dtype=np.float64, order="F")  # (n_samples, n_features)
    y = check_array(y, dtype=np.float64, ensure_2d=False)  # (n_samples,)
    check_consistent_length(X, y)
    n_samples, n_features = X.shape
    if alphas is None or isinstance(alphas, Integral):
        n_grid = n_alphas if alphas is None else int(alphas)
        alpha_max = np.max(np.abs(X.T @ y)) / n_samples  # smallest alpha with w = 0
        if alpha_max <= np.finfo(np.float64).resolution:
            alphas = np.full(n_grid, np.finfo(np.float64).resolution)
        else:
            alphas = np.geomspace(alpha_max, alpha_max * eps, num=n_grid)
    else:
        alphas = np.sort(np.asarray(alphas, dtype=np.float64).ravel())[::-1]

    w = np.zeros(n_features) if coef_init is None else np.array(coef_init, dtype=np.float64)
    col_norms = np.einsum("ij,ij->j", X, X)  # (n_features,) ||X_j||^2
    coefs = np.empty((n_features, len(alphas)))  # (n_features, n_alphas)
    dual_gaps = np.empty(len(alphas))  # (n_alphas,)
    for i, alpha in enumerate(alphas):
        w, gap, _ = _enet_coordinate_descent(
            w, alpha * n_samples, 0.0, X, y, col_norms, max_iter, tol
        )
        coefs[:, i] = w
        dual_gaps[i] = gap / n_samples
    return alphas, coefs, dual_gaps


class ElasticNet(RegressorMixin, BaseEstimator):
    """Linear regression with a combined L1 and L2 penalty, by coordinate descent.

    Parameters
    ----------
    alpha : float, default=1.0
        Overall penalty strength, ``>= 0``.
    l1_ratio : float, default=0.5
        Share of the L1 penalty, in ``[0, 1]``.
    fit_intercept : bool, default=True
        Whether to fit an (unpenalised) intercept by centring X and y.
    max_iter : int, default=1000
        Maximum number of sweeps over the features.
    tol : float, default=1e-4
        Stop once the duality gap is at most ``tol * ||y||^2`` (after centring).

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
    intercept_ : float
    dual_gap_ : float
        Duality gap at the end of the fit, on the 1/(2n) scale of the objective.
    n_iter_ : int
        Sweeps run.
    n_features_in_ : int
    """

    def __init__(self, alpha=1.0, *, l1_ratio=0.5, fit_intercept=True, max_iter=1000, tol=1e-4):
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, X, y):
        """Fit the model by coordinate descent; returns self."""
        if not (isinstance(self.alpha, Real) and self.alpha >= 0):
            raise ValueError(f"alpha must be a float >= 0, got {self.alpha!r}.")
        if not (isinstance(self.l1_ratio, Real) and 0 <= self.l1_ratio <= 1):
            raise ValueError(f"l1_ratio must be in [0, 1], got {self.l1_ratio!r}.")
        X, y = validate_data(self, X, y, dtype=np.float64, order="F", y_numeric=True)
        n_samples, n_features = X.shape
        if self.fit_intercept:
            X_offset, y_offset = X.mean(axis=0), y.mean()  # (n_features,), scalar
        else:
            X_offset, y_offset = np.zeros(n_features), 0.0
        Xc = np.asfortranarray(X - X_offset)  # (n_samples, n_features)
        yc = y - y_offset  # (n_samples,)

        l1 = self.alpha * self.l1_ratio * n_samples
        l2 = self.alpha * (1.0 - self.l1_ratio) * n_samples
        col_norms = np.einsum("ij,ij->j", Xc, Xc)  # (n_features,) ||X_j||^2
        coef, gap, self.n_iter_ = _enet_coordinate_descent(
            np.zeros(n_features), l1, l2, Xc, yc, col_norms, self.max_iter, self.tol
        )
        self.coef_ = coef  # (n_features,)
        self.dual_gap_ = gap / n_samples
        self.intercept_ = float(y_offset - X_offset @ coef)
        return self

    def predict(self, X):
        """Predict ``X @ coef_ + intercept_``."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return X @ self.coef_ + self.intercept_  # (n_samples,)


class Lasso(ElasticNet):
    """Linear regression with an L1 penalty: :class:`ElasticNet` with ``l1_ratio=1``.

    Parameters
    ----------
    alpha : float, default=1.0
        Penalty strength on ``||w||_1``, ``>= 0``.
    fit_intercept, max_iter, tol
        As in :class:`ElasticNet`.
    """

    l1_ratio = 1.0  # a class constant, not a parameter: get_params() does not list it

    def __init__(self, alpha=1.0, *, fit_intercept=True, max_iter=1000, tol=1e-4):
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
