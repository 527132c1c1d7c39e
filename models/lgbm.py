"""LightGBM behind kfw's estimator contract: native categoricals, early stopping on the fold."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin

from kfw.core import budget
from models._tabular import RoundsModel, WeightedModel, library_params

# kfw's own parameters, not LightGBM's
_OWN = ("early_stopping_rounds",)


class _LGBM(WeightedModel, RoundsModel):
    """Parameters are LightGBM's scikit-learn names; ``extra`` passes any other LightGBM one.

    ``n_estimators`` is the cap on boosting rounds; with an ``eval_set`` (the fold's validation
    part) training stops after ``early_stopping_rounds`` rounds without improvement and the
    best iteration predicts.
    """

    def __init__(
        self,
        n_estimators: int = 2000,
        learning_rate: float = 0.05,
        num_leaves: int = 31,
        max_depth: int = -1,
        min_child_samples: int = 20,
        subsample: float = 1.0,
        subsample_freq: int = 0,
        colsample_bytree: float = 1.0,
        reg_alpha: float = 0.0,
        reg_lambda: float = 0.0,
        min_split_gain: float = 0.0,
        max_bin: int = 255,
        early_stopping_rounds: int | None = 100,
        random_state: int = 0,
        n_jobs: int = 1,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.max_depth = max_depth
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.subsample_freq = subsample_freq
        self.colsample_bytree = colsample_bytree
        self.reg_alpha = reg_alpha
        self.reg_lambda = reg_lambda
        self.min_split_gain = min_split_gain
        self.max_bin = max_bin
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
        import lightgbm as lgb

        # deterministic + col-wise: the same seed and thread count give identical trees
        params = {"verbose": -1, "deterministic": True, "force_col_wise": True}
        params.update(library_params(self, exclude=_OWN))
        cls = lgb.LGBMClassifier if self._is_classifier() else lgb.LGBMRegressor
        model = cls(**params)
        callbacks = []
        stopping = eval_set is not None and bool(self.early_stopping_rounds)
        if stopping:
            callbacks.append(lgb.early_stopping(self.early_stopping_rounds, verbose=False))
        cut: list[int] = []  # the round the time budget stopped at (kfw.core.budget)
        if budget.deadline() is not None:

            def out_of_time(env: Any) -> None:
                if budget.expired():
                    cut.append(env.iteration)
                    raise lgb.callback.EarlyStopException(env.iteration, env.evaluation_result_list)

            out_of_time.order = 40  # type: ignore[attr-defined]  # after early stopping's 30
            callbacks.append(out_of_time)
        fit_kwargs: dict[str, Any] = {"callbacks": callbacks, "sample_weight": sample_weight}
        if eval_set is not None:
            # LightGBM 4.7 renamed eval_set to eval_X / eval_y
            if "eval_X" in inspect.signature(model.fit).parameters:
                fit_kwargs.update(eval_X=(eval_set[0],), eval_y=(eval_set[1],))
            else:
                fit_kwargs["eval_set"] = [eval_set]
        model.fit(X, y, **fit_kwargs)
        # rounds kept by early stopping; None when it was off (all rounds used)
        self.best_iteration_ = (
            int(model.best_iteration_) if stopping and model.best_iteration_ else None
        )
        self.out_of_time_ = bool(cut)
        self.feature_importances_ = model.booster_.feature_importance("gain")
        return model


class LGBMRegressor(RegressorMixin, _LGBM):
    """LightGBM regression."""


class LGBMClassifier(ClassifierMixin, _LGBM):
    """LightGBM classification (binary or multiclass)."""


def search_space(trial: Any, task: str) -> dict[str, Any]:
    """Optuna search space for ``kfw tune`` (boosting rounds are left to early stopping)."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.005, 0.2, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 4, 128, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 3, 100, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "subsample_freq": 1,
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.1, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 30.0, log=True),
    }
