"""CART decision trees: ``DecisionTreeClassifier`` and ``DecisionTreeRegressor``.

Objective (Breiman, Friedman, Olshen & Stone 1984, *Classification and Regression Trees*):
grow a binary tree greedily. At a node t of weight N_t (N at the root), every cut
``x_j <= s`` is scored by the weighted impurity decrease

    dI = N_t / N * (I(t) - N_tL / N_t * I(t_L) - N_tR / N_t * I(t_R)),

with I the Gini index 1 - sum_k p_k^2, the entropy -sum_k p_k log2 p_k, or the variance of y.
Update rule: sort the rows by every feature once, at the root; a node keeps, per feature, its
own rows in that order (a split partitions each order stably, which keeps it sorted). At each
node take cumulative class counts (or sums of y) along the candidate features' orders and score
every cut between two distinct values in one vectorised pass; the best cut's threshold is the
midpoint of its two values. Recurse depth first
until a node is pure, too small, too deep, or its best decrease is under
``min_impurity_decrease``. Leaves predict class frequencies (classifier) or the mean (regressor).

As in scikit-learn, X is cast to float32, values closer than 1e-7 count as ties, zero-weight rows
are dropped, and features are visited in a random order, so that a cut scoring exactly as well
on two features goes to a random one: with no such ties and no feature sampling the tree is the
same as scikit-learn's. Unlike scikit-learn's, this tree refuses NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

FEATURE_THRESHOLD = 1e-7  # closer values are ties, as in scikit-learn's splitter
EPSILON = np.finfo(np.float64).eps  # a node this impure is pure
LEAF = -1
BLOCK_CELLS = 2**22  # most cells of a (rows, features, classes) cumsum held at once


@dataclass
class Tree:
    """A fitted binary tree in flat arrays; node 0 is the root, ``children_left == -1`` a leaf."""

    children_left: np.ndarray  # (n_nodes,)
    children_right: np.ndarray  # (n_nodes,)
    feature: np.ndarray  # (n_nodes,) -1 at leaves
    threshold: np.ndarray  # (n_nodes,) rows with x[feature] <= threshold go left
    value: np.ndarray  # (n_nodes, n_values) class frequencies, or the mean of y
    impurity: np.ndarray  # (n_nodes,)
    weighted_n_node_samples: np.ndarray  # (n_nodes,)

    @property
    def node_count(self) -> int:
        return len(self.feature)

    def importances(self, n_features: int, normalize: bool = True) -> np.ndarray:
        """Impurity decrease per feature, weighted by node weight over the root's weight."""
        inner = np.flatnonzero(self.children_left != LEAF)
        wi = self.weighted_n_node_samples * self.impurity  # (n_nodes,)
        drop = wi[inner] - wi[self.children_left[inner]] - wi[self.children_right[inner]]
        imp = np.bincount(self.feature[inner], weights=drop, minlength=n_features)
        imp = imp / self.weighted_n_node_samples[0]  # (n_features,)
        return imp / imp.sum() if normalize and imp.sum() > 0.0 else imp

    def apply(self, X: np.ndarray) -> np.ndarray:
        """Leaf index of each row, walking all rows down one level per step."""
        node = np.zeros(len(X), dtype=np.intp)  # (n_samples,)
        rows = np.flatnonzero(self.children_left[node] != LEAF)
        while rows.size:
            at = node[rows]
            go_left = X[rows, self.feature[at]] <= self.threshold[at]
            node[rows] = np.where(go_left, self.children_left[at], self.children_right[at])
            rows = rows[self.children_left[node[rows]] != LEAF]
        return node


def resolve_max_features(max_features, n_features: int) -> int:
    """scikit-learn's reading of ``max_features`` as a number of features."""
    if max_features is None:
        return n_features
    if max_features in ("sqrt", "log2"):
        return max(1, int((np.sqrt if max_features == "sqrt" else np.log2)(n_features)))
    if isinstance(max_features, (int, np.integer)) and max_features >= 1:
        return min(int(max_features), n_features)
    if isinstance(max_features, float) and 0.0 < max_features <= 1.0:
        return max(1, int(max_features * n_features))
    allowed = "None, 'sqrt', 'log2', an int >= 1 or a float in (0, 1]"
    raise ValueError(f"max_features must be {allowed}, got {max_features!r}.")


def _resolve_count(value, n_samples: int, name: str, minimum: int) -> int:
    """An int count, or a float fraction of the rows rounded up (scikit-learn's convention)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= minimum:
        return int(value)
    if isinstance(value, float) and 0.0 < value <= 1.0:
        return max(minimum, int(np.ceil(value * n_samples)))
    raise ValueError(f"{name} must be an int >= {minimum} or a float in (0, 1], got {value!r}.")


def impurity(criterion: str, w, stats, sq=None):
    """Impurity of nodes of weight w (...,): stats (..., K) holds class weights, or (..., 1)
    the sum of w*y with sq (...,) the sum of w*y^2."""
    if criterion == "gini":
        return 1.0 - (stats * stats).sum(-1) / (w * w)
    if criterion in ("entropy", "log_loss"):
        p = stats / w[..., None]
        with np.errstate(divide="ignore", invalid="ignore"):
            return -np.where(p > 0.0, p * np.log2(p), 0.0).sum(-1)
    return sq / w - (stats[..., 0] / w) ** 2


class _BaseTree(BaseEstimator):
    """The growing machinery; subclasses turn y into per-row statistics and read the leaves."""

    def _grow(self, X, stats, w, sq):
        """X (n, p) float32; stats (n, K) per row w*onehot(y) or w*y; w (n,); sq w*y^2 or None."""
        if self.max_depth is not None and not self.max_depth >= 1:
            raise ValueError(f"max_depth must be None or an int >= 1, got {self.max_depth!r}.")
        if not self.min_impurity_decrease >= 0.0:
            raise ValueError("min_impurity_decrease must be >= 0.")
        n, p = X.shape
        self.max_features_ = resolve_max_features(self.max_features, p)
        leaf_min = _resolve_count(self.min_samples_leaf, n, "min_samples_leaf", 1)
        split_min = _resolve_count(self.min_samples_split, n, "min_samples_split", 2)
        max_depth = np.inf if self.max_depth is None else self.max_depth
        rng = np.random.default_rng(self.random_state)
        keep = w > 0
        X, stats, w, sq = X[keep], stats[keep], w[keep], None if sq is None else sq[keep]

        def sums(rows):  # weight, stats (K,) and impurity of a node; a classifier's weight is
            s = stats[rows].sum(0)  # the sum of its class weights, so a pure node has impurity 0
            wn, sqn = (s.sum(), None) if sq is None else (w[rows].sum(), sq[rows].sum())
            return wn, s, impurity(self.criterion, wn, s, sqn)

        cap = 2 * len(w) - 1  # most nodes a binary tree on these rows can have
        t = Tree(np.full(cap, LEAF), np.full(cap, LEAF), np.full(cap, -1), np.full(cap, -2.0),
                 np.zeros((cap, stats.shape[1])), np.zeros(cap), np.zeros(cap))  # fmt: skip
        root = np.arange(len(w))
        # (p, n): each feature's rows in ascending order of its values, ties by row (stable)
        order = np.argsort(X, axis=0, kind="stable").T
        stack = [(root, order, 0, -1, True, *sums(root))]
        W, count = stack[0][5], 0  # (rows, order, depth, parent, is_left, w, stats, imp)
        go_left = np.zeros(len(w), dtype=bool)
        while stack:
            rows, order, depth, parent, is_left, wn, tot, imp = stack.pop()
            node, count = count, count + 1
            if parent >= 0:
                (t.children_left if is_left else t.children_right)[parent] = node
            t.value[node], t.impurity[node], t.weighted_n_node_samples[node] = tot / wn, imp, wn
            m = len(rows)
            if depth >= max_depth or m < split_min or m < 2 * leaf_min or imp <= EPSILON:
                continue
            split = self._best_split(X, stats, w, rows, order, tot, wn, leaf_min, rng)
            if split is None:
                continue
            f, thr = split
            to_left = X[rows, f] <= thr  # (m,)
            left, right = rows[to_left], rows[~to_left]
            (w_l, s_l, imp_l), (w_r, s_r, imp_r) = sums(left), sums(right)
            decrease = wn / W * (imp - w_r / wn * imp_r - w_l / wn * imp_l)  # dI
            if decrease + EPSILON < self.min_impurity_decrease:
                continue
            t.feature[node], t.threshold[node] = f, thr
            go_left[left] = True  # partition every feature's order, each stays sorted
            in_left = go_left[order]  # (p, m)
            go_left[left] = False
            p_l = order[in_left].reshape(p, len(left))
            p_r = order[~in_left].reshape(p, len(right))
            stack.append((right, p_r, depth + 1, node, False, w_r, s_r, imp_r))
            stack.append((left, p_l, depth + 1, node, True, w_l, s_l, imp_l))  # popped first
        self.tree_ = Tree(*(a[:count] for a in vars(t).values()))
        self.feature_importances_ = self.tree_.importances(p)

    def _best_split(self, X, stats, w, rows, order, tot, wn, leaf_min, rng):
        """Best (feature, threshold) of a node, or None; ``order`` (p, m) holds its rows sorted
        by each feature.

        Like scikit-learn, visit the features in a random order: the first ``max_features``,
        then more one at a time only while every visited feature was constant."""
        m, p = len(rows), X.shape[1]
        k, perm = self.max_features_, rng.permutation(p)
        if m == 2:  # half the nodes of a deep tree: every cut is the same one, so the first
            pair = X[rows].astype(np.float64)  # feature (in visiting order) that varies wins
            lo, hi = pair.min(0), pair.max(0)
            varying = perm[(hi > lo + FEATURE_THRESHOLD)[perm]]
            return (
                None
                if varying.size == 0
                else (varying[0], lo[varying[0]] / 2.0 + hi[varying[0]] / 2.0)
            )
        n_left = np.arange(1, m)[:, None]  # (m-1, 1) rows left of each cut
        size_ok = (n_left >= leaf_min) & (m - n_left >= leaf_min)  # (m-1, 1)
        block = max(1, BLOCK_CELLS // (m * stats.shape[1]))  # features per vectorised pass
        visited, any_varies, best = 0, False, (-np.inf, None, None)
        while visited < p and (visited < k or not any_varies):
            feats = perm[visited : visited + min(block, k - visited if visited < k else k)]
            score, thr, varies = self._scan(X, stats, w, order[feats].T, feats, tot, wn, size_ok)
            if visited >= k:  # past max_features only the first non-constant feature counts
                keep = np.flatnonzero(varies)[:1]
                feats, score, thr = feats[keep], score[keep], thr[keep]
            visited += len(varies)
            any_varies |= bool(varies.any())
            if score.size and score.max() > best[0]:
                j = int(score.argmax())  # the first best feature in visiting order
                best = (score[j], feats[j], thr[j])
        return None if best[1] is None else (best[1], best[2])

    def _scan(self, X, stats, w, sorted_rows, feats, tot, wn, size_ok):
        """Score every cut of each feature in ``feats`` (f,), whose rows ``sorted_rows`` (m, f)
        are in ascending order of its values, by scikit-learn's proxy of dI: the best score
        (f,), its threshold (f,), and whether the feature varies (f,)."""
        cols = np.arange(len(feats))  # (f,)
        xs = X[sorted_rows, feats].astype(np.float64)  # (m, f) sorted values
        w_left = np.cumsum(w[sorted_rows], axis=0)[:-1]  # (m-1, f)
        w_right = wn - w_left
        if self.criterion == "squared_error":  # sum_L^2 / w_L + sum_R^2 / w_R
            s_left = np.cumsum(stats[:, 0][sorted_rows], axis=0)[:-1]  # (m-1, f): 2-d
            s_right = tot[0] - s_left
            proxy = s_left * s_left / w_left + s_right * s_right / w_right
        else:  # -(w_L * I_L + w_R * I_R)
            s_left = np.cumsum(stats[sorted_rows], axis=0)[:-1]  # (m-1, f, K)
            s_right = tot - s_left
            proxy = -w_right * impurity(self.criterion, w_right, s_right)
            proxy -= w_left * impurity(self.criterion, w_left, s_left)
        ok = size_ok & (xs[1:] > xs[:-1] + FEATURE_THRESHOLD)  # (m-1, f)
        proxy = np.where(ok, proxy, -np.inf)
        pos = proxy.argmax(0)  # (f,) the first best cut, as scikit-learn's left-to-right scan
        thr = xs[pos, cols] / 2.0 + xs[np.minimum(pos + 1, len(xs) - 1), cols] / 2.0
        return proxy[pos, cols], thr, xs[-1] > xs[0] + FEATURE_THRESHOLD

    def apply(self, X):
        """Index of the leaf each row lands in."""
        check_is_fitted(self)
        return self.tree_.apply(validate_data(self, X, reset=False, dtype=np.float32))


PARAMS = """
    Parameters
    ----------
    criterion : {criteria}
    max_depth : int or None
    min_samples_split, min_samples_leaf : int, or a float fraction of the rows
    max_features : int, float, "sqrt", "log2" or None (all); features searched per node
    random_state : int, numpy Generator or None; the order features are visited in
    min_impurity_decrease : float, the least weighted impurity decrease dI of a split

    Attributes
    ----------
    tree_ : :class:`Tree`; feature_importances_ : (n_features,); max_features_ : int{extra}
"""


class DecisionTreeClassifier(ClassifierMixin, _BaseTree):
    __doc__ = "CART classifier, scikit-learn's parameters and attributes." + PARAMS.format(
        criteria='{"gini", "entropy", "log_loss"}', extra="; classes_; n_classes_"
    )

    def __init__(self, *, criterion="gini", max_depth=None, min_samples_split=2,
                 min_samples_leaf=1, max_features=None, random_state=None,
                 min_impurity_decrease=0.0):  # fmt: skip
        self.criterion = criterion
        self.max_depth = max_depth
        self.min_samples_split = min_samples_split
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.random_state = random_state
        self.min_impurity_decrease = min_impurity_decrease

    def fit(self, X, y, sample_weight=None):
        if self.criterion not in ("gini", "entropy", "log_loss"):
            raise ValueError(
                f"criterion must be gini, entropy or log_loss, got {self.criterion!r}."
            )
        X, y = validate_data(self, X, y, dtype=np.float32)
        check_classification_targets(y)
        w = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        self.classes_, y_code = np.unique(y, return_inverse=True)
        self.n_classes_ = len(self.classes_)
        self._grow(X, np.eye(self.n_classes_)[y_code] * w[:, None], w, None)  # (n, K) w*onehot
        return self

    def predict_proba(self, X):
        check_is_fitted(self)
        proba = self.tree_.value[self.apply(X)]  # (n, K)
        return proba / proba.sum(1, keepdims=True)

    def predict(self, X):
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class DecisionTreeRegressor(RegressorMixin, _BaseTree):
    __doc__ = "CART regressor, scikit-learn's parameters and attributes." + PARAMS.format(
        criteria='{"squared_error"}', extra=""
    )

    def __init__(self, *, criterion="squared_error", max_depth=None, min_samples_split=2,
                 min_samples_leaf=1, max_features=None, random_state=None,
                 min_impurity_decrease=0.0):  # fmt: skip
        self.criterion = criterion
        self.max_depth = max_depth
        self.min_samples_split = min_samples_split
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.random_state = random_state
        self.min_impurity_decrease = min_impurity_decrease

    def fit(self, X, y, sample_weight=None):
        if self.criterion != "squared_error":
            raise ValueError(f"criterion must be 'squared_error', got {self.criterion!r}.")
        X, y = validate_data(self, X, y, dtype=np.float32, y_numeric=True)
        y = y.astype(np.float64)
        w = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        self._grow(X, (w * y)[:, None], w, w * y * y)
        return self

    def predict(self, X):
        check_is_fitted(self)
        return self.tree_.value[self.apply(X), 0]
