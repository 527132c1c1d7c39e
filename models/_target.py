"""A regressor fitted on a transform of the target, predicting in the target's own units.

``target_transform`` on any regressor of the roster (``params = { target_transform = "log1p"
}``) wraps it here. The transform is fitted on each fit's own training rows only (Box-Cox and
Yeo-Johnson choose their lambda by maximum likelihood there), the early-stopping rows are
mapped with it, and every prediction is mapped back, so the fold loop scores the original
units. Which transform helps is then a question the folds answer: a roster may carry a
member on the raw target and one on its logarithm, and the ensemble, fitted inside the folds,
weighs them (``kfw new`` does this for a skewed target).

- ``log1p``: log(1 + y), for y > -1 (counts, prices);
- ``boxcox``: (y^lambda - 1) / lambda, for y > 0;
- ``yeo-johnson``: Box-Cox extended to zero and negative values.

A prediction outside the range the transform can invert (Box-Cox with lambda < 0) is first
clipped to the transformed training targets' span, widened by half of it.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin, RegressorMixin, clone

from models._resample import accepts, pass_fitted
from models._tabular import check_input, check_target

METHODS = ("log1p", "boxcox", "yeo-johnson")
# fitted attributes of the inner estimator that kfw's fold loop reads (kfw.core.cv)
_PASSED = ("best_iteration_", "feature_importances_", "history_", "out_of_time_")


class TransformedTarget(RegressorMixin, MetaEstimatorMixin, BaseEstimator):
    """``estimator`` fitted on ``method(y)``; predictions mapped back to y's units."""

    def __init__(
        self, estimator: Any, method: Literal["log1p", "boxcox", "yeo-johnson"] = "log1p"
    ) -> None:
        self.estimator = estimator
        self.method = method

    def check(self) -> None:
        """Raise ValueError (one line) for an unknown method, before any data is read."""
        if self.method not in METHODS:
            raise ValueError(
                f"target_transform must be one of {', '.join(METHODS)}, got {self.method!r}"
            )

    # the early-stopping protocol of kfw.core.cv, passed through to the inner estimator

    def stops_early(self) -> bool:
        method = getattr(self.estimator, "stops_early", None)
        return bool(method()) if callable(method) else False

    def fixed_length(self, rounds: int) -> dict[str, Any]:
        return {f"estimator__{k}": v for k, v in self.estimator.fixed_length(rounds).items()}

    def _forward(self, y: np.ndarray) -> np.ndarray:
        if self.method == "log1p":
            return np.log1p(y)
        return self.power_.transform(y.reshape(-1, 1)).ravel()

    def _inverse(self, z: np.ndarray) -> np.ndarray:
        z = np.clip(z, *self.span_)
        if self.method == "log1p":
            return np.expm1(z)
        return self.power_.inverse_transform(z.reshape(-1, 1)).ravel()

    def fit(self, X: Any, y: Any, eval_set: tuple[Any, Any] | None = None) -> TransformedTarget:
        """Fit the transform on ``y``, then the inner estimator on the transformed target."""
        self.check()
        X = check_input(self, X, reset=True)
        y = check_target(self, X, y)
        low = {"log1p": -1.0, "boxcox": 0.0}.get(self.method)
        if low is not None and y.min() <= low:
            raise ValueError(
                f"target_transform {self.method} needs every target above {low:g}, and the "
                f"training rows reach {y.min():g}: use yeo-johnson"
            )
        if self.method != "log1p":
            from sklearn.preprocessing import PowerTransformer

            method = "box-cox" if self.method == "boxcox" else "yeo-johnson"
            self.power_ = PowerTransformer(method=method, standardize=False)
            self.power_.fit(y.reshape(-1, 1))
        z = self._forward(y)
        width = z.max() - z.min()
        self.span_ = (z.min() - width / 2, z.max() + width / 2)
        if self.method == "boxcox" and self.power_.lambdas_[0] < 0:  # z < -1/lambda inverts
            self.span_ = (self.span_[0], min(self.span_[1], -1 / self.power_.lambdas_[0] - 1e-9))
        kwargs: dict[str, Any] = {}
        if eval_set is not None and accepts(self.estimator, "eval_set"):
            y_watch = check_target(self, eval_set[0], eval_set[1])
            kwargs["eval_set"] = (eval_set[0], self._forward(y_watch))
        self.estimator_ = clone(self.estimator).fit(X, z, **kwargs)
        pass_fitted(self, _PASSED)
        return self

    def predict(self, X: Any) -> np.ndarray:
        return self._inverse(np.asarray(self.estimator_.predict(X), dtype=np.float64))
