"""k-nearest neighbours, by brute force or a KD-tree: a classifier and a regressor.

Objective: none is trained. A query x is answered from its k nearest training points under the
Minkowski distance d_p(x, z) = (sum_f |x_f - z_f|^p)^(1/p): the classifier returns the class
with the largest summed weight among them (ties go to the smallest class), the regressor the
weighted mean of their targets. Weights are 1 ("uniform") or 1 / d ("distance"); a query that
coincides with training points gives those points weight 1 and the others 0.

Search ("update rule"):
- brute force: every distance, in row chunks. For p = 2 the points are ranked by
  ||z||^2 - 2 x.z (the squared distance less ||x||^2), one matrix product per chunk; the k
  smallest by argpartition, O(n_fit) per query; then the k chosen distances are recomputed
  from the coordinates (the expansion ranks well but loses a distance of ~0), as scikit-learn
  does.
- KD-tree: each node splits its points at the median of its widest coordinate; a leaf holds at
  most `leaf_size` points. A query walks the tree depth first, nearer side first, and skips a
  node when the distance from x to the node's split plane (a lower bound for every point across
  it) exceeds the current k-th neighbour (the bound), so far subtrees are never opened. Useful
  in low dimension; past ~15 features nearly every leaf is opened and brute force wins.

Ties: training points at the same distance are ordered by training index (lower first), in
both searches. scikit-learn's heap-based searches promise no particular order, so predictions
can differ from scikit-learn's only when distances tie exactly around the k-th neighbour.

Reference: Friedman, Bentley & Finkel (1977), "An algorithm for finding best matches in
logarithmic expected time", ACM Transactions on Mathematical Software 3(3), 209-226.
"""

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

CHUNK_ENTRIES = 2**22  # distance-matrix entries per brute-force chunk (32 MiB of float64)


def _k_smallest(dist: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k smallest entries of each row, ordered by (distance, index)."""
    cols = np.argpartition(dist, k - 1, axis=1)[:, :k]  # (n_rows, k) in no particular order
    chosen = np.take_along_axis(dist, cols, axis=1)  # (n_rows, k)
    # where a tie straddles the k-th place argpartition picked arbitrarily: redo by index
    straddle = np.flatnonzero((dist <= chosen.max(axis=1, keepdims=True)).sum(axis=1) > k)
    for r in straddle:
        cols[r] = np.lexsort((np.arange(dist.shape[1]), dist[r]))[:k]
        chosen[r] = dist[r, cols[r]]
    return np.take_along_axis(cols, np.lexsort((cols, chosen), axis=1), axis=1)


def _brute_kneighbors(X_fit: np.ndarray, X: np.ndarray, k: int, p: float):
    """Reduced distances (d^p) and indices of the k nearest rows of X_fit, by full search."""
    n_fit, n_features = X_fit.shape
    reduced = np.empty((X.shape[0], k))  # (n_queries, k)
    index = np.empty((X.shape[0], k), dtype=np.intp)  # (n_queries, k)
    per_row = n_fit if p == 2 else n_fit * n_features
    step = max(1, CHUNK_ENTRIES // per_row)
    fit_sq = np.einsum("ij,ij->i", X_fit, X_fit)  # (n_fit,)
    for start in range(0, X.shape[0], step):
        Q = X[start : start + step]  # (chunk, n_features)
        if p == 2:
            # ||z||^2 - 2 q.z ranks like ||q - z||^2: ||q||^2 is constant along a row
            d = Q @ X_fit.T  # (chunk, n_fit)
            d *= -2.0
            d += fit_sq
        else:
            d = (np.abs(Q[:, None, :] - X_fit[None, :, :]) ** p).sum(axis=2)  # (chunk, n_fit)
        ind = _k_smallest(d, k)  # (chunk, k)
        index[start : start + step] = ind
        if p == 2:  # the exact squared distances of the k chosen
            d = ((X_fit[ind] - Q[:, None, :]) ** 2).sum(axis=2)  # (chunk, k)
            reduced[start : start + step] = d
        else:
            reduced[start : start + step] = np.take_along_axis(d, ind, axis=1)
    return reduced, index


class _KDTree:
    """Median-split KD-tree: node t owns the points order[start[t]:end[t]]; an inner node sends
    coordinate dim[t] < split[t] to its left child and the rest to its right child."""

    def __init__(self, X: np.ndarray, leaf_size: int):
        self.order = np.arange(X.shape[0])  # permuted in place so each node owns a slice
        self.start, self.end, self.dim, self.split, self.left, self.right = [], [], [], [], [], []
        self._build(X, 0, X.shape[0], leaf_size)
        self.X = X[self.order]  # (n_samples, n_features) in tree order: a leaf is a slice

    def _build(self, X: np.ndarray, start: int, end: int, leaf_size: int) -> int:
        node = len(self.start)
        self.start.append(start)
        self.end.append(end)
        self.dim.append(-1)  # -1, -1, -1: a leaf until split below
        self.left.append(-1)
        self.right.append(-1)
        self.split.append(0.0)
        if end - start > leaf_size:
            pts = X[self.order[start:end]]  # (n_node, n_features)
            dim = int(np.argmax(pts.max(axis=0) - pts.min(axis=0)))  # widest coordinate
            mid = (start + end) // 2
            halves = np.argpartition(pts[:, dim], mid - start)  # the median lands at mid
            self.order[start:end] = self.order[start:end][halves]
            self.dim[node], self.split[node] = dim, float(pts[halves[mid - start], dim])
            self.left[node] = self._build(X, start, mid, leaf_size)
            self.right[node] = self._build(X, mid, end, leaf_size)
        return node

    def query(self, x: np.ndarray, k: int, p: float):
        """Reduced distances (d^p) and indices of the k nearest points to x, nearest first."""
        best_d = np.full(k, np.inf)  # (k,) sorted by (distance, index)
        best_i = np.full(k, -1)  # (k,)
        xs = x.tolist()
        # (lower bound on the reduced distance from x to any point of the node, node)
        stack = [(0.0, 0)]
        while stack:
            bound, node = stack.pop()
            if bound > best_d[-1]:
                continue  # everything in this node is farther than the k-th neighbour so far
            if self.left[node] < 0:
                lo, hi = self.start[node], self.end[node]
                d = (np.abs(self.X[lo:hi] - x) ** p).sum(axis=1)  # (n_leaf,)
                if d.min() <= best_d[-1]:
                    cand_d = np.concatenate([best_d, d])
                    cand_i = np.concatenate([best_i, self.order[lo:hi]])
                    keep = np.lexsort((cand_i, cand_d))[:k]  # by distance, then index
                    best_d, best_i = cand_d[keep], cand_i[keep]
            else:
                offset = xs[self.dim[node]] - self.split[node]
                near, far = (self.left, self.right) if offset < 0 else (self.right, self.left)
                # a point across the split plane is at least |offset| away along dim
                stack.append((max(bound, abs(offset) ** p), far[node]))
                stack.append((bound, near[node]))  # on top: opened first, tightens the bound
        return best_d, best_i


def _weights(dist: np.ndarray, weights) -> np.ndarray:
    """Neighbour weights (n_queries, k): 1, 1 / d, or a callable of the distances."""
    if weights == "uniform":
        return np.ones_like(dist)
    if callable(weights):
        return weights(dist)
    with np.errstate(divide="ignore"):
        w = 1.0 / dist  # (n_queries, k)
    exact = np.isinf(w)  # a query on a training point: that point takes all the weight
    rows = exact.any(axis=1)
    w[rows] = exact[rows]
    return w


class _NeighborsBase(BaseEstimator):
    def __init__(self, n_neighbors=5, *, weights="uniform", algorithm="auto", leaf_size=30, p=2):
        self.n_neighbors = n_neighbors
        self.weights = weights
        self.algorithm = algorithm
        self.leaf_size = leaf_size
        self.p = p

    def _check_params(self) -> None:
        def int_from(v, low):
            return isinstance(v, int | np.integer) and not isinstance(v, bool) and v >= low

        rules = {  # parameter: (valid?, what it must be)
            "n_neighbors": (int_from(self.n_neighbors, 1), "an int >= 1"),
            "weights": (
                self.weights in ("uniform", "distance") or callable(self.weights),
                "'uniform', 'distance' or a callable",
            ),
            "algorithm": (
                self.algorithm in ("auto", "brute", "kd_tree"),
                "'auto', 'brute' or 'kd_tree'",
            ),
            "leaf_size": (int_from(self.leaf_size, 1), "an int >= 1"),
            "p": (isinstance(self.p, int | float) and 1 <= self.p < np.inf, "a finite real >= 1"),
        }
        for param, (ok, rule) in rules.items():
            if not ok:
                name = type(self).__name__
                raise ValueError(
                    f"The {param!r} parameter of {name} must be {rule}. Got {getattr(self, param)!r} instead."
                )

    def _fit(self, X, y, classifier: bool):
        self._check_params()
        X, y = validate_data(
            self, X, y, dtype=np.float64, multi_output=not classifier, y_numeric=not classifier
        )
        if classifier:
            check_classification_targets(y)
            self.classes_, y = np.unique(y, return_inverse=True)  # y: class codes
        self._fit_X = X  # (n_samples_fit, n_features)
        self._y = y  # (n_samples_fit,) or (n_samples_fit, n_outputs)
        self.n_samples_fit_ = X.shape[0]
        # "auto" is brute force: vectorised NumPy beats a tree walked from Python at these sizes
        self._fit_method = "kd_tree" if self.algorithm == "kd_tree" else "brute"
        self._tree = _KDTree(X, self.leaf_size) if self._fit_method == "kd_tree" else None
        self.effective_metric_ = "euclidean" if self.p == 2 else "minkowski"
        return self

    def kneighbors(self, X=None, n_neighbors=None, return_distance=True):
        """Distances and indices of the nearest training points, nearest first.

        ``X=None`` queries the training points, each one excluding itself. Returns
        ``(neigh_dist, neigh_ind)``, each (n_queries, n_neighbors), or ``neigh_ind`` alone
        when ``return_distance`` is False.
        """
        check_is_fitted(self)
        k = self.n_neighbors if n_neighbors is None else n_neighbors
        if not isinstance(k, int | np.integer):
            raise TypeError(f"n_neighbors does not take {type(k)} value, enter integer value")
        if k <= 0:
            raise ValueError(f"Expected n_neighbors > 0. Got {k}")
        self_query = X is None
        X = self._fit_X if self_query else validate_data(self, X, dtype=np.float64, reset=False)
        if k + self_query > self.n_samples_fit_:
            rule = "n_neighbors < n_samples_fit" if self_query else "n_neighbors <= n_samples_fit"
            raise ValueError(
                f"Expected {rule}, but n_neighbors = {k}, "
                f"n_samples_fit = {self.n_samples_fit_}, n_samples = {X.shape[0]}"
            )
        k_search = k + self_query  # one extra: the query point finds itself
        if self._fit_method == "brute":
            reduced, ind = _brute_kneighbors(self._fit_X, X, k_search, self.p)
        else:
            found = zip(*(self._tree.query(x, k_search, self.p) for x in X), strict=True)
            reduced, ind = (np.array(rows) for rows in found)  # (n_queries, k_search) each
        if self_query:
            # drop the point itself; when duplicates crowd it out of the k + 1, drop the first
            keep = ind != np.arange(len(X))[:, None]  # (n_queries, k + 1)
            keep[keep.all(axis=1), 0] = False
            reduced, ind = reduced[keep].reshape(len(X), k), ind[keep].reshape(len(X), k)
        if not return_distance:
            return ind
        dist = np.sqrt(reduced) if self.p == 2 else reduced ** (1.0 / self.p)
        return dist, ind


class KNeighborsClassifier(ClassifierMixin, _NeighborsBase):
    """k-nearest-neighbours vote, scikit-learn's ``KNeighborsClassifier`` restricted to Minkowski p.

    Parameters
    ----------
    n_neighbors : int, default=5
    weights : {"uniform", "distance"} or callable, default="uniform"
    algorithm : {"auto", "brute", "kd_tree"}, default="auto"
        "auto" means brute force here.
    leaf_size : int, default=30
        Most points in a KD-tree leaf.
    p : float >= 1, default=2
        Minkowski power; 2 is Euclidean.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    n_samples_fit_ : int
    n_features_in_ : int
    effective_metric_ : str
    """

    def fit(self, X, y):
        """Store the training set (and build the KD-tree when asked)."""
        return self._fit(X, y, classifier=True)

    def _votes(self, X) -> np.ndarray:
        dist, ind = self.kneighbors(X)  # (n_queries, k) each
        w = _weights(dist, self.weights)  # (n_queries, k)
        votes = np.zeros((len(ind), len(self.classes_)))  # (n_queries, n_classes)
        np.add.at(votes, (np.arange(len(ind))[:, None], self._y[ind]), w)
        return votes

    def predict(self, X) -> np.ndarray:
        """Class with the largest summed weight among the neighbours (smallest class on ties)."""
        check_is_fitted(self)
        return self.classes_[np.argmax(self._votes(X), axis=1)]

    def predict_proba(self, X) -> np.ndarray:
        """Summed neighbour weight per class, normalised: (n_queries, n_classes)."""
        check_is_fitted(self)
        votes = self._votes(X)
        total = votes.sum(axis=1, keepdims=True)
        total[total == 0.0] = 1.0
        return votes / total


class KNeighborsRegressor(RegressorMixin, _NeighborsBase):
    """k-nearest-neighbours mean, scikit-learn's ``KNeighborsRegressor`` restricted to Minkowski p.

    Parameters are those of :class:`KNeighborsClassifier`.

    Attributes
    ----------
    n_samples_fit_ : int
    n_features_in_ : int
    effective_metric_ : str
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def fit(self, X, y):
        """Store the training set (and build the KD-tree when asked); y may have several columns."""
        return self._fit(X, y, classifier=False)

    def predict(self, X) -> np.ndarray:
        """(Weighted) mean target of the neighbours: (n_queries,) or (n_queries, n_outputs)."""
        check_is_fitted(self)
        dist, ind = self.kneighbors(X)  # (n_queries, k) each
        y = self._y.reshape(self.n_samples_fit_, -1)[ind]  # (n_queries, k, n_outputs)
        if self.weights == "uniform":
            pred = y.mean(axis=1)  # (n_queries, n_outputs)
        else:
            w = _weights(dist, self.weights)[:, :, None]  # (n_queries, k, 1)
            pred = (y * w).sum(axis=1) / w.sum(axis=1)
        return pred.ravel() if self._y.ndim == 1 else pred
