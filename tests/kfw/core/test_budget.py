"""The time budget: deadlines nest, folds share a member's time, boosted models stop on time."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from kfw.core import budget
from kfw.core.registry import make_estimator


def test_deadlines_nest_and_never_extend_the_outer_one():
    assert budget.deadline() is None and not budget.expired()
    now = time.time()
    with budget.until(now + 10):
        with budget.until(now + 100) as at:
            assert at == now + 10  # an inner block cannot outlive its outer one
        with budget.until(now + 1):
            assert budget.deadline() == now + 1
        with budget.share(0.5):
            assert 4 < budget.remaining() <= 5
        assert budget.deadline() == now + 10
    assert budget.deadline() is None
    with budget.until(now - 1):
        assert budget.expired()


def test_folds_share_what_is_left_by_waves():
    now = time.time()
    first = budget.fold_deadline(now + 50, 0, 5)
    assert 9 < first - now <= 10.1  # five folds to go: a fifth each
    last = budget.fold_deadline(now + 50, 4, 5)
    assert 49 < last - now <= 50.1  # the last takes all that is left
    assert 24 < budget.fold_deadline(now + 50, 0, 4, slots=2) - now <= 25.1  # two waves of two
    assert budget.fold_deadline(None, 0, 5) is None


def _data(n=6000, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 12)), columns=[f"x{i}" for i in range(12)])
    return X, (X["x0"] + rng.normal(size=n) > 0).astype(int).to_numpy()


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("lgbm", {"n_estimators": 10**6, "learning_rate": 1e-4}),
        ("xgb", {"n_estimators": 10**6, "learning_rate": 1e-4}),
        ("catboost", {"iterations": 10**6, "learning_rate": 1e-4}),
    ],
)
def test_boosted_models_stop_at_the_deadline_and_say_so(name, params):
    X, y = _data()
    model = make_estimator(name, "binary", params, n_jobs=1)
    start = time.perf_counter()
    with budget.until(time.time() + 1.5):
        model.fit(X.iloc[:5000], y[:5000], eval_set=(X.iloc[5000:], y[5000:]))
    assert time.perf_counter() - start < 1.5 + 1.0
    assert model.out_of_time_
    assert model.best_iteration_ is not None and model.best_iteration_ > 0
    proba = model.predict_proba(X.iloc[5000:])[:, 1]
    assert proba.std() > 0  # the rounds it had are kept and predict
    fast = make_estimator(name, "binary", {}, n_jobs=1)
    fast.fit(X.iloc[:500], y[:500])  # no deadline: nothing stops it, nothing is said
    assert not fast.out_of_time_


@pytest.mark.parametrize("name", ["lgbm", "xgb", "catboost"])
def test_a_deadline_already_past_still_leaves_a_model_of_one_round(name):
    X, y = _data(n=800)
    model = make_estimator(name, "binary", {}, n_jobs=1)
    with budget.until(time.time() - 1):  # `--time-limit 0s`: the first round is the last
        model.fit(X.iloc[:600], y[:600], eval_set=(X.iloc[600:], y[600:]))
    assert model.out_of_time_ and model.best_iteration_ == 1
    assert model.predict_proba(X.iloc[600:]).shape == (200, 2)
