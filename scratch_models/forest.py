"""Random forests: ``RandomForestClassifier`` and ``RandomForestRegressor``.

Objective (Breiman 2001, *Random Forests*, Machine Learning 45): lower the variance of fully
grown CART trees by averaging many of them that are decorrelated in two ways.
Update rule: tree b is fitted on a bootstrap sample (n rows drawn with replacement, passed as
integer sample weights as scikit-learn does) and, at every node, searches only ``max_features``
randomly chosen features; the forest predicts the mean of the trees' class probabilities (or
values). Each row's out-of-bag (OOB) prediction averages the trees whose bootstrap missed it,
which gives a validation score without a held-out set.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from scratch_models.tree import DecisionTreeClassifier, DecisionTreeRegressor


class _BaseForest(BaseEstimator):
    def _fit_forest(self, X, y, tree_class, n_outputs):
        """Fit the trees; return the OOB sums of predictions (n, n_outputs) and counts (n,)."""
        if not (isinstance(self.n_estimators, (int, np.integer)) and self.n_estimators >= 1):
            raise ValueError(f"n_estimators must be an int >= 1, got {self.n_estimators!r}.")
        if self.oob_score and not self.bootstrap:
            raise ValueError("Out of bag estimation only available if bootstrap=True")
        for stale in ("oob_score_", "oob_decision_function_", "oob_prediction_"):
            self.__dict__.pop(stale, None)  # a second fit without oob_score keeps none
        n = len(y)
        rng = np.random.default_rng(self.random_state)
        seeds = rng.integers(np.iinfo(np.int32).max, size=self.n_estimators)  # one per tree
        params = {
            "criterion": self.criterion,
            "max_depth": self.max_depth,
            "min_samples_split": self.min_samples_split,
            "min_samples_leaf": self.min_samples_leaf,
            "max_features": self.max_features,
            "min_impurity_decrease": self.min_impurity_decrease,
        }
        self.estimators_ = []
        oob_sum, oob_count = np.zeros((n, n_outputs)), np.zeros(n)
        for seed in seeds:
            tree = tree_class(**params, random_state=int(seed))
            counts = np.ones(n)  # (n,) times each row is drawn
            if self.bootstrap:
                counts = np.bincount(np.random.default_rng(seed).integers(0, n, n), minlength=n)
            tree.fit(X, y, sample_weight=counts.astype(np.float64))
            self.estimators_.append(tree)
            if self.oob_score:
                out = np.flatnonzero(counts == 0)
                oob_sum[out] += self._tree_predict(tree, X[out])
                oob_count[out] += 1
        return oob_sum, oob_count

    @property
    def feature_importances_(self):
        """Mean of the trees' normalised impurity importances, renormalised (as scikit-learn)."""
        check_is_fitted(self)
        per_tree = [t.feature_importances_ for t in self.estimators_ if t.tree_.node_count > 1]
        if not per_tree:
            return np.zeros(self.n_features_in_)
        mean = np.mean(per_tree, axis=0)  # (n_features,)
        return mean / mean.sum()

    def _mean_prediction(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float32)
        return np.mean([self._tree_predict(t, X) for t in self.estimators_], axis=0)


class RandomForestClassifier(ClassifierMixin, _BaseForest):
    """Breiman's random forest of :class:`DecisionTreeClassifier` (scikit-learn's parameters).

    Parameters
    ----------
    n_estimators : int, number of trees
    criterion, max_depth, min_samples_split, min_samples_leaf, min_impurity_decrease : per tree
    max_features : features searched per split ("sqrt" by default)
    bootstrap : bool, fit each tree on a bootstrap sample (else on all rows)
    oob_score : bool, compute ``oob_score_`` (accuracy) and ``oob_decision_function_``
    random_state : int, numpy Generator or None

    Attributes
    ----------
    estimators_, classes_, n_classes_, feature_importances_, oob_score_,
    oob_decision_function_ (n_samples, n_classes); rows never out of bag are 0 there and
    left out of ``oob_score_``
    """

    def __init__(
        self,
        n_estimators=100,
        *,
        criterion="gini",
        max_depth=None,
        min_samples_split=2,
        min_samples_leaf=1,
        max_features="sqrt",
        min_impurity_decrease=0.0,
        bootstrap=True,
        oob_score=False,
        random_state=None,
    ):
        self.n_estimators = n_estimators
        self.criterion = criterion
        self.max_depth = max_depth
        self.min_samples_split = min_samples_split
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.min_impurity_decrease = min_impurity_decrease
        self.bootstrap = bootstrap
        self.oob_score = oob_score
        self.random_state = random_state

    def fit(self, X, y):
        X, y = validate_data(self, X, y, dtype=np.float32)
        check_classification_targets(y)
        self.classes_, y_code = np.unique(y, return_inverse=True)
        self.n_classes_ = len(self.classes_)
        oob_sum, oob_count = self._fit_forest(X, y_code, DecisionTreeClassifier, self.n_classes_)
        if self.oob_score:
            self.oob_decision_function_ = oob_sum / np.maximum(oob_count, 1)[:, None]
            hit = self.oob_decision_function_.argmax(1) == y_code  # (n,)
            self.oob_score_ = float(hit[oob_count > 0].mean())
        return self

    @staticmethod
    def _tree_predict(tree, X):
        return tree.predict_proba(X)  # (n, n_classes): every tree saw every class code

    def predict_proba(self, X):
        return self._mean_prediction(X)  # (n, n_classes)

    def predict(self, X):
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class RandomForestRegressor(RegressorMixin, _BaseForest):
    """Breiman's random forest of :class:`DecisionTreeRegressor` (scikit-learn's parameters).

    Parameters
    ----------
    as :class:`RandomForestClassifier`; ``max_features`` defaults to 1.0 (all features), and
    ``oob_score_`` is the OOB R^2.

    Attributes
    ----------
    estimators_, feature_importances_, oob_score_, oob_prediction_ (n_samples,)
    """

    def __init__(
        self,
        n_estimators=100,
        *,
        criterion="squared_error",
        max_depth=None,
        min_samples_split=2,
        min_samples_leaf=1,
        max_features=1.0,
        min_impurity_decrease=0.0,
        bootstrap=True,
        oob_score=False,
        random_state=None,
    ):
        self.n_estimators = n_estimators
        self.criterion = criterion
        self.max_depth = max_depth
        self.min_samples_split = min_samples_split
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.min_impurity_decrease = min_impurity_decrease
        self.bootstrap = bootstrap
        self.oob_score = oob_score
        self.random_state = random_state

    def fit(self, X, y):
        X, y = validate_data(self, X, y, dtype=np.float32, y_numeric=True)
        y = y.astype(np.float64)
        oob_sum, oob_count = self._fit_forest(X, y, DecisionTreeRegressor, 1)
        if self.oob_score:
            self.oob_prediction_ = oob_sum[:, 0] / np.maximum(oob_count, 1)  # (n,)
            seen = oob_count > 0
            residual = ((y - self.oob_prediction_)[seen] ** 2).sum()
            self.oob_score_ = float(1.0 - residual / ((y[seen] - y[seen].mean()) ** 2).sum())
        return self

    @staticmethod
    def _tree_predict(tree, X):
        return tree.predict(X)[:, None]  # (n, 1)

    def predict(self, X):
        return self._mean_prediction(X)[:, 0]  # (n,)
