"""Principal component analysis, by an SVD of the centred data or an eigendecomposition of the
covariance matrix.

Objective: the q orthonormal directions V_q (rows of `components_`) that keep the most variance
of the centred data Xc = X - mean, i.e. maximise tr(V_q Xc' Xc V_q') subject to V_q V_q' = I.
The solution is closed form, two equivalent ways:
    "full":             Xc = U S V'  (thin SVD);        variance_j = S_j^2 / (n - 1)
    "covariance_eigh":  Xc' Xc / (n - 1) = V L V'  (eigh, sorted descending);  S_j = sqrt(L_j (n - 1))
The first is more accurate (it never squares the condition number); the second costs one
n x p by p x n product plus a p x p eigenproblem, cheaper when n >> p.
The projection is  T = Xc V_q'  (divided by sqrt(variance) when `whiten`), the reconstruction
X ~ T V_q + mean.

Signs: an eigenvector is defined up to sign, so each component is flipped to make its entry of
largest magnitude positive (the first such entry on ties) - scikit-learn's
``svd_flip(u_based_decision=False)`` - which makes the two solvers and scikit-learn agree.

Reference: Jolliffe & Cadima (2016), "Principal component analysis: a review and recent
developments", Philosophical Transactions of the Royal Society A 374: 20150202.
"""

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted, validate_data


def _flip_signs(Vt: np.ndarray) -> np.ndarray:
    """Rows of Vt flipped so that each row's largest-magnitude entry is positive."""
    pivot = np.abs(Vt).argmax(axis=1)  # (n_components,)
    return Vt * np.sign(Vt[np.arange(Vt.shape[0]), pivot])[:, None]


class PCA(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Exact PCA, scikit-learn's ``PCA`` with the "full" and "covariance_eigh" solvers.

    Parameters
    ----------
    n_components : int, float in (0, 1) or None, default=None
        Components kept; a float keeps the fewest whose explained-variance ratios sum past it;
        None keeps min(n_samples, n_features).
    whiten : bool, default=False
        Scale the projections to unit variance.
    svd_solver : {"auto", "full", "covariance_eigh"}, default="auto"
        "auto" takes "covariance_eigh" when n_features <= 1000 and n_samples >= 10 n_features,
        else "full" (scikit-learn's rule, minus its randomized branch).

    Attributes
    ----------
    components_ : ndarray of shape (n_components_, n_features)
    explained_variance_ : ndarray of shape (n_components_,)
    explained_variance_ratio_ : ndarray of shape (n_components_,)
    singular_values_ : ndarray of shape (n_components_,)
    mean_ : ndarray of shape (n_features,)
    n_components_ : int
    n_samples_ : int
    noise_variance_ : float
        Mean of the discarded variances (probabilistic PCA's sigma^2).
    n_features_in_ : int
    """

    def __init__(self, n_components=None, *, whiten=False, svd_solver="auto"):
        self.n_components = n_components
        self.whiten = whiten
        self.svd_solver = svd_solver

    def _check_params(self) -> None:
        q = self.n_components
        is_int = isinstance(q, int | np.integer) and not isinstance(q, bool)
        rules = {
            "n_components": (
                q is None
                or (is_int and q >= 0)
                or (isinstance(q, float | np.floating) and 0 < q < 1),
                "None, an int >= 0 or a float in (0, 1)",
            ),
            "whiten": (isinstance(self.whiten, bool | np.bool_), "a bool"),
            "svd_solver": (
                self.svd_solver in ("auto", "full", "covariance_eigh"),
                "'auto', 'full' or 'covariance_eigh'",
            ),
        }
        for param, (ok, rule) in rules.items():
            if not ok:
                raise ValueError(
                    f"The {param!r} parameter of PCA must be {rule}. "
                    f"Got {getattr(self, param)!r} instead."
                )

    def fit(self, X, y=None):
        """Learn the mean and the principal axes of X."""
        self._check_params()
        X = validate_data(self, X, dtype=np.float64)  # (n, p)
        n, p = X.shape
        if n < 2:  # scikit-learn returns NaN variances here, or fails inside eigh
            raise ValueError(f"PCA needs at least 2 samples; got n_samples = {n}.")
        solver = self.svd_solver
        if solver == "auto":
            solver = "covariance_eigh" if p <= 1_000 and n >= 10 * p else "full"
        q = min(n, p) if self.n_components is None else self.n_components
        if not 0 <= q <= min(n, p):
            raise ValueError(
                f"n_components={q} must be between 0 and min(n_samples, n_features)="
                f"{min(n, p)} with svd_solver={solver!r}"
            )
        self.mean_ = X.mean(axis=0)  # (p,)
        if solver == "full":
            _, S, Vt = np.linalg.svd(X - self.mean_, full_matrices=False)  # S: (min(n, p),)
            variance = S**2 / (n - 1)  # (min(n, p),)
        else:
            # the Gram matrix of the raw data, centred afterwards: no centred copy of X
            C = (X.T @ X - n * np.outer(self.mean_, self.mean_)) / (n - 1)  # (p, p)
            eigval, eigvec = np.linalg.eigh(C)  # ascending
            variance = np.maximum(eigval[::-1], 0.0)  # (p,) rounding can leave tiny negatives
            S = np.sqrt(variance * (n - 1))
            Vt = eigvec[:, ::-1].T  # (p, p) rows are the axes, largest variance first
        Vt = _flip_signs(Vt)
        ratio = variance / variance.sum()
        if 0 < q < 1:  # the fewest components whose ratios sum past q
            q = int(np.searchsorted(np.cumsum(ratio), q, side="right")) + 1
        self.n_components_ = int(q)
        self.n_samples_ = n
        self.components_ = Vt[:q].copy()  # (q, p)
        self.explained_variance_ = variance[:q].copy()  # (q,)
        self.explained_variance_ratio_ = ratio[:q].copy()  # (q,)
        self.singular_values_ = S[:q].copy()  # (q,)
        self.noise_variance_ = float(variance[q:].mean()) if q < min(n, p) else 0.0
        return self

    @property
    def _n_features_out(self) -> int:
        return self.components_.shape[0]

    def transform(self, X) -> np.ndarray:
        """Coordinates of X on the principal axes: (n_samples, n_components_)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)  # (n, p)
        T = X @ self.components_.T - self.mean_ @ self.components_.T  # (n, q)
        if self.whiten:
            # near-zero variances (rank-deficient data) would blow up: floor them at eps
            T /= np.maximum(np.sqrt(self.explained_variance_), np.finfo(np.float64).eps)
        return T

    def inverse_transform(self, X) -> np.ndarray:
        """Back to feature space: (n_samples, n_features); exact only with all components."""
        check_is_fitted(self)
        T = check_array(X, dtype=np.float64)  # (n, q)
        axes = self.components_  # (q, p)
        if self.whiten:
            axes = np.sqrt(self.explained_variance_)[:, None] * axes
        return T @ axes + self.mean_
