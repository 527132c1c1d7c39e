"""Fitted encoders that run inside the fold loop (fit on the training part only).

:class:`CategoricalAligner` is the last fitted step of every kfw pipeline: it fixes the
categories of each categorical column to those seen in the training part, so the training,
validation and test frames share one code book and a category unseen in training becomes
missing instead of silently taking another category's code.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data


def _is_categorical(dtype: Any) -> bool:
    import pandas as pd

    return (
        isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_string_dtype(dtype)
        or pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_bool_dtype(dtype)
    )


class CategoricalAligner(TransformerMixin, BaseEstimator):
    """Cast categorical columns to ``category`` with the training part's categories.

    Numeric columns become float64 (nullable integers included, missing as NaN). Categorical
    columns (category, string, object or bool dtype) become ``category`` with the sorted
    values seen in ``fit``; values unseen in ``fit`` become missing.

    Attributes
    ----------
    categories_ : dict[str, list]
        The categories learned for each categorical column.
    feature_names_in_ : ndarray of str
    """

    def fit(self, X: Any, y: Any = None) -> CategoricalAligner:
        validate_data(self, X, skip_check_array=True, reset=True)
        self.categories_ = {}
        for col, dtype in X.dtypes.items():
            if _is_categorical(dtype):
                values = X[col].dropna()
                values = values.astype(str) if not isinstance(dtype, _category_type()) else values
                self.categories_[col] = sorted(set(values.tolist()), key=str)
        return self

    def transform(self, X: Any) -> Any:
        import pandas as pd

        check_is_fitted(self)
        validate_data(self, X, skip_check_array=True, reset=False)
        out = {}
        for col in X.columns:
            if col in self.categories_:
                values = X[col]
                if isinstance(values.dtype, pd.CategoricalDtype):
                    values = values.astype(object)
                else:
                    values = values.astype(object).where(values.isna(), values.astype(str))
                known = self.categories_[col]
                # unseen values become missing explicitly (pandas will refuse to do it silently)
                values = values.where(values.isin(known))
                out[col] = pd.Categorical(values, categories=known)
            else:
                out[col] = pd.to_numeric(X[col], errors="raise").astype(np.float64)
        return pd.DataFrame(out, index=X.index)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self)
        return np.asarray(self.feature_names_in_, dtype=object)


def _category_type() -> type:
    import pandas as pd

    return pd.CategoricalDtype
