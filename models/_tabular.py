"""What every library wrapper shares: input checks, label encoding, the fit / predict skeleton.

A wrapper translates one library in one place (STYLE 14). The fold loop calls
``fit(X, y, eval_set=(X_valid, y_valid))`` on estimators whose ``fit`` accepts ``eval_set``
and nothing library-specific: the wrapper turns that into LightGBM callbacks, XGBoost's
constructor-side early stopping or CatBoost's ``eval_set``.

Inputs are pandas DataFrames whose categorical columns have the ``category`` dtype (kfw's fold
loop aligns their categories to the training part), or plain numeric arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, is_classifier
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_sample_weight,
    check_array,
    check_is_fitted,
    column_or_1d,
    validate_data,
)


def is_frame(X: Any) -> bool:
    return hasattr(X, "columns") and hasattr(X, "dtypes")


def categorical_columns(X: Any) -> list[str]:
    """Columns a model should treat as categories: category, string, object or bool dtype."""
    if not is_frame(X):
        return []
    import pandas as pd

    return [
        c
        for c, dtype in X.dtypes.items()
        if isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_string_dtype(dtype)
        or pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_bool_dtype(dtype)
    ]


def check_input(estimator: BaseEstimator, X: Any, *, reset: bool) -> Any:
    """Validate like scikit-learn, but let DataFrames (categoricals, NaN) through untouched.

    Arrays go through ``validate_data`` (numeric, NaN allowed: the libraries handle it);
    frames only have their feature names and count recorded / checked.
    """
    if is_frame(X):
        validate_data(estimator, X, skip_check_array=True, reset=reset)
        if X.shape[0] == 0:
            raise ValueError(
                "Found array with 0 sample(s) (shape=(0, n)) while a minimum of 1 is required."
            )
        return X
    return validate_data(estimator, X, reset=reset, ensure_all_finite="allow-nan", dtype=np.float64)


def check_target(estimator: BaseEstimator, X: Any, y: Any) -> np.ndarray:
    """A 1-d target with one value per row: finite numbers for a regressor."""
    if y is None:
        raise ValueError(
            f"{type(estimator).__name__} requires y to be passed, but the target y is None"
        )
    y = column_or_1d(y, warn=True)
    if not is_classifier(estimator):
        y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")
    if len(y) != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {len(y)}")
    return y


class TabularModel(BaseEstimator):
    """The fit / predict skeleton of a kfw wrapper around a library model.

    Subclasses implement ``_fit_model(X, y, eval_set) -> fitted library model`` (with a
    ``sample_weight`` keyword under :class:`WeightedModel`) and, if the
    library's predictions need translating, ``_predict_raw``. Classifiers encode labels to
    0..K-1 before the library sees them, so every library gets the same integer targets.
    Concrete classes put ``ClassifierMixin`` or ``RegressorMixin`` on the left.
    """

    def _is_classifier(self) -> bool:
        return is_classifier(self)

    def fit(self, X: Any, y: Any, eval_set: tuple[Any, Any] | None = None) -> TabularModel:
        """Fit; ``eval_set=(X_valid, y_valid)`` enables early stopping where the model has it."""
        return self._fit(X, y, eval_set, None)

    def _fit(
        self, X: Any, y: Any, eval_set: tuple[Any, Any] | None, sample_weight: Any
    ) -> TabularModel:
        X = check_input(self, X, reset=True)
        y = check_target(self, X, y)
        if self._is_classifier():
            check_classification_targets(y)
            self.classes_, y = np.unique(y, return_inverse=True)
            if len(self.classes_) < 2:
                raise ValueError(
                    f"y has only 1 class ({self.classes_[0]!r}); a classifier needs at least 2"
                )
        else:
            y = y.astype(np.float64)
        if eval_set is not None:
            Xv = check_input(self, eval_set[0], reset=False)
            yv = check_target(self, Xv, eval_set[1])
            if self._is_classifier():
                yv = np.searchsorted(self.classes_, yv)
            eval_set = (Xv, yv)
        weights: dict[str, Any] = {}
        if sample_weight is not None:
            weights["sample_weight"] = _check_sample_weight(sample_weight, X, dtype=np.float64)
        self.model_ = self._fit_model(X, y, eval_set, **weights)
        return self

    def _fit_model(self, X: Any, y: np.ndarray, eval_set: tuple[Any, np.ndarray] | None) -> Any:
        raise NotImplementedError  # abstract: each wrapper translates its library here

    def stops_early(self) -> bool:
        """Whether an ``eval_set`` makes this model choose its own length (see kfw.core.cv)."""
        return False

    def _predict_raw(self, X: Any) -> np.ndarray:
        if self._is_classifier():
            return self.model_.predict_proba(X)
        return self.model_.predict(X)

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = check_input(self, X, reset=False)
        if self._is_classifier():
            return self.classes_[np.argmax(_two_columns(self._predict_raw(X)), axis=1)]
        return np.asarray(self._predict_raw(X), dtype=np.float64).ravel()

    @available_if(is_classifier)
    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = check_input(self, X, reset=False)
        return _two_columns(self._predict_raw(X))  # (n_samples, n_classes)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.categorical = True
        return tags


def _two_columns(proba: Any) -> np.ndarray:
    """Class probabilities as (n, n_classes); a 1-d array is the probability of class 1."""
    proba = np.asarray(proba, dtype=np.float64)
    return np.column_stack([1.0 - proba, proba]) if proba.ndim == 1 else proba


class WeightedModel(TabularModel):
    """A wrapper whose library weights rows: ``fit`` takes ``sample_weight`` (one per row of X,
    never of the eval set) and ``_fit_model`` receives it as a keyword when given."""

    def fit(
        self,
        X: Any,
        y: Any,
        eval_set: tuple[Any, Any] | None = None,
        sample_weight: Any = None,
    ) -> WeightedModel:
        """Fit, each row of ``X`` weighted by ``sample_weight`` (None: all equal)."""
        return self._fit(X, y, eval_set, sample_weight)


class RoundsModel(TabularModel):
    """A boosted model whose length (``_ROUNDS`` rounds) early stopping can choose."""

    _ROUNDS = "n_estimators"

    def stops_early(self) -> bool:
        return bool(self.early_stopping_rounds)

    def fixed_length(self, rounds: int) -> dict[str, Any]:
        """``set_params`` that train exactly ``rounds`` rounds, without early stopping."""
        return {self._ROUNDS: int(rounds), "early_stopping_rounds": 0}


def library_params(estimator: BaseEstimator, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """The estimator's parameters minus kfw's own, with ``extra`` merged in."""
    params = estimator.get_params(deep=False)
    extra = params.pop("extra", None) or {}
    for name in exclude:
        params.pop(name, None)
    return {**params, **extra}


def final_step_weights(pipe: Any, sample_weight: np.ndarray | None) -> dict[str, Any]:
    """``Pipeline.fit`` keywords that weight the rows in the pipeline's model (its last step);
    the design matrix (imputation, scaling, one-hot) is fitted unweighted."""
    if sample_weight is None:
        return {}
    return {f"{pipe.steps[-1][0]}__sample_weight": sample_weight}
