"""The OOF blend: weights on the simplex, honest fold-local scoring, excluded rows."""

from __future__ import annotations

import numpy as np
import pytest

from kfw.folds import Folds, FoldScheme, assign_folds
from kfw.metrics import get_metric
from kfw.stack import blend, fit_weights


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


def test_excluded_rows_get_no_say_in_the_weights_but_are_scored_apart():
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
    assert result.score == pytest.approx(metric(y[~exclude], result.oof[~exclude]))
    assert result.score_all == pytest.approx(metric(y, result.oof))
    assert result.score_all > 10 * result.score
