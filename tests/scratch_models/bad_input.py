"""The bad inputs every scratch estimator must refuse as its scikit-learn twin does."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError


def assert_refuses_like_sklearn(model, X, y, string_target=(1.0, 2.0)) -> None:
    """predict before fit, NaN, mismatched lengths, 1-D X, strings, a wrong feature count."""
    with pytest.raises(NotFittedError):
        clone(model).predict(X)
    X_nan = X.copy()
    X_nan[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clone(model).fit(X_nan, y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        clone(model).fit(X, y[:-1])
    with pytest.raises(ValueError, match="2D array"):
        clone(model).fit(X[:, 0], y)
    with pytest.raises(ValueError, match="string"):
        clone(model).fit(np.array([["a", "b"], ["c", "d"]]), list(string_target))
    fitted = clone(model).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        fitted.predict(X[:, :3])
