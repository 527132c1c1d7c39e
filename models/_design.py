"""The design matrix scikit-learn's own models need: one-hot or ordinal categories, imputation.

Library GBMs read categories natively; linear models and forests get this preprocessing
inside the estimator, so it is fitted on the training part of each fold like everything else.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    OneHotEncoder,
    OrdinalEncoder,
    RobustScaler,
    StandardScaler,
)

from models._tabular import categorical_columns, is_frame

MISSING = "__missing__"


def _as_strings(X: Any) -> Any:
    # categories, strings and bools as plain strings, missing as its own level
    return X.astype("object").where(X.notna(), MISSING).astype(str)


def design(
    X: Any, *, one_hot: bool, scale: str | None, min_frequency: int | None = None
) -> ColumnTransformer:
    """An unfitted transformer from the frame's columns to a numeric matrix.

    Parameters
    ----------
    one_hot : bool
        One-hot categories (linear models) or code them as integers (trees).
    scale : {"standard", "robust", "none"} or None
        Median-impute, then standardise numeric columns (mean / sd, or median / IQR, which
        outliers move less) for penalised linear models; ``"none"`` median-imputes only (the
        features are on a common scale already, e.g. pixels / 255); None leaves them as they are.
    min_frequency : int, optional
        Categories rarer than this in the training part share one column.
    """
    cats = categorical_columns(X)
    nums = [c for c in X.columns if c not in cats] if is_frame(X) else list(range(X.shape[1]))
    strings = FunctionTransformer(_as_strings, feature_names_out="one-to-one")
    if one_hot:
        encoder = OneHotEncoder(
            handle_unknown="infrequent_if_exist", min_frequency=min_frequency, sparse_output=False
        )
    else:
        encoder = OrdinalEncoder(
            handle_unknown="use_encoded_value", unknown_value=-1, dtype=np.float64
        )
    num_steps: list[Any] = []
    if scale is not None:
        num_steps = [SimpleImputer(strategy="median", keep_empty_features=True)]
        if scale != "none":
            num_steps.append({"standard": StandardScaler, "robust": RobustScaler}[scale]())
    numeric: Any = make_pipeline(*num_steps) if num_steps else "passthrough"
    parts = [("num", numeric, nums)]
    if cats:
        parts.append(("cat", Pipeline([("str", strings), ("enc", encoder)]), cats))
    return ColumnTransformer(parts, remainder="drop", verbose_feature_names_out=False)
