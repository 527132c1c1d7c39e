"""The scratch models' wrapper: the design matrix's ``scaler`` travels with the roster params."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kfw.core.registry import make_estimator
from kfw.errors import ConfigError


def test_scaler_none_imputes_but_keeps_the_scale():
    model = make_estimator("scratch-mlp", "multiclass", {"scaler": "none", "max_iter": 1})
    assert model.scale == "none" and model.estimator.max_iter == 1
    X = pd.DataFrame({"a": [0.0, 0.5, np.nan, 1.0] * 10, "b": [0.2, 0.4, 0.6, 0.8] * 10})
    fitted = model.fit(X, np.arange(40) % 3)
    matrix = fitted.model_[0].transform(X)  # (40, 2): pixels stay in [0, 1], NaN -> median
    np.testing.assert_allclose(matrix[:4], [[0.0, 0.2], [0.5, 0.4], [0.5, 0.6], [1.0, 0.8]])
    assert make_estimator("scratch-mlp", "binary").scale == "standard"


def test_a_bad_scaler_or_parameter_is_refused():
    with pytest.raises(ConfigError, match="scaler must be one of standard, robust, none"):
        make_estimator("scratch-mlp", "multiclass", {"scaler": "minmax"})
    with pytest.raises(ConfigError, match="no parameter 'hidden'.*scaler"):
        make_estimator("scratch-mlp", "multiclass", {"hidden": [8]})
