"""k-means clustering: greedy k-means++ seeding, then Lloyd's iterations.

Objective: minimise the inertia  sum_i w_i ||x_i - c_{l_i}||^2  over k centres c and labels l.
Lloyd's update alternates two exact block minimisations of it:
    assign  l_i <- argmin_j ||x_i - c_j||^2                     (the first centre wins a tie)
    update  c_j <- sum_{i: l_i = j} w_i x_i / sum_{i: l_i = j} w_i
and stops when the labels no longer change ("strict convergence") or when the total squared
centre shift  sum_j ||c_j^new - c_j||^2  is at most  tol * mean_f Var(X[:, f])  (scikit-learn's
tolerance: relative to the mean feature variance), or after `max_iter` rounds. After a stop on
the shift the points are assigned once more, so that `labels_` belongs to `cluster_centers_`.
A centre left with no points moves onto the point farthest from its own centre, as in
scikit-learn. The data are centred before the loop: the ||x||^2 - 2 x.c + ||c||^2 distances
lose less to cancellation near the origin.

Seeding, greedy k-means++ (scikit-learn's variant): the first centre is a point drawn with
probability proportional to w_i; every next one draws 2 + floor(ln k) candidates with
probability proportional to w_i D(x_i)^2 (D: distance to the nearest centre so far) and keeps
the candidate that leaves the smallest potential sum_i w_i D(x_i)^2. Arthur and Vassilvitskii's
plain k-means++ draws a single candidate. Of `n_init` seedings the run with the least inertia
is kept. The random stream is NumPy's Generator, so seeds do not reproduce scikit-learn's
RandomState draws; with the same initial centres (`init=array`) the runs agree.

Reference: Arthur & Vassilvitskii (2007), "k-means++: the advantages of careful seeding",
Proceedings of the 18th ACM-SIAM Symposium on Discrete Algorithms, 1027-1035.
"""

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    ClusterMixin,
    TransformerMixin,
)
from sklearn.utils.validation import (
    _check_sample_weight,
    check_array,
    check_is_fitted,
    validate_data,
)


def _sq_distances(X: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (n_samples, n_centers) by ||x||^2 - 2 x.c + ||c||^2."""
    d = (X**2).sum(axis=1)[:, None] - 2.0 * (X @ centers.T) + (centers**2).sum(axis=1)
    return np.maximum(d, 0.0)


def _assign(X: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Index of the nearest centre per row; ||x||^2 is dropped, it does not move the argmin."""
    scores = (centers**2).sum(axis=1) - 2.0 * (X @ centers.T)  # (n_samples, n_clusters)
    return np.argmin(scores, axis=1).astype(np.int32)


def _inertia(X: np.ndarray, w: np.ndarray, centers: np.ndarray, labels: np.ndarray) -> float:
    return float((((X - centers[labels]) ** 2).sum(axis=1) * w).sum())


def _kmeans_plusplus(X: np.ndarray, k: int, w: np.ndarray, rng: np.random.Generator):
    """Greedy k-means++: k rows of X as initial centres."""
    n_trials = 2 + int(np.log(k))
    centers = np.empty((k, X.shape[1]))  # (n_clusters, n_features)
    centers[0] = X[rng.choice(X.shape[0], p=w / w.sum())]
    closest = _sq_distances(centers[:1], X)[0]  # (n_samples,) D(x)^2 to the nearest centre
    potential = closest @ w
    for c in range(1, k):
        draws = rng.uniform(size=n_trials) * potential
        cand = np.searchsorted(np.cumsum(w * closest), draws)  # (n_trials,) D^2-weighted draws
        cand = np.minimum(cand, X.shape[0] - 1)  # rounding can push a draw past the end
        trial = np.minimum(closest, _sq_distances(X[cand], X))  # (n_trials, n_samples)
        best = int(np.argmin(trial @ w))  # the candidate leaving the smallest potential
        potential, closest = trial[best] @ w, trial[best]
        centers[c] = X[cand[best]]
    return centers


def _update(X, w, labels, old):
    """M-step: weighted means of the assigned points, empty clusters moved to far points."""
    k = old.shape[0]
    weight = np.bincount(labels, weights=w, minlength=k)  # (n_clusters,)
    # per-cluster weighted sums, one bincount per feature (summed in sample order)
    sums = np.stack([np.bincount(labels, w * x, minlength=k) for x in X.T], axis=1)  # (k, p)
    empty = np.flatnonzero(weight == 0)
    if empty.size:
        far = ((X - old[labels]) ** 2).sum(axis=1)  # (n_samples,) distance to own centre
        if far.max() > 0:  # with fewer distinct points than clusters there is nothing to move
            # the farthest points, in the order scikit-learn takes them
            picks = np.argpartition(far, -empty.size)[: -empty.size - 1 : -1]
            for j, i in zip(empty, picks, strict=True):
                sums[labels[i]] -= w[i] * X[i]
                weight[labels[i]] -= w[i]
                sums[j], weight[j] = w[i] * X[i], w[i]
    # a cluster still empty keeps its zero sum, i.e. the data mean (X is centred), as scikit-learn
    scale = 1.0 / np.where(weight > 0, weight, 1.0)  # (n_clusters,)
    return sums * scale[:, None]


def _lloyd(X, w, centers, max_iter, tol):
    """Lloyd's iterations from `centers`: (labels, inertia, centers, n_iter)."""
    labels_old = np.full(X.shape[0], -1, dtype=np.int32)
    strict, n_iter = False, 0
    while n_iter < max_iter:
        n_iter += 1
        labels = _assign(X, centers)  # E-step with the current centres
        new = _update(X, w, labels, centers)  # M-step
        shift = ((new - centers) ** 2).sum()
        centers = new
        if np.array_equal(labels, labels_old):
            strict = True
            break
        if shift <= tol:
            break
        labels_old = labels
    if not strict:
        labels = _assign(X, centers)  # labels of the final centres
    return labels, _inertia(X, w, centers, labels), centers, n_iter


def _same_clustering(a: np.ndarray, b: np.ndarray) -> bool:
    """True when each label of a maps to a single label of b (relabelled, same partition)."""
    return len(np.unique(np.stack([a, b]), axis=1)[0]) == len(np.unique(a))


class KMeans(ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin, BaseEstimator):
    """k-means by Lloyd's algorithm, scikit-learn's ``KMeans(algorithm="lloyd")`` on dense data.

    Parameters
    ----------
    n_clusters : int, default=8
    init : {"k-means++", "random"} or ndarray of shape (n_clusters, n_features)
    n_init : "auto" or int, default="auto"
        Seedings tried; "auto" is 1 for "k-means++" and an array, 10 for "random".
    max_iter : int, default=300
    tol : float, default=1e-4
        Relative to the mean feature variance (see the module docstring).
    random_state : int, numpy.random.Generator or None

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
    labels_ : ndarray of shape (n_samples,)
    inertia_ : float
        Sum of (weighted) squared distances to the nearest centre.
    n_iter_ : int
        Lloyd rounds of the kept run.
    n_features_in_ : int
    """

    def __init__(
        self,
        n_clusters=8,
        *,
        init="k-means++",
        n_init="auto",
        max_iter=300,
        tol=1e-4,
        random_state=None,
    ):
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    def _check_params(self) -> None:
        def is_int(v, low):
            return isinstance(v, int | np.integer) and not isinstance(v, bool) and v >= low

        is_array = not isinstance(self.init, str)
        rules = {
            "n_clusters": (is_int(self.n_clusters, 1), "an int >= 1"),
            "init": (is_array or self.init in ("k-means++", "random"), "'k-means++', 'random'"),
            "n_init": (self.n_init == "auto" or is_int(self.n_init, 1), "'auto' or an int >= 1"),
            "max_iter": (is_int(self.max_iter, 1), "an int >= 1"),
            "tol": (isinstance(self.tol, int | float) and self.tol >= 0, "a float >= 0"),
        }
        for param, (ok, rule) in rules.items():
            if not ok:
                raise ValueError(
                    f"The {param!r} parameter of KMeans must be {rule}. "
                    f"Got {getattr(self, param)!r} instead."
                )

    def fit(self, X, y=None, sample_weight=None):
        """Run `n_init` seedings of Lloyd's algorithm and keep the one with least inertia."""
        self._check_params()
        X = validate_data(self, X, dtype=np.float64, copy=True)  # (n_samples, n_features)
        if X.shape[0] < self.n_clusters:
            raise ValueError(f"n_samples={X.shape[0]} should be >= n_clusters={self.n_clusters}.")
        w = _check_sample_weight(sample_weight, X, dtype=X.dtype)  # (n_samples,)
        rng = np.random.default_rng(self.random_state)
        tol = np.mean(np.var(X, axis=0)) * self.tol  # scikit-learn's data-relative tolerance
        mean = X.mean(axis=0)  # (n_features,)
        X -= mean
        if isinstance(self.init, str):
            n_init = (
                (1 if self.init == "k-means++" else 10) if self.n_init == "auto" else self.n_init
            )
        else:
            init = check_array(self.init, dtype=np.float64)  # (n_clusters, n_features)
            expected = {
                "number of clusters": self.n_clusters,
                "number of features of the data": X.shape[1],
            }
            for axis, (what, size) in enumerate(expected.items()):
                if init.shape[axis] != size:
                    raise ValueError(
                        f"The shape of the initial centers {init.shape} does not match the {what} {size}."
                    )
            init = init - mean
            n_init = 1  # an explicit start is run once
        best = None
        for _ in range(n_init):
            if not isinstance(self.init, str):
                start = init
            elif self.init == "k-means++":
                start = _kmeans_plusplus(X, self.n_clusters, w, rng)
            else:
                start = X[rng.choice(X.shape[0], self.n_clusters, replace=False, p=w / w.sum())]
            run = _lloyd(X, w, start, self.max_iter, tol)
            # a lower inertia that is the same partition relabelled is only rounding: keep the first
            if best is None or (run[1] < best[1] and not _same_clustering(run[0], best[0])):
                best = run
        labels, self.inertia_, centers, self.n_iter_ = best
        self.labels_ = labels
        self.cluster_centers_ = centers + mean  # (n_clusters, n_features)
        self._n_features_out = self.n_clusters
        return self

    def predict(self, X) -> np.ndarray:
        """Index of the nearest centre: (n_samples,)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return _assign(X, self.cluster_centers_)

    def transform(self, X) -> np.ndarray:
        """Euclidean distance to every centre: (n_samples, n_clusters)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return np.sqrt(_sq_distances(X, self.cluster_centers_))

    def score(self, X, y=None, sample_weight=None) -> float:
        """Minus the inertia of X under the fitted centres."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        w = _check_sample_weight(sample_weight, X, dtype=X.dtype)
        return -_inertia(X, w, self.cluster_centers_, _assign(X, self.cluster_centers_))
