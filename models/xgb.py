"""XGBoost behind kfw's estimator contract: categorical support, constructor-side early stopping."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin

from kfw.core import budget
from models._tabular import RoundsModel, WeightedModel, library_params


class _Budget:
    """An XGBoost training callback that stops boosting once the time budget has passed."""

    cut = False

    @classmethod
    def make(cls) -> Any:
        import xgboost as xgb

        class Stop(xgb.callback.TrainingCallback):
            cut = False

            def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
                self.cut = budget.expired()
                return self.cut  # True stops training

        return Stop()


class _XGB(WeightedModel, RoundsModel):
    """Parameters are XGBoost's scikit-learn names; ``extra`` passes any other XGBoost one.

    ``early_stopping_rounds`` is a constructor argument in XGBoost; the wrapper sets it only
    when the fold loop gives an ``eval_set``.
    """

    def __init__(
        self,
        n_estimators: int = 2000,
        learning_rate: float = 0.05,
        max_depth: int = 6,
        min_child_weight: float = 1.0,
        subsample: float = 1.0,
        colsample_bytree: float = 1.0,
        reg_alpha: float = 0.0,
        reg_lambda: float = 1.0,
        gamma: float = 0.0,
        max_bin: int = 256,
        max_cat_to_onehot: int = 4,
        early_stopping_rounds: int | None = 100,
        random_state: int = 0,
        n_jobs: int = 1,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.min_child_weight = min_child_weight
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_alpha = reg_alpha
        self.reg_lambda = reg_lambda
        self.gamma = gamma
        self.max_bin = max_bin
        self.max_cat_to_onehot = max_cat_to_onehot
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
        import xgboost as xgb

        params = library_params(self)
        if eval_set is None or not self.early_stopping_rounds:
            params["early_stopping_rounds"] = None
        params.update(tree_method="hist", enable_categorical=True, verbosity=0)
        watch = _Budget.make() if budget.deadline() is not None else None
        if watch is not None:
            params["callbacks"] = [watch]
        cls = xgb.XGBClassifier if self._is_classifier() else xgb.XGBRegressor
        model = cls(**params)
        model.fit(
            X,
            y,
            sample_weight=sample_weight,
            eval_set=[eval_set] if eval_set is not None else None,
            verbose=False,
        )
        stopped = params["early_stopping_rounds"] is not None
        # rounds kept by early stopping; None when it was off (all rounds used)
        self.best_iteration_ = None
        if stopped:  # a fit the budget cut before a first evaluation has no best: all it has
            booster = model.get_booster()
            best = booster.attr("best_iteration")
            self.best_iteration_ = (
                int(best) + 1 if best is not None else booster.num_boosted_rounds()
            )
        self.feature_importances_ = model.feature_importances_
        self.out_of_time_ = bool(watch is not None and watch.cut)
        return model


class XGBRegressor(RegressorMixin, _XGB):
    """XGBoost regression."""


class XGBClassifier(ClassifierMixin, _XGB):
    """XGBoost classification (binary or multiclass)."""


def search_space(trial: Any, task: str) -> dict[str, Any]:
    """Optuna search space for ``kfw tune`` (boosting rounds are left to early stopping)."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.005, 0.2, log=True),
        "max_depth": trial.suggest_int("max_depth", 2, 10),
        "min_child_weight": trial.suggest_float("min_child_weight", 0.1, 30.0, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.1, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 30.0, log=True),
        "gamma": trial.suggest_float("gamma", 1e-4, 1.0, log=True),
    }
