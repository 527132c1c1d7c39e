"""Histogram gradient boosting: ``HistGradientBoostingRegressor`` and ``...Classifier``.

Objective (Chen & Guestrin 2016, *XGBoost: A Scalable Tree Boosting System*, eqs. 2-7): at
iteration t fit the tree f_t that minimises the second-order expansion of the loss,

    sum_i [g_i f(x_i) + 1/2 h_i f(x_i)^2] + gamma * T + 1/2 * lambda * sum_j w_j^2,

with g_i, h_i the gradient and hessian of the loss at the current raw prediction F(x_i). For a
leaf holding gradient sum G and hessian sum H the optimal value is w = -G / (H + lambda), and a
split of a node (G, H) into (G_L, H_L) + (G_R, H_R) gains

    gain = 1/2 [G_L^2 / (H_L + lambda) + G_R^2 / (H_R + lambda) - G^2 / (H + lambda)] - gamma.

Update rule: F <- F + learning_rate * f_t(x). As in LightGBM and scikit-learn, features are
binned once into at most ``max_bins`` quantile bins (NaN gets one more bin), so a node's split
search scans per-feature gradient / hessian histograms built with ``np.bincount``; the larger
child's histograms are the parent's minus the smaller child's. Trees grow leaf-wise (the leaf
with the best gain is split next) up to ``max_leaf_nodes``. At each split, NaN goes to the side
that gains more; for a feature with no NaN in training, to the side that had more rows.

Parameters named after XGBoost's: ``min_child_weight`` (scikit-learn's internal
``min_hessian_to_split``, default 1e-3 as there) is the least hessian sum per child, and
``gamma`` the least gain to split (scikit-learn's ``min_gain_to_split`` is ``2 * gamma``, as its
gain is not halved). There is no early stopping: every fit runs ``max_iter`` iterations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from scratch_models.gradient_boosting import _expit, _softmax

BINNING_ROWS = 200_000  # at most this many rows (a random sample) set the bin edges


@dataclass
class HistTree:
    """One boosted tree in flat arrays over binned features; ``left == -1`` marks a leaf."""

    feature: np.ndarray  # (n_nodes,)
    bin: np.ndarray  # (n_nodes,) rows whose bin is <= this go left ...
    nan_left: np.ndarray  # (n_nodes,) ... and the NaN bin goes left where this is True
    left: np.ndarray  # (n_nodes,)
    right: np.ndarray  # (n_nodes,)
    value: np.ndarray  # (n_nodes,) leaf values, learning rate included

    def predict(self, Xb: np.ndarray, nan_bin: int) -> np.ndarray:
        """Xb (n, p) binned; walks all rows down one level per step."""
        node = np.zeros(len(Xb), dtype=np.intp)  # (n,)
        rows = np.flatnonzero(self.left[node] != -1)
        while rows.size:
            at = node[rows]
            x = Xb[rows, self.feature[at]]
            go_left = np.where(x == nan_bin, self.nan_left[at], x <= self.bin[at])
            node[rows] = np.where(go_left, self.left[at], self.right[at])
            rows = rows[self.left[node[rows]] != -1]
        return self.value[node]


def _bin_edges(col: np.ndarray, max_bins: int) -> np.ndarray:
    """scikit-learn's edges: midpoints of the distinct values, or quantiles if there are more."""
    col = col[~np.isnan(col)]
    distinct = np.unique(col)
    if len(distinct) <= max_bins:
        return (distinct[:-1] + distinct[1:]) / 2.0
    percentiles = np.linspace(0, 100, max_bins + 1)[1:-1]
    return np.unique(np.percentile(col, percentiles, method="averaged_inverted_cdf"))


def _histograms(bins_t, rows, g, h, n_bins, counts=None):
    """Gradient, hessian and row count summed per bin of each feature over rows: (3, p, n_bins).

    One ``np.bincount`` per feature and statistic: gathering the node's uint8 bins and casting
    them once per feature beats one bincount over all (feature, row) cells at every node size.
    No Python loop runs over rows; the root passes a slice and gathers nothing. With a constant
    hessian 1 the hessian sum is the row count; counts (p, n_bins) known already (the root's
    are the same every iteration) are copied rather than counted."""
    hist = np.empty((3, len(bins_t), n_bins))
    stats = [(0, g[rows])] + ([] if h is None else [(1, h[rows])])  # (slot, weights)
    if counts is None:
        stats.append((2, None))
    else:
        hist[2] = counts
    for j, column in enumerate(bins_t):
        cells = column[rows].astype(np.intp)  # (m,) bins of feature j
        for slot, w in stats:
            hist[slot, j] = np.bincount(cells, w, n_bins)
    if h is None:
        hist[1] = hist[2]
    return hist


class _BaseHGB(BaseEstimator):
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # NaN has its own bin; inf is refused
        return tags

    def _bin(self, X):
        """(n, p) uint8 bin of every value: x lands in bin i iff e[i-1] < x <= e[i]."""
        Xb = np.empty(X.shape, dtype=np.uint8)
        for j, edges in enumerate(self.bin_edges_):
            Xb[:, j] = np.where(np.isnan(X[:, j]), self.nan_bin_, np.searchsorted(edges, X[:, j]))
        return Xb

    def _boost(self, X, Y):
        """X (n, p) float64; Y (n, K) target or one-hot classes; K trees per iteration."""
        if not (isinstance(self.max_bins, (int, np.integer)) and 2 <= self.max_bins <= 255):
            raise ValueError(f"max_bins must be an int in [2, 255], got {self.max_bins!r}.")
        if not (self.max_leaf_nodes >= 2 and self.learning_rate > 0 and self.max_iter >= 1):
            raise ValueError("max_leaf_nodes must be >= 2, learning_rate > 0, max_iter >= 1.")
        if not (self.l2_regularization >= 0 and self.gamma >= 0 and self.min_child_weight >= 0):
            raise ValueError("l2_regularization, gamma and min_child_weight must be >= 0.")
        n, p = X.shape
        rng = np.random.default_rng(self.random_state)
        sample = X if n <= BINNING_ROWS else X[rng.choice(n, BINNING_ROWS, replace=False)]
        self.bin_edges_ = [_bin_edges(sample[:, j], self.max_bins) for j in range(p)]
        self.nan_bin_ = max(len(e) for e in self.bin_edges_) + 1  # after every feature's bins
        Xb = self._bin(X)  # (n, p)
        has_nan = (Xb == self.nan_bin_).any(0)  # (p,)
        bins_t = np.ascontiguousarray(Xb.T)  # (p, n) uint8 for the histograms
        root_counts = np.array([np.bincount(col, None, self.nan_bin_ + 1) for col in bins_t])
        self.baseline_ = self._baseline(Y)  # (K,)
        self.n_trees_per_iteration_ = Y.shape[1]
        raw = np.tile(self.baseline_, (n, 1))  # (n, K)
        self.trees_ = []
        for _ in range(self.max_iter):
            g, h = self._gradients(Y, raw)  # (n, K) each; h is None for a constant hessian 1
            trees = []
            for k in range(Y.shape[1]):
                h_k = None if h is None else h[:, k]
                tree, leaves = self._grow(bins_t, g[:, k], h_k, has_nan, root_counts)
                for node, rows in leaves.items():
                    raw[rows, k] += tree.value[node]
                trees.append(tree)
            self.trees_.append(trees)
        self.n_iter_ = self.max_iter
        return self

    def _best_split(self, hist, tot, has_nan):
        """Best cut of a node from its histograms (3, p, n_bins) and sums tot (3,):
        (gain, feature, bin, nan_left, sums of the left child (3,))."""
        lam, least_h = self.l2_regularization, self.min_child_weight
        left = np.cumsum(hist[:, :, :-1], axis=2)[:, :, None]  # (3, p, 1, n_bins-1) NaN right
        if has_nan.any():  # and with NaN left, listed right to left as scikit-learn scans them
            left = np.concatenate([left, (left + hist[:, :, -1:, None])[..., ::-1]], axis=2)
        (gl, hl, cl), (gr, hr, cr) = left, tot[:, None, None, None] - left
        with np.errstate(divide="ignore", invalid="ignore"):
            gain = 0.5 * (gl**2 / (hl + lam) + gr**2 / (hr + lam) - tot[0] ** 2 / (tot[1] + lam))
        ok = (cl >= self.min_samples_leaf) & (cr >= self.min_samples_leaf)
        ok &= (hl >= least_h) & (hr >= least_h)
        # one cut per partition, the first in scan order: skip cuts next to an empty bin,
        # and NaN-left cuts where the node has no NaN
        ok[:, 0] &= hist[2, :, :-1] > 0
        if ok.shape[1] == 2:
            ok[:, 1] &= (hist[2, :, 1:] > 0)[:, ::-1] & (hist[2, :, -1:] > 0)
        gain = np.where(ok, gain - self.gamma, -np.inf)
        f, side, i = np.unravel_index(np.argmax(gain), gain.shape)  # first best, feature-major
        b = i if side == 0 else hist.shape[2] - 2 - i  # bins <= b go left
        nan_left = bool(side) if has_nan[f] else bool(cl[f, side, i] > cr[f, side, i])
        return gain[f, side, i], f, b, nan_left, left[:, f, side, i]

    def _grow(self, bins_t, g, h, has_nan, root_counts):
        """One tree grown leaf-wise; returns it and {leaf: its rows} for the training update."""
        nodes = {k: [] for k in ("feature", "bin", "nan_left", "left", "right", "value")}
        leaves = {}  # node -> (rows, depth, sums of g, h and count (3,)) of the current leaves
        splits = {}  # node -> (best split, histograms) of the leaves that may still split
        n_bins = self.nan_bin_ + 1

        def add_leaf(rows, depth, tot):
            value = -tot[0] / (tot[1] + self.l2_regularization + 1e-15)  # -G / (H + lambda)
            for key, val in zip(nodes, (0, 0, False, -1, -1, value), strict=True):
                nodes[key].append(val)
            leaves[len(nodes["value"]) - 1] = (rows, depth, tot)
            if self.max_depth is not None and depth >= self.max_depth:
                return False
            return tot[2] >= 2 * self.min_samples_leaf and tot[1] >= self.min_child_weight

        n = len(g)
        if add_leaf(np.arange(n), 0, np.array([g.sum(), n if h is None else h.sum(), n])):
            hist = _histograms(bins_t, slice(None), g, h, n_bins, root_counts)  # every row
            splits[0] = (self._best_split(hist, leaves[0][2], has_nan), hist)
        while len(leaves) < self.max_leaf_nodes:
            splits = {k: v for k, v in splits.items() if v[0][0] > 0.0}
            if not splits:
                break
            node = max(splits, key=lambda k: splits[k][0][0])  # the best gain first
            (_, f, b, nan_left, left_tot), hist = splits.pop(node)
            rows, depth, tot = leaves.pop(node)
            x = bins_t[f][rows]  # (m,) uint8
            go_left = x <= b  # the NaN bin, the last one, goes right ...
            if nan_left:
                go_left |= x == self.nan_bin_  # ... unless the split sends it left
            # rows.compress(mask) keeps the order, several times faster than rows[mask] here
            parts = rows.compress(go_left), rows.compress(~go_left)
            sums = left_tot, tot - left_tot
            kids = len(nodes["value"]), len(nodes["value"]) + 1
            grow = [add_leaf(part, depth + 1, s) for part, s in zip(parts, sums, strict=True)]
            for key, val in zip(nodes, (f, b, nan_left, *kids), strict=False):
                nodes[key][node] = val
            if any(grow):
                small = int(len(parts[0]) >= len(parts[1]))  # build the smaller child's ...
                hists = [None, None]
                hists[small] = _histograms(bins_t, parts[small], g, h, n_bins)
                hists[1 - small] = hist - hists[small]  # ... the larger's is parent - smaller
                for kid, can, hk in zip(kids, grow, hists, strict=True):
                    if can:
                        splits[kid] = (self._best_split(hk, leaves[kid][2], has_nan), hk)
        value = np.array(nodes.pop("value")) * self.learning_rate  # shrinkage
        tree = HistTree(**{k: np.array(v) for k, v in nodes.items()}, value=value)
        return tree, {node: item[0] for node, item in leaves.items()}

    def _raw_predict(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64, ensure_all_finite="allow-nan")
        Xb = self._bin(X)
        raw = np.tile(self.baseline_, (len(X), 1))  # (n, K)
        for trees in self.trees_:
            for k, tree in enumerate(trees):
                raw[:, k] += tree.predict(Xb, self.nan_bin_)
        return raw


PARAMS_DOC = """
    Parameters
    ----------
    loss : {loss}
    learning_rate, max_iter (no early stopping), max_leaf_nodes, max_depth (root at depth 0),
    min_samples_leaf, l2_regularization (lambda), max_bins (<= 255, NaN aside) : as scikit-learn
    min_child_weight : float, least hessian sum per child (scikit-learn's min_hessian_to_split)
    gamma : float, least halved gain to split (scikit-learn's min_gain_to_split / 2)
    random_state : int, numpy Generator or None; picks the rows that set the bin edges when
        there are more than 200,000

    Attributes
    ----------
    trees_ : list (n_iter_,) of lists (n_trees_per_iteration_,) of :class:`HistTree`
    bin_edges_ : list (n_features,) of each feature's bin edges; nan_bin_ : int, the NaN bin
    baseline_ : (n_trees_per_iteration_,) the starting raw prediction; n_iter_ : int
"""


class HistGradientBoostingRegressor(RegressorMixin, _BaseHGB):
    __doc__ = "Second-order histogram boosting for regression." + PARAMS_DOC.format(
        loss='{"squared_error"}'
    )

    def __init__(self, loss="squared_error", *, learning_rate=0.1, max_iter=100, max_leaf_nodes=31,
                 max_depth=None, min_samples_leaf=20, l2_regularization=0.0, max_bins=255,
                 min_child_weight=1e-3, gamma=0.0, random_state=None):  # fmt: skip
        self.loss = loss
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.max_leaf_nodes = max_leaf_nodes
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.max_bins = max_bins
        self.min_child_weight = min_child_weight
        self.gamma = gamma
        self.random_state = random_state

    def fit(self, X, y):
        if self.loss != "squared_error":
            raise ValueError(f"loss must be 'squared_error', got {self.loss!r}.")
        X, y = validate_data(
            self, X, y, dtype=np.float64, ensure_all_finite="allow-nan", y_numeric=True
        )
        return self._boost(X, y.astype(np.float64)[:, None])

    def _baseline(self, Y):
        return Y.mean(0)  # (1,)

    def _gradients(self, Y, raw):
        return raw - Y, None  # half squared error: g = F - y, h = 1

    def predict(self, X):
        return self._raw_predict(X)[:, 0]


class HistGradientBoostingClassifier(ClassifierMixin, _BaseHGB):
    __doc__ = "Second-order histogram boosting with the log-loss." + PARAMS_DOC.format(
        loss='{"log_loss"}, binary (one tree per iteration) or multinomial (one per class)'
    )

    def __init__(self, loss="log_loss", *, learning_rate=0.1, max_iter=100, max_leaf_nodes=31,
                 max_depth=None, min_samples_leaf=20, l2_regularization=0.0, max_bins=255,
                 min_child_weight=1e-3, gamma=0.0, random_state=None):  # fmt: skip
        self.loss = loss
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.max_leaf_nodes = max_leaf_nodes
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.max_bins = max_bins
        self.min_child_weight = min_child_weight
        self.gamma = gamma
        self.random_state = random_state

    def fit(self, X, y):
        if self.loss != "log_loss":
            raise ValueError(f"loss must be 'log_loss', got {self.loss!r}.")
        X, y = validate_data(self, X, y, dtype=np.float64, ensure_all_finite="allow-nan")
        check_classification_targets(y)
        self.classes_, y_code = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"y contains {len(self.classes_)} class, while a minimum of 2 classes are required."
            )
        onehot = np.eye(len(self.classes_))[y_code]  # (n, n_classes)
        return self._boost(X, onehot[:, 1:] if len(self.classes_) == 2 else onehot)

    def _baseline(self, Y):
        eps = np.finfo(np.float64).eps
        prior = np.clip(Y.mean(0), eps, 1 - eps)  # (K,)
        if Y.shape[1] == 1:
            return np.log(prior / (1 - prior))  # log-odds
        return np.log(prior) - np.log(prior).mean()

    def _gradients(self, Y, raw):
        proba = _expit(raw) if Y.shape[1] == 1 else _softmax(raw)  # (n, K)
        return proba - Y, proba * (1.0 - proba)

    def decision_function(self, X):
        raw = self._raw_predict(X)  # (n, 1) if binary else (n, K)
        return raw[:, 0] if raw.shape[1] == 1 else raw

    def predict_proba(self, X):
        raw = self.decision_function(X)
        return _softmax(raw) if raw.ndim == 2 else np.column_stack([1 - _expit(raw), _expit(raw)])

    def predict(self, X):
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
