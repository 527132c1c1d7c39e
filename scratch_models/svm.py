"""Support vector classification: the soft-margin dual solved by SMO, one-vs-one for k classes.

Objective (the C-SVC dual, labels y_i in {+1, -1}, kernel K, Q_ij = y_i y_j K(x_i, x_j)):
    min_a  f(a) = 1/2 a'Qa - sum_i a_i    subject to  0 <= a_i <= C,  y'a = 0,
with decision function  d(x) = sum_i a_i y_i K(x_i, x) + b; the support vectors are the a_i > 0.

Update rule (SMO, LIBSVM's Solver): with G = Qa - 1 the gradient, let
    I_up  = {t : a_t < C, y_t = +1  or  a_t > 0, y_t = -1}   (a_t can move up along y_t)
    I_low = {t : a_t < C, y_t = -1  or  a_t > 0, y_t = +1}.
a is optimal (KKT) when  m(a) - M(a) = max_{I_up} -y_t G_t - min_{I_low} -y_t G_t < tol.
Otherwise pick the working pair by second-order working-set selection (WSS 2): i is the
maximal violator  argmax_{I_up} -y_t G_t;  j is the j in I_low with -y_j G_j < -y_i G_i that
maximises the decrease of f, (b_ij)^2 / a_ij with b_ij = -y_i G_i + y_j G_j and
a_ij = K_ii + K_jj - 2 K_ij (tau = 1e-12 when the kernel is not positive definite there).
Minimise f over (a_i, a_j) along y'a = 0 in closed form, clip to the box, and update
G += Q_i da_i + Q_j da_j. The bias is LIBSVM's: b = -rho with rho the mean of y_t G_t over the
free a_t (0 < a_t < C), or the midpoint of the bounds the KKT conditions give when none is free.
Ties pick the last index, like LIBSVM's `>=` comparisons.

Multiclass (LIBSVM, as scikit-learn): one binary problem per class pair (a, b), a < b, on the
samples of a (y = +1) then b (y = -1); predict by majority vote (the first class on ties).
`support_` lists the samples that are support vectors of any pair, grouped by class; for the
pair (a, b) the coefficients a_i y_i of a's samples sit in row b - 1 of `dual_coef_` and those
of b's samples in row a. For two classes the signs are flipped so that d(x) > 0 means
`classes_[1]`, as scikit-learn does.

Differences from LIBSVM: no shrinking and no kernel cache (the full n x n kernel is built, so
this is for data sets of a few thousand rows), the kernel is kept in float64 (LIBSVM's cache
holds float32), and reaching `max_iter` sets `fit_status_ = 1` instead of warning.

Reference: Fan, Chen & Lin (2005), "Working set selection using second order information for
training support vector machines", Journal of Machine Learning Research 6, 1889-1918.
"""

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

TAU = 1e-12  # curvature floor for non-positive-definite pairs (LIBSVM's TAU)


def _kernel(A: np.ndarray, B: np.ndarray, kernel: str, gamma: float, degree: int, coef0: float):
    """Kernel matrix (n_a, n_b)."""
    if kernel == "linear":
        return A @ B.T
    if kernel == "poly":
        return (gamma * (A @ B.T) + coef0) ** degree
    if kernel == "sigmoid":
        return np.tanh(gamma * (A @ B.T) + coef0)
    sq = (A**2).sum(axis=1)[:, None] - 2.0 * (A @ B.T) + (B**2).sum(axis=1)  # (n_a, n_b)
    return np.exp(-gamma * np.maximum(sq, 0.0))


def _last_argmax(values: np.ndarray) -> int:
    """Index of the maximum, the last one on ties (LIBSVM compares with >=)."""
    return len(values) - 1 - int(np.argmax(values[::-1]))


def _smo(K: np.ndarray, y: np.ndarray, C: float, tol: float, max_iter: int):
    """Solve the dual for kernel K (n, n) and labels y (n,) in {+1, -1}: (alpha, rho, n_iter, ok)."""
    Q = y[:, None] * y[None, :] * K  # (n, n)
    QD = np.diag(Q).copy()  # (n,)
    alpha = np.zeros(len(y))  # (n,)
    G = -np.ones(len(y))  # (n,) gradient of f at alpha = 0
    n_iter = 0
    while max_iter == -1 or n_iter < max_iter:
        up = np.where(y > 0, alpha < C, alpha > 0)  # (n,) I_up
        low = np.where(y > 0, alpha > 0, alpha < C)  # (n,) I_low
        score = -y * G  # (n,)
        i = _last_argmax(np.where(up, score, -np.inf))
        gap_i = score[i]  # m(alpha)
        if gap_i - np.min(score, where=low, initial=np.inf) < tol:
            return alpha, _rho(alpha, y, G, C), n_iter, True
        # second-order choice of j among the I_low points that violate with i
        grad_diff = gap_i - score  # (n,) b_ij
        curv = QD[i] + QD - 2.0 * y[i] * y * Q[i]  # (n,) a_ij = K_ii + K_jj - 2 K_ij
        gain = grad_diff**2 / np.where(curv > 0, curv, TAU)  # (n,)
        j = _last_argmax(np.where(low & (grad_diff > 0), gain, -np.inf))
        n_iter += 1
        old_i, old_j = alpha[i], alpha[j]
        if y[i] != y[j]:  # a_i - a_j stays fixed
            quad = QD[i] + QD[j] + 2.0 * Q[i, j]
            quad = quad if quad > 0 else TAU
            delta = (-G[i] - G[j]) / quad
            diff = alpha[i] - alpha[j]
            alpha[i] += delta
            alpha[j] += delta
            # clip the segment a_i - a_j = diff to the box [0, C]^2
            if diff > 0 and alpha[j] < 0:
                alpha[j], alpha[i] = 0.0, diff
            elif diff <= 0 and alpha[i] < 0:
                alpha[i], alpha[j] = 0.0, -diff
            if diff > 0 and alpha[i] > C:
                alpha[i], alpha[j] = C, C - diff
            elif diff <= 0 and alpha[j] > C:
                alpha[j], alpha[i] = C, C + diff
        else:  # a_i + a_j stays fixed
            quad = QD[i] + QD[j] - 2.0 * Q[i, j]
            quad = quad if quad > 0 else TAU
            delta = (G[i] - G[j]) / quad
            total = alpha[i] + alpha[j]
            alpha[i] -= delta
            alpha[j] += delta
            if total > C and alpha[i] > C:
                alpha[i], alpha[j] = C, total - C
            elif total <= C and alpha[j] < 0:
                alpha[j], alpha[i] = 0.0, total
            if total > C and alpha[j] > C:
                alpha[j], alpha[i] = C, total - C
            elif total <= C and alpha[i] < 0:
                alpha[i], alpha[j] = 0.0, total
        G += Q[i] * (alpha[i] - old_i) + Q[j] * (alpha[j] - old_j)
    return alpha, _rho(alpha, y, G, C), n_iter, False


def _rho(alpha: np.ndarray, y: np.ndarray, G: np.ndarray, C: float) -> float:
    """LIBSVM's rho (the bias is -rho): mean y_t G_t over free alphas, else the bounds' midpoint."""
    yG = y * G  # (n,)
    free = (alpha > 0) & (alpha < C)
    if free.any():
        return float(yG[free].mean())
    # at a bound y_t G_t only bounds rho from one side
    upper_side = np.where(alpha >= C, y < 0, y > 0)  # (n,) entries that bound rho from above
    ub = np.min(yG, where=upper_side, initial=np.inf)
    lb = np.max(yG, where=~upper_side, initial=-np.inf)
    return float((ub + lb) / 2)


class SVC(ClassifierMixin, BaseEstimator):
    """C-support vector classifier by SMO, scikit-learn's ``SVC`` without probabilities.

    Parameters
    ----------
    C : float, default=1.0
    kernel : {"linear", "poly", "rbf", "sigmoid"}, default="rbf"
    degree : int, default=3
    gamma : {"scale", "auto"} or float, default="scale"
        "scale" is 1 / (n_features * X.var()), "auto" is 1 / n_features.
    coef0 : float, default=0.0
    tol : float, default=1e-3
        Stop when the maximal KKT violation m(a) - M(a) falls below it.
    max_iter : int, default=-1
        SMO steps per class pair; -1 for no limit.
    decision_function_shape : {"ovr", "ovo"}, default="ovr"

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    support_ : ndarray of shape (n_SV,)
        Indices of the support vectors, grouped by class.
    support_vectors_ : ndarray of shape (n_SV, n_features)
    n_support_ : ndarray of shape (n_classes,)
    dual_coef_ : ndarray of shape (n_classes - 1, n_SV)
        alpha_i y_i per pair (see the module docstring for the layout).
    intercept_ : ndarray of shape (n_classes * (n_classes - 1) / 2,)
    n_iter_ : ndarray of shape (n_classes * (n_classes - 1) / 2,)
    fit_status_ : int
        0 when every pair converged, 1 when one stopped at ``max_iter``.
    n_features_in_ : int
    """

    def __init__(
        self,
        C=1.0,
        kernel="rbf",
        degree=3,
        gamma="scale",
        coef0=0.0,
        tol=1e-3,
        max_iter=-1,
        decision_function_shape="ovr",
    ):
        self.C = C
        self.kernel = kernel
        self.degree = degree
        self.gamma = gamma
        self.coef0 = coef0
        self.tol = tol
        self.max_iter = max_iter
        self.decision_function_shape = decision_function_shape

    def _check_params(self) -> None:
        def real(v):
            return isinstance(v, int | float | np.number) and not isinstance(v, bool)

        rules = {
            "C": (real(self.C) and self.C > 0, "a float > 0"),
            "kernel": (self.kernel in ("linear", "poly", "rbf", "sigmoid"), "a known kernel"),
            "degree": (real(self.degree) and int(self.degree) == self.degree >= 0, "an int >= 0"),
            "gamma": (
                self.gamma in ("scale", "auto") or (real(self.gamma) and self.gamma >= 0),
                "'scale', 'auto' or a float >= 0",
            ),
            "coef0": (real(self.coef0), "a float"),
            "tol": (real(self.tol) and self.tol > 0, "a float > 0"),
            "max_iter": (real(self.max_iter) and int(self.max_iter) >= -1, "an int >= -1"),
            "decision_function_shape": (
                self.decision_function_shape in ("ovr", "ovo"),
                "'ovr' or 'ovo'",
            ),
        }
        for param, (ok, rule) in rules.items():
            if not ok:
                raise ValueError(
                    f"The {param!r} parameter of SVC must be {rule}. "
                    f"Got {getattr(self, param)!r} instead."
                )

    def _K(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        return _kernel(A, B, self.kernel, self._gamma, self.degree, self.coef0)

    def fit(self, X, y):
        """Solve one dual per class pair and keep the support vectors."""
        self._check_params()
        X, y = validate_data(self, X, y, dtype=np.float64)  # (n, p), (n,)
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        k = len(self.classes_)
        if k < 2:
            raise ValueError(f"The number of classes has to be greater than one; got {k} class")
        if self.gamma == "scale":
            var = X.var()
            self._gamma = 1.0 / (X.shape[1] * var) if var != 0 else 1.0
        else:
            self._gamma = 1.0 / X.shape[1] if self.gamma == "auto" else float(self.gamma)
        K = self._K(X, X)  # (n, n)
        coef = np.zeros((k - 1, len(y)))  # (n_classes - 1, n) LIBSVM's layout, all samples
        is_sv = np.zeros(len(y), dtype=bool)
        rho, n_iter, ok = [], [], []
        for a in range(k):
            for b in range(a + 1, k):
                ia, ib = np.flatnonzero(codes == a), np.flatnonzero(codes == b)
                idx = np.concatenate([ia, ib])  # (n_ab,) class a first, as LIBSVM orders them
                sign = np.r_[np.ones(len(ia)), -np.ones(len(ib))]  # (n_ab,)
                alpha, r, it, done = _smo(
                    K[np.ix_(idx, idx)], sign, self.C, self.tol, self.max_iter
                )
                coef[b - 1, ia] = alpha[: len(ia)]
                coef[a, ib] = -alpha[len(ia) :]
                is_sv[idx[alpha > 0]] = True
                rho.append(r)
                n_iter.append(it)
                ok.append(done)
        by_class = np.argsort(codes, kind="stable")  # (n,) grouped by class, index order within
        self.support_ = by_class[is_sv[by_class]].astype(np.int32)  # (n_SV,)
        self.support_vectors_ = X[self.support_]  # (n_SV, p)
        self.n_support_ = np.bincount(codes[self.support_], minlength=k).astype(np.int32)
        self.dual_coef_ = coef[:, self.support_]  # (n_classes - 1, n_SV)
        self.intercept_ = -np.array(rho)  # (n_pairs,)
        if k == 2:  # positive decision for classes_[1], as scikit-learn presents it
            self.dual_coef_, self.intercept_ = -self.dual_coef_, -self.intercept_
        self.n_iter_ = np.array(n_iter, dtype=np.int32)
        self.fit_status_ = int(not all(ok))
        return self

    def _ovo(self, X) -> np.ndarray:
        """LIBSVM's pairwise decision values (n_queries, n_pairs): > 0 votes for the first class."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        Kx = self._K(X, self.support_vectors_)  # (n_queries, n_SV)
        k = len(self.classes_)
        flip = -1.0 if k == 2 else 1.0  # undo the two-class sign convention
        edges = np.r_[0, np.cumsum(self.n_support_)]  # class c's SVs: edges[c]:edges[c + 1]
        dec, p = np.empty((len(X), k * (k - 1) // 2)), 0
        for a in range(k):
            for b in range(a + 1, k):
                sa, sb = slice(edges[a], edges[a + 1]), slice(edges[b], edges[b + 1])
                dec[:, p] = flip * (
                    Kx[:, sa] @ self.dual_coef_[b - 1, sa]
                    + Kx[:, sb] @ self.dual_coef_[a, sb]
                    + self.intercept_[p]
                )
                p += 1
        return dec

    def decision_function(self, X) -> np.ndarray:
        """(n,) for two classes (> 0: classes_[1]); (n, n_classes) for "ovr", (n, n_pairs) for "ovo"."""
        dec = self._ovo(X)
        k = len(self.classes_)
        if k == 2:
            return -dec[:, 0]
        if self.decision_function_shape == "ovo":
            return dec
        # scikit-learn's "ovr" shape: votes plus the summed pairwise confidences squashed into
        # (-1/3, 1/3), so that confidences only break ties between vote counts
        votes, conf, p = np.zeros((len(dec), k)), np.zeros((len(dec), k)), 0
        for a in range(k):
            for b in range(a + 1, k):
                votes[:, a] += dec[:, p] > 0
                votes[:, b] += dec[:, p] <= 0
                conf[:, a] += dec[:, p]
                conf[:, b] -= dec[:, p]
                p += 1
        return votes + conf / (3 * (np.abs(conf) + 1))

    def predict(self, X) -> np.ndarray:
        """Majority vote of the pairwise classifiers (the first class on ties): (n_samples,)."""
        dec = self._ovo(X)  # (n, n_pairs)
        k = len(self.classes_)
        votes, p = np.zeros((len(dec), k), dtype=int), 0
        for a in range(k):
            for b in range(a + 1, k):
                votes[:, a] += dec[:, p] > 0
                votes[:, b] += dec[:, p] <= 0
                p += 1
        return self.classes_[np.argmax(votes, axis=1)]
