"""CatBoost behind kfw's estimator contract: category columns as ``cat_features``."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin

from kfw.core import budget
from models._tabular import (
    RoundsModel,
    WeightedModel,
    categorical_columns,
    is_frame,
    library_params,
)

_OWN = ("early_stopping_rounds",)


class _Budget:
    """A CatBoost callback that stops boosting once the time budget has passed."""

    cut = False

    def after_iteration(self, info: Any) -> bool:
        self.cut = budget.expired()
        return not self.cut  # False stops training


def _as_catboost_frame(X: Any, cat_cols: list[str]) -> Any:
    """CatBoost wants categorical values as strings (or ints), with missing as a value."""
    if not cat_cols:
        return X
    X = X.copy()
    for c in cat_cols:
        X[c] = X[c].astype("object").where(X[c].notna(), "__missing__").astype(str)
    return X


class _Cat(WeightedModel, RoundsModel):
    """Parameters are CatBoost's names; ``extra`` passes any other CatBoost one."""

    _ROUNDS = "iterations"

    def __init__(
        self,
        iterations: int = 3000,
        learning_rate: float = 0.05,
        depth: int = 6,
        l2_leaf_reg: float = 3.0,
        random_strength: float = 1.0,
        bagging_temperature: float = 1.0,
        border_count: int = 254,
        one_hot_max_size: int = 2,
        early_stopping_rounds: int | None = 200,
        random_state: int = 0,
        n_jobs: int = 1,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.iterations = iterations
        self.learning_rate = learning_rate
        self.depth = depth
        self.l2_leaf_reg = l2_leaf_reg
        self.random_strength = random_strength
        self.bagging_temperature = bagging_temperature
        self.border_count = border_count
        self.one_hot_max_size = one_hot_max_size
        self.early_stopping_rounds = early_stopping_rounds
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.extra = extra

    def _fit_model(
        self,
        X: Any,
        y: np.ndarray,
        eval_set: tuple[Any, np.ndarray] | None,
        sample_weight: np.ndarray | None = None,
    ) -> Any:
        import catboost

        params = library_params(self, exclude=_OWN)
        params["random_seed"] = params.pop("random_state")
        params["thread_count"] = params.pop("n_jobs")
        self.cat_features_ = categorical_columns(X)
        params.update(
            verbose=False, allow_writing_files=False, cat_features=self.cat_features_ or None
        )
        if self._is_classifier():
            model = catboost.CatBoostClassifier(**params)
        else:
            model = catboost.CatBoostRegressor(**params)
        fit_kwargs: dict[str, Any] = {}
        if eval_set is not None and self.early_stopping_rounds:
            fit_kwargs.update(
                eval_set=(_as_catboost_frame(eval_set[0], self.cat_features_), eval_set[1]),
                early_stopping_rounds=self.early_stopping_rounds,
                use_best_model=True,
            )
        watch = _Budget() if budget.deadline() is not None else None
        if watch is not None:
            fit_kwargs["callbacks"] = [watch]
        frame = _as_catboost_frame(X, self.cat_features_)
        model.fit(frame, y, sample_weight=sample_weight, **fit_kwargs)
        self.out_of_time_ = bool(watch is not None and watch.cut)
        best = model.get_best_iteration() if fit_kwargs else None
        # rounds kept by early stopping; None when it was off (all rounds used)
        self.best_iteration_ = int(best) + 1 if best is not None else None
        self.feature_importances_ = np.asarray(model.get_feature_importance())
        return model

    def _predict_raw(self, X: Any) -> np.ndarray:
        X = _as_catboost_frame(X, self.cat_features_) if is_frame(X) else X
        return super()._predict_raw(X)


class CatBoostRegressor(RegressorMixin, _Cat):
    """CatBoost regression."""


class CatBoostClassifier(ClassifierMixin, _Cat):
    """CatBoost classification (binary or multiclass)."""


def search_space(trial: Any, task: str) -> dict[str, Any]:
    """Optuna search space for ``kfw tune`` (iterations are left to early stopping)."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
        "depth": trial.suggest_int("depth", 3, 8),
        "l2_leaf_reg": trial.suggest_float("l2_leaf_reg", 0.1, 30.0, log=True),
        "random_strength": trial.suggest_float("random_strength", 0.1, 10.0, log=True),
        "bagging_temperature": trial.suggest_float("bagging_temperature", 0.0, 2.0),
    }
