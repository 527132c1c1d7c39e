"""Kernel regressors on the scaled, one-hot design matrix: support vectors and kernel ridge.

Both see the same matrix as the linear models (:mod:`models.linear`: impute, scale, one-hot,
fitted per fold) and add what a linear model lacks: a radial-basis SVR bends with the data
and ignores residuals inside its epsilon tube, which makes it robust to a few odd sales; a
polynomial kernel ridge adds pairwise interactions of every feature. On House Prices both are
classic members of the published blends.
"""

from __future__ import annotations

from typing import Any

from sklearn.base import RegressorMixin

from models.linear import DesignMatrixModel


class SVR(RegressorMixin, DesignMatrixModel):
    """Epsilon-support vector regression (scikit-learn's libsvm ``SVR``)."""

    def __init__(
        self,
        C: float = 20.0,
        epsilon: float = 0.008,
        gamma: float | str = 0.0003,
        kernel: str = "rbf",
        scaler: str = "robust",
        min_frequency: int | None = 3,
    ) -> None:
        self.C = C
        self.epsilon = epsilon
        self.gamma = gamma
        self.kernel = kernel
        self.scaler = scaler
        self.min_frequency = min_frequency

    def _make(self) -> Any:
        from sklearn.svm import SVR as SkSVR

        return SkSVR(C=self.C, epsilon=self.epsilon, gamma=self.gamma, kernel=self.kernel)


class KernelRidge(RegressorMixin, DesignMatrixModel):
    """Kernel ridge regression (scikit-learn's ``KernelRidge``), polynomial kernel by default."""

    def __init__(
        self,
        alpha: float = 0.6,
        kernel: str = "polynomial",
        degree: int = 2,
        coef0: float = 2.5,
        gamma: float | None = None,
        scaler: str = "robust",
        min_frequency: int | None = 3,
    ) -> None:
        self.alpha = alpha
        self.kernel = kernel
        self.degree = degree
        self.coef0 = coef0
        self.gamma = gamma
        self.scaler = scaler
        self.min_frequency = min_frequency

    def _make(self) -> Any:
        from sklearn.kernel_ridge import KernelRidge as SkKernelRidge

        return SkKernelRidge(
            alpha=self.alpha,
            kernel=self.kernel,
            degree=self.degree,
            coef0=self.coef0,
            gamma=self.gamma,
        )


def svr_space(trial: Any, task: str) -> dict[str, Any]:
    """Optuna search space for ``kfw tune``."""
    return {
        "C": trial.suggest_float("C", 0.1, 100.0, log=True),
        "epsilon": trial.suggest_float("epsilon", 1e-3, 0.1, log=True),
        "gamma": trial.suggest_float("gamma", 1e-5, 1e-2, log=True),
    }


def kernel_ridge_space(trial: Any, task: str) -> dict[str, Any]:
    """Optuna search space for ``kfw tune``."""
    return {
        "alpha": trial.suggest_float("alpha", 1e-2, 10.0, log=True),
        "coef0": trial.suggest_float("coef0", 0.5, 10.0, log=True),
    }
