"""Random forests and extremely randomised trees, categories coded as integers inside."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.pipeline import make_pipeline

from kfw.core import budget
from models._design import design
from models._tabular import WeightedModel, final_step_weights

GROW = 25  # trees added at a time under a time budget (kfw.core.budget)


class _Forest(WeightedModel):
    _extra_trees = False

    def __init__(
        self,
        n_estimators: int = 500,
        max_depth: int | None = None,
        min_samples_leaf: int = 1,
        max_features: float | str | None = "sqrt",
        random_state: int = 0,
        n_jobs: int = 1,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _fit_model(
        self, X: Any, y: np.ndarray, eval_set: Any, sample_weight: np.ndarray | None = None
    ) -> Any:
        del eval_set  # bagging has no rounds to stop
        from sklearn import ensemble

        kind = "ExtraTrees" if self._extra_trees else "RandomForest"
        kind += "Classifier" if self._is_classifier() else "Regressor"
        forest = getattr(ensemble, kind)(**self.get_params())
        # trees need no scaling; numeric NaN goes to the trees' own missing-value handling
        pipe = make_pipeline(design(X, one_hot=False, scale=None), forest)
        self.out_of_time_ = False
        if budget.deadline() is None:
            pipe.fit(X, y, **final_step_weights(pipe, sample_weight))
        else:  # under a time budget: grown GROW trees at a time until it is spent
            Xd = pipe[0].fit_transform(X, y)
            total = forest.n_estimators
            forest.set_params(warm_start=True)
            for n in range(GROW, total + GROW, GROW):
                forest.set_params(n_estimators=min(n, total))
                forest.fit(Xd, y, sample_weight=sample_weight)
                if budget.expired() and n < total:
                    self.out_of_time_ = True
                    break
            forest.set_params(warm_start=False, n_estimators=total)
        self.feature_importances_ = forest.feature_importances_
        self.importance_names_ = pipe[0].get_feature_names_out()
        return pipe


class RandomForestRegressor(RegressorMixin, _Forest):
    """Bagged CART regression trees with feature subsampling."""


class RandomForestClassifier(ClassifierMixin, _Forest):
    """Bagged CART classification trees with feature subsampling."""


class ExtraTreesRegressor(RegressorMixin, _Forest):
    """Extremely randomised regression trees."""

    _extra_trees = True


class ExtraTreesClassifier(ClassifierMixin, _Forest):
    """Extremely randomised classification trees."""

    _extra_trees = True


def search_space(trial: Any, task: str) -> dict[str, Any]:
    """Optuna search space for ``kfw tune``."""
    return {
        "max_depth": trial.suggest_int("max_depth", 3, 30, log=True),
        "min_samples_leaf": trial.suggest_int("min_samples_leaf", 1, 30, log=True),
        "max_features": trial.suggest_float("max_features", 0.1, 1.0),
    }
