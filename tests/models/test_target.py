"""``target_transform``: fitted on each fit's training rows, predictions in the target's units."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import PowerTransformer

from kfw.core.cv import cross_validate
from kfw.core.folds import Folds, FoldScheme, assign_folds
from kfw.core.metrics import get_metric
from kfw.core.registry import make_estimator
from kfw.errors import ConfigError
from models._target import TransformedTarget
from models.linear import Ridge


def _skewed(n: int = 2000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 4)), columns=list("abcd"))
    y = np.exp(2.0 + X["a"] - 0.5 * X["b"] + 0.3 * rng.normal(size=n))  # log-normal, skewed
    return X, y.to_numpy()


@pytest.mark.parametrize("method", ["log1p", "boxcox", "yeo-johnson"])
def test_predictions_come_back_in_the_targets_own_units(method):
    X, y = _skewed()
    model = TransformedTarget(Ridge(), method).fit(X[:1500], y[:1500])
    pred = model.predict(X[1500:])
    inner = model.estimator_.predict(X[1500:])  # on the transformed scale
    assert abs(np.median(pred) / np.median(y[1500:]) - 1) < 0.15  # original units
    assert abs(np.median(inner) - np.median(y[1500:])) > 3  # and the inner model's are not
    if method == "log1p":
        np.testing.assert_allclose(pred, np.expm1(inner))
    # the log-linear truth: a linear model on the transformed target beats one on y itself
    raw = Ridge().fit(X[:1500], y[:1500]).predict(X[1500:])
    assert np.mean((pred - y[1500:]) ** 2) < np.mean((raw - y[1500:]) ** 2)


def test_the_transform_is_fitted_on_the_training_rows_only():
    X, y = _skewed()
    model = TransformedTarget(Ridge(), "boxcox").fit(X[:1000], y[:1000])
    own = PowerTransformer(method="box-cox", standardize=False).fit(y[:1000, None])
    everything = PowerTransformer(method="box-cox", standardize=False).fit(y[:, None])
    assert model.power_.lambdas_[0] == pytest.approx(own.lambdas_[0], rel=1e-12)
    assert model.power_.lambdas_[0] != pytest.approx(everything.lambdas_[0], rel=1e-6)


def test_cross_validated_oof_is_scored_in_original_units_and_stops_early_on_the_transform():
    X, y = _skewed()
    scheme = FoldScheme("kfold", n_splits=4, seed=1)
    assignment, _ = assign_folds(scheme, len(y), y, task="regression")
    folds = Folds(scheme, np.arange(len(y)), assignment, None, "h")
    rmse = get_metric("rmse")
    logged = make_estimator(
        "lgbm", "regression", {"target_transform": "log1p", "n_estimators": 300}
    )
    cv = cross_validate(logged, X, y, folds, metric=rmse, task="regression")
    assert cv.score == pytest.approx(rmse(y, cv.oof))  # scored on the target's own scale
    assert abs(cv.oof.mean() / y.mean() - 1) < 0.1
    assert all(f.best_iteration is not None and f.refit for f in cv.folds)  # inner early stop
    plain = make_estimator("lgbm", "regression", {"n_estimators": 300})
    cv_plain = cross_validate(plain, X, y, folds, metric=rmse, task="regression")
    assert cv.score < cv_plain.score * 1.2  # a like-for-like model, not a broken one


def test_bad_settings_are_one_clear_line():
    with pytest.raises(
        ConfigError, match="transforms a regression target, and this task is binary"
    ):
        make_estimator("lgbm", "binary", {"target_transform": "log1p"})
    with pytest.raises(ConfigError, match="must be one of log1p, boxcox, yeo-johnson"):
        make_estimator("ridge", "regression", {"target_transform": "log"})
    X, y = _skewed()
    with pytest.raises(ValueError, match="above -1, and the training rows reach -3: use yeo"):
        TransformedTarget(Ridge(), "log1p").fit(X, np.r_[y[:-1], -3.0])
    yj = TransformedTarget(Ridge(), "yeo-johnson").fit(X, np.r_[y[:-1], -3.0])
    assert np.isfinite(yj.predict(X)).all()
