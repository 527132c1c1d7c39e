"""Penalised linear models with their preprocessing inside: impute, scale, one-hot.

Every class takes ``scaler`` (``"standard"`` or ``"robust"``: median / IQR, which a few huge
values move less) and ``min_frequency`` (categories rarer than this in the training part
share one one-hot column), so the design matrix is fitted per fold like everything else.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.pipeline import make_pipeline

from models._design import design
from models._tabular import WeightedModel, final_step_weights


class DesignMatrixModel(WeightedModel):
    """A scikit-learn model behind the per-fold design matrix (impute, scale, one-hot)."""

    def _make(self) -> Any:
        raise NotImplementedError  # abstract: the scikit-learn linear model

    def _fit_model(
        self, X: Any, y: np.ndarray, eval_set: Any, sample_weight: np.ndarray | None = None
    ) -> Any:
        del eval_set  # closed-form / convex: nothing to stop early
        matrix = design(X, one_hot=True, scale=self.scaler, min_frequency=self.min_frequency)
        pipe = make_pipeline(matrix, self._make())
        pipe.fit(X, y, **final_step_weights(pipe, sample_weight))
        if hasattr(pipe[-1], "n_iter_"):  # iterative solvers report their iterations
            self.n_iter_ = pipe[-1].n_iter_
        return pipe


class Ridge(RegressorMixin, DesignMatrixModel):
    """L2-penalised least squares."""

    def __init__(
        self, alpha: float = 10.0, scaler: str = "standard", min_frequency: int | None = 3
    ) -> None:
        self.alpha = alpha
        self.scaler = scaler
        self.min_frequency = min_frequency

    def _make(self) -> Any:
        from sklearn.linear_model import Ridge as SkRidge

        return SkRidge(alpha=self.alpha)


class Lasso(RegressorMixin, DesignMatrixModel):
    """L1-penalised least squares (coordinate descent)."""

    def __init__(
        self,
        alpha: float = 5e-4,
        max_iter: int = 50_000,
        tol: float = 1e-4,
        scaler: str = "standard",
        min_frequency: int | None = 3,
    ) -> None:
        self.alpha = alpha
        self.max_iter = max_iter
        self.tol = tol
        self.scaler = scaler
        self.min_frequency = min_frequency

    def _make(self) -> Any:
        from sklearn.linear_model import Lasso as SkLasso

        return SkLasso(alpha=self.alpha, max_iter=self.max_iter, tol=self.tol)


class ElasticNet(RegressorMixin, DesignMatrixModel):
    """L1 + L2 penalised least squares."""

    def __init__(
        self,
        alpha: float = 1e-3,
        l1_ratio: float = 0.5,
        max_iter: int = 50_000,
        tol: float = 1e-4,
        scaler: str = "standard",
        min_frequency: int | None = 3,
    ) -> None:
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.max_iter = max_iter
        self.tol = tol
        self.scaler = scaler
        self.min_frequency = min_frequency

    def _make(self) -> Any:
        from sklearn.linear_model import ElasticNet as SkElasticNet

        return SkElasticNet(
            alpha=self.alpha, l1_ratio=self.l1_ratio, max_iter=self.max_iter, tol=self.tol
        )


class LogisticRegression(ClassifierMixin, DesignMatrixModel):
    """L2-penalised logistic regression (multinomial for several classes)."""

    def __init__(
        self,
        C: float = 1.0,
        max_iter: int = 2000,
        scaler: str = "standard",
        min_frequency: int | None = 3,
    ) -> None:
        self.C = C
        self.max_iter = max_iter
        self.scaler = scaler
        self.min_frequency = min_frequency

    def _make(self) -> Any:
        from sklearn.linear_model import LogisticRegression as SkLogisticRegression

        return SkLogisticRegression(C=self.C, max_iter=self.max_iter)


def ridge_space(trial: Any, task: str) -> dict[str, Any]:
    """Optuna search space for ``kfw tune``."""
    return {"alpha": trial.suggest_float("alpha", 1e-3, 1e3, log=True)}


def lasso_space(trial: Any, task: str) -> dict[str, Any]:
    """Optuna search space for ``kfw tune``."""
    return {"alpha": trial.suggest_float("alpha", 1e-5, 1.0, log=True)}


def elasticnet_space(trial: Any, task: str) -> dict[str, Any]:
    """Optuna search space for ``kfw tune``."""
    return {
        "alpha": trial.suggest_float("alpha", 1e-5, 1.0, log=True),
        "l1_ratio": trial.suggest_float("l1_ratio", 0.05, 1.0),
    }


def logreg_space(trial: Any, task: str) -> dict[str, Any]:
    """Optuna search space for ``kfw tune``."""
    return {"C": trial.suggest_float("C", 1e-3, 1e2, log=True)}
