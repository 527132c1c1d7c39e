"""Gradient tree boosting: ``GradientBoostingRegressor`` and ``GradientBoostingClassifier``.

Objective (Friedman 2001, *Greedy Function Approximation: A Gradient Boosting Machine*, Annals
of Statistics 29): minimise sum_i L(y_i, F(x_i)) over additive models
F = F_0 + nu * sum_m f_m, each f_m a small regression tree.
Update rule, stage m (Friedman's Algorithm 1): take the negative gradient
r_i = -dL/dF(x_i) at the current F; fit a CART regression tree to r on a row subsample; replace
each leaf's value by the loss's line search over the rows in it (the mean of r for squared
error, the median of y - F for absolute error, one Newton step sum(r) / sum(p (1 - p)) for
log-loss); then F <- F + nu * tree(x). F_0 is the mean, the median, or the log-odds of the
class priors. With several classes, each stage fits one tree per class on the softmax residual
and scales the Newton step by (K - 1) / K, as Friedman and scikit-learn do.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from scratch_models.tree import DecisionTreeRegressor


def _softmax(raw):
    z = np.exp(raw - raw.max(1, keepdims=True))  # (n, K)
    return z / z.sum(1, keepdims=True)


def _expit(raw):
    return np.exp(-np.logaddexp(0.0, -raw))  # 1 / (1 + e^-raw) without overflow


class _BaseGB(BaseEstimator):
    """Stage-wise fitting; subclasses give the start, the negative gradient and the leaf step."""

    def _boost(self, X, y, n_trees):
        """X (n, p) float32; y (n,) target or class codes; n_trees trees per stage."""
        if not (isinstance(self.n_estimators, (int, np.integer)) and self.n_estimators >= 1):
            raise ValueError(f"n_estimators must be an int >= 1, got {self.n_estimators!r}.")
        if not 0.0 < self.subsample <= 1.0:
            raise ValueError(f"subsample must be in (0, 1], got {self.subsample!r}.")
        if not self.learning_rate > 0.0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}.")
        n = len(y)
        rng = np.random.default_rng(self.random_state)
        n_inbag = max(1, int(self.subsample * n))
        self.baseline_ = self._start(y)  # (n_trees,) F_0
        raw = np.tile(self.baseline_, (n, 1))  # (n, n_trees)
        self.estimators_ = np.empty((self.n_estimators, n_trees), dtype=object)
        for stage in range(self.n_estimators):
            inbag = np.ones(n, dtype=bool)
            if n_inbag < n:
                inbag[rng.permutation(n)[n_inbag:]] = False
            residual = self._negative_gradient(y, raw)  # (n, n_trees)
            for k in range(n_trees):
                tree = DecisionTreeRegressor(
                    max_depth=self.max_depth,
                    min_samples_split=self.min_samples_split,
                    min_samples_leaf=self.min_samples_leaf,
                    max_features=self.max_features,
                    min_impurity_decrease=self.min_impurity_decrease,
                    random_state=int(rng.integers(np.iinfo(np.int32).max)),
                )
                tree.fit(X, residual[:, k], sample_weight=inbag.astype(np.float64))
                leaf = tree.tree_.apply(X)  # (n,) every row, out-of-bag ones too
                self._line_search(tree.tree_, leaf, inbag, y, raw, residual, k)
                raw[:, k] += self.learning_rate * tree.tree_.value[leaf, 0]
                self.estimators_[stage, k] = tree
        return self

    def _line_search(self, tree, leaf, inbag, y, raw, residual, k):
        """Overwrite the tree's leaf values with the loss's optimal step (in-bag rows only)."""

    def _raw_predict(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float32)
        raw = np.tile(self.baseline_, (len(X), 1))  # (n, n_trees)
        for trees in self.estimators_:
            for k, tree in enumerate(trees):
                raw[:, k] += self.learning_rate * tree.tree_.value[tree.tree_.apply(X), 0]
        return raw

    @property
    def feature_importances_(self):
        """Mean over the trees of their raw impurity decreases, normalised (as scikit-learn)."""
        check_is_fitted(self)
        trees = [t.tree_ for t in self.estimators_.ravel() if t.tree_.node_count > 1]
        if not trees:
            return np.zeros(self.n_features_in_)
        mean = np.mean([t.importances(self.n_features_in_, normalize=False) for t in trees], 0)
        return mean / mean.sum()


INIT_DOC = """
    Parameters
    ----------
    loss : {losses}
    learning_rate : float, the shrinkage nu applied to every tree
    n_estimators : int, number of boosting stages
    subsample : float in (0, 1], fraction of rows (drawn without replacement) per stage
    min_samples_split, min_samples_leaf, max_depth, min_impurity_decrease, max_features :
        passed to each :class:`~scratch_models.tree.DecisionTreeRegressor`
    random_state : int, numpy Generator or None; draws the row subsamples and tree seeds

    Attributes
    ----------
    estimators_ : ndarray of trees, shape (n_estimators, {n_trees})
    baseline_ : ndarray (n_trees,), the starting raw prediction F_0
    feature_importances_ : ndarray (n_features,)
"""


class GradientBoostingRegressor(RegressorMixin, _BaseGB):
    __doc__ = "Friedman's gradient boosting for regression." + INIT_DOC.format(
        losses='{"squared_error", "absolute_error"}', n_trees="1"
    )

    def __init__(
        self,
        *,
        loss="squared_error",
        learning_rate=0.1,
        n_estimators=100,
        subsample=1.0,
        min_samples_split=2,
        min_samples_leaf=1,
        max_depth=3,
        min_impurity_decrease=0.0,
        random_state=None,
        max_features=None,
    ):
        self.loss = loss
        self.learning_rate = learning_rate
        self.n_estimators = n_estimators
        self.subsample = subsample
        self.min_samples_split = min_samples_split
        self.min_samples_leaf = min_samples_leaf
        self.max_depth = max_depth
        self.min_impurity_decrease = min_impurity_decrease
        self.random_state = random_state
        self.max_features = max_features

    def fit(self, X, y):
        if self.loss not in ("squared_error", "absolute_error"):
            raise ValueError(
                f"loss must be 'squared_error' or 'absolute_error', got {self.loss!r}."
            )
        X, y = validate_data(self, X, y, dtype=np.float32, y_numeric=True)
        return self._boost(X, y.astype(np.float64), 1)

    def _start(self, y):
        return np.array([np.mean(y) if self.loss == "squared_error" else np.median(y)])

    def _negative_gradient(self, y, raw):
        if self.loss == "squared_error":
            return (y - raw[:, 0])[:, None]  # (n, 1)
        return np.sign(y - raw[:, 0])[:, None]

    def _line_search(self, tree, leaf, inbag, y, raw, residual, k):
        if self.loss == "squared_error":
            return  # the tree's leaf means already are the mean residuals
        for node in np.flatnonzero(tree.children_left == -1):
            rows = inbag & (leaf == node)
            tree.value[node, 0] = np.median(y[rows] - raw[rows, 0])

    def predict(self, X):
        return self._raw_predict(X)[:, 0]


class GradientBoostingClassifier(ClassifierMixin, _BaseGB):
    __doc__ = "Friedman's gradient boosting with the log-loss." + INIT_DOC.format(
        losses='{"log_loss"}', n_trees="1 if binary else n_classes"
    )

    def __init__(
        self,
        *,
        loss="log_loss",
        learning_rate=0.1,
        n_estimators=100,
        subsample=1.0,
        min_samples_split=2,
        min_samples_leaf=1,
        max_depth=3,
        min_impurity_decrease=0.0,
        random_state=None,
        max_features=None,
    ):
        self.loss = loss
        self.learning_rate = learning_rate
        self.n_estimators = n_estimators
        self.subsample = subsample
        self.min_samples_split = min_samples_split
        self.min_samples_leaf = min_samples_leaf
        self.max_depth = max_depth
        self.min_impurity_decrease = min_impurity_decrease
        self.random_state = random_state
        self.max_features = max_features

    def fit(self, X, y):
        if self.loss != "log_loss":
            raise ValueError(f"loss must be 'log_loss', got {self.loss!r}.")
        X, y = validate_data(self, X, y, dtype=np.float32)
        check_classification_targets(y)
        self.classes_, y_code = np.unique(y, return_inverse=True)
        self.n_classes_ = len(self.classes_)
        if self.n_classes_ < 2:
            raise ValueError(
                f"y contains {self.n_classes_} class, while a minimum of 2 classes are required."
            )
        return self._boost(X, y_code, 1 if self.n_classes_ == 2 else self.n_classes_)

    def _start(self, y):
        eps = np.finfo(np.float64).eps
        prior = np.clip(np.bincount(y, minlength=self.n_classes_) / len(y), eps, 1 - eps)  # (K,)
        if self.n_classes_ == 2:
            return np.log(prior[1:] / prior[0])  # (1,) log-odds
        return np.log(prior) - np.log(prior).mean()  # (K,) centred log-priors

    def _onehot(self, y):
        return y[:, None] if self.n_classes_ == 2 else np.eye(self.n_classes_)[y]  # (n, n_trees)

    def _negative_gradient(self, y, raw):
        proba = _expit(raw) if self.n_classes_ == 2 else _softmax(raw)  # (n, n_trees)
        return self._onehot(y) - proba

    def _line_search(self, tree, leaf, inbag, y, raw, residual, k):
        r = residual[inbag, k]  # (n_inbag,) y - p
        p = self._onehot(y[inbag])[:, k] - r
        size = len(tree.value)
        num = np.bincount(leaf[inbag], weights=r, minlength=size)  # (n_nodes,)
        den = np.bincount(leaf[inbag], weights=p * (1.0 - p), minlength=size)
        if self.n_classes_ > 2:
            num *= (self.n_classes_ - 1) / self.n_classes_
        step = np.where(np.abs(den) < 1e-150, 0.0, num / np.where(den == 0.0, 1.0, den))
        leaves = tree.children_left == -1
        tree.value[leaves, 0] = step[leaves]

    def decision_function(self, X):
        raw = self._raw_predict(X)  # (n, n_trees)
        return raw[:, 0] if self.n_classes_ == 2 else raw

    def predict_proba(self, X):
        raw = self._raw_predict(X)
        if self.n_classes_ == 2:
            p = _expit(raw[:, 0])
            return np.column_stack([1.0 - p, p])  # (n, 2)
        return _softmax(raw)  # (n, K)

    def predict(self, X):
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
