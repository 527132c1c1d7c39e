"""Ensembles: weights on the simplex, hill climbing, ranks, level 2; honest fold-local CV."""

from __future__ import annotations

import numpy as np
import pytest

from kfw.core.folds import Folds, FoldScheme, assign_folds
from kfw.core.metrics import get_metric
from kfw.ensemble.stack import blend, fit_weights, hill_climb_weights, stack
from kfw.errors import ConfigError


def _folds(n: int, k: int = 5) -> Folds:
    scheme = FoldScheme("kfold", n_splits=k, seed=0)
    return Folds(scheme, np.arange(n), assign_folds(scheme, n)[0], None, "h")


def test_weights_recover_the_mixture_and_stay_on_the_simplex():
    rng = np.random.default_rng(0)
    n = 2000
    a, b, c = rng.normal(size=(3, n))
    y = 0.7 * a + 0.3 * b
    w = fit_weights(np.stack([a, b, c]), y, "regression")
    assert w.sum() == pytest.approx(1.0)
    assert (w >= 0).all()
    np.testing.assert_allclose(w, [0.7, 0.3, 0.0], atol=1e-4)


def test_honest_score_fits_weights_without_the_held_out_fold():
    rng = np.random.default_rng(1)
    n = 600
    y = rng.normal(size=n)
    good = y + 0.5 * rng.normal(size=n)
    noise = rng.normal(size=n)
    folds = _folds(n)
    result = blend(
        [np.exp(good), np.exp(noise)],
        [None, None],
        np.exp(y),
        folds,
        get_metric("rmsle"),
        "regression",
        "log1p",
    )
    assert len(result.fold_weights) == 5
    assert all(w[0] > 0.8 for w in result.fold_weights)
    # the in-sample score uses weights fitted on the scored rows: never worse
    assert result.score_insample <= result.score + 1e-12
    assert result.test is None


def test_classification_blend_stays_a_probability():
    rng = np.random.default_rng(2)
    n = 500
    y = rng.integers(0, 2, n)
    p1 = np.clip(0.7 * y + 0.3 * rng.random(n), 0, 1)
    p2 = rng.random(n)
    result = blend([p1, p2], [p1[:10], p2[:10]], y, _folds(n), get_metric("accuracy"), "binary")
    assert ((result.oof >= 0) & (result.oof <= 1)).all()
    assert result.weights[0] > 0.9
    assert result.test.shape == (10,)


def test_excluded_rows_get_no_say_in_the_weights_but_are_scored():
    rng = np.random.default_rng(3)
    n = 400
    y = rng.normal(size=n)
    a = y + 0.1 * rng.normal(size=n)
    b = y + 1.0 * rng.normal(size=n)
    exclude = np.zeros(n, dtype=bool)
    exclude[:20] = True
    a[:20] += 50  # a is terrible on the excluded rows only
    metric = get_metric("rmse")
    result = blend([a, b], [None, None], y, _folds(n), metric, "regression", exclude=exclude)
    assert result.weights[0] > 0.9  # the excluded rows did not pull the weight towards b
    assert result.score == pytest.approx(metric(y, result.oof))
    assert result.score_without_excluded == pytest.approx(metric(y[~exclude], result.oof[~exclude]))
    assert result.score > 10 * result.score_without_excluded


def test_hill_climbing_starts_from_the_best_member_and_picks_with_replacement():
    rng = np.random.default_rng(4)
    n = 800
    y = rng.normal(size=n)
    members = [y + s * rng.normal(size=n) for s in (0.3, 0.35, 2.0)]
    metric = get_metric("rmse")
    w = hill_climb_weights(np.stack(members), lambda p: metric(y, p), metric.greater_is_better)
    assert w.sum() == pytest.approx(1.0)
    assert w[0] >= w[1] > 0 and w[2] == 0  # the noisy member never helps
    assert np.allclose(w * 100, np.round(w * 100))  # shares of whole picks


def test_every_method_reports_an_honest_score_and_test_predictions():
    rng = np.random.default_rng(5)
    n = 600
    y = rng.integers(0, 2, n)
    good = np.clip(0.6 * y + 0.4 * rng.random(n), 0, 1)
    weak = np.clip(0.2 * y + 0.8 * rng.random(n), 0, 1)
    folds = _folds(n)
    auc = get_metric("roc_auc")
    for method in ("blend", "hillclimb", "rank", "level2"):
        result = stack(
            method,
            [good, weak],
            [good[:20], weak[:20]],
            y,
            folds,
            auc,
            "binary",
            level2_model="logreg",
        )
        assert result.method == method and len(result.fold_scores) == 5
        assert result.score == pytest.approx(auc(y, result.oof))
        assert result.test.shape == (20,)
        assert result.score > 0.9


def test_rank_averaging_refuses_metrics_that_read_more_than_the_order():
    rng = np.random.default_rng(6)
    y = rng.integers(0, 2, 100)
    with pytest.raises(ConfigError, match="rank averaging"):
        stack(
            "rank",
            [rng.random(100)] * 2,
            [None, None],
            y,
            _folds(100),
            get_metric("log_loss"),
            "binary",
        )


def test_level2_on_regression_fits_the_transformed_target():
    rng = np.random.default_rng(7)
    n = 500
    y = np.exp(rng.normal(size=n) + 10)
    a = y * np.exp(0.1 * rng.normal(size=n))
    b = y * np.exp(0.5 * rng.normal(size=n))
    metric = get_metric("rmsle")
    result = stack(
        "level2",
        [a, b],
        [a[:5], b[:5]],
        y,
        _folds(n),
        metric,
        "regression",
        "log1p",
        level2_model="ridge",
    )
    assert result.score < metric(y, b)
    assert result.detail["model"] == "ridge"
    assert (result.test > 0).all()
    with pytest.raises(ConfigError, match="level-2 model 'svm'"):
        stack(
            "level2", [a, b], [None, None], y, _folds(n), metric, "regression", level2_model="svm"
        )
