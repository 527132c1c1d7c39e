"""Selection under noise: the CV's standard error, paired differences, the submission rule."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from kfw.core.cv import cross_validate
from kfw.core.folds import Folds, FoldScheme, assign_folds
from kfw.core.metrics import get_metric
from kfw.core.noise import (
    NoiseError,
    choose,
    compare,
    corrected_se,
    fit_scores,
    paired_difference,
)
from models.linear import LogisticRegression

TOL = 1e-12  # the standard errors are closed forms: equal to rounding


def test_repeated_cv_standard_error_is_the_corrected_one_computed_directly():
    rng = np.random.default_rng(0)
    n = 300
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    y = (X["a"] + rng.normal(size=n) > 0).astype(int).to_numpy()
    scheme = FoldScheme("stratified", n_splits=5, n_repeats=3, seed=0)
    folds = Folds(scheme, np.arange(n), assign_folds(scheme, n, y, task="binary")[0], None, "h")
    result = cross_validate(
        LogisticRegression(), X, y, folds, metric=get_metric("accuracy"), task="binary"
    )
    scores = np.array([f.score for f in result.folds])
    assert len(scores) == 15
    # Nadeau & Bengio: var of the mean of J = K*R resampled scores is (1/J + n_valid/n_train) s^2
    direct = math.sqrt((1 / 15 + 60 / 240) * np.var(scores, ddof=1))
    assert result.se == pytest.approx(direct, abs=TOL)
    # larger than the naive std / sqrt(J), which forgets that the folds share training rows
    assert result.se > np.std(scores, ddof=1) / math.sqrt(15)


def test_paired_difference_is_the_corrected_paired_t_interval():
    a = np.array([0.80, 0.82, 0.79, 0.85, 0.81])
    b = np.array([0.78, 0.80, 0.80, 0.83, 0.78])
    d = paired_difference(a, b, n_train=400, n_valid=100)
    diff = a - b
    se = math.sqrt((1 / 5 + 100 / 400) * diff.var(ddof=1))
    half = stats.t.ppf(0.975, 4) * se
    assert d.mean == pytest.approx(diff.mean(), abs=TOL)
    assert d.se == pytest.approx(se, abs=TOL)
    assert (d.low, d.high) == pytest.approx((diff.mean() - half, diff.mean() + half), abs=TOL)
    assert not d.clear  # 0.014 +- 0.022: these two cannot be told apart
    assert paired_difference(a + 0.05, a, 400, 100).clear  # a constant shift can


def test_a_standard_error_needs_two_finite_fits():
    with pytest.raises(NoiseError, match="at least 2 scored fits, got 1"):
        corrected_se([0.8], 100, 25)
    with pytest.raises(NoiseError, match="1 of 3 fits have no finite score"):
        corrected_se([0.8, np.nan, 0.7], 100, 25)


def test_fit_scores_score_each_fit_of_each_repeat():
    y = np.array([0, 1, 0, 1, 1, 0])
    pred = np.array([0.2, 0.9, 0.6, 0.7, 0.4, 0.1])
    assignment = np.array([[0, 1], [0, 0], [1, 1], [1, 0], [0, 1], [1, 0]])
    scores = fit_scores(get_metric("accuracy"), y, pred, assignment)
    assert scores == {(0, 0): 2 / 3, (0, 1): 2 / 3, (1, 0): 1.0, (1, 1): 1 / 3}


# ---------------------------------------------------------------------------------------------
# the rule, on constructed runs


def _run(name, kind, model, fold_scores, score=None, optimistic=()):
    return {
        "id": name,
        "label": name,
        "kind": kind,
        "model": model,
        "greater_is_better": True,
        "score": float(np.mean(fold_scores)) if score is None else score,
        "per_fit": {(0, k): s for k, s in enumerate(fold_scores)},
        "optimistic": list(optimistic),
    }


RANKS = {"logreg": 1, "rf": 3, "lgbm": 4}


def _choose(runs):
    return choose(runs, lambda r: r["per_fit"], 712, 179, lambda r: RANKS.get(r["model"], 4))


def test_a_run_inflated_by_noise_is_not_preferred_over_a_simpler_indistinguishable_one():
    rng = np.random.default_rng(1)
    base = 0.82 + 0.02 * rng.standard_normal(5)
    noise = 0.015 * rng.standard_normal(5)
    simple = _run("logreg", "model", "logreg", base)
    lucky = _run("lgbm", "model", "lgbm", base + 0.006 + noise)  # higher CV, by noise
    choice = _choose([lucky, simple])
    assert choice.best is lucky and choice.run is simple
    assert "simplest run within noise" in choice.reason
    assert [c.record["id"] for c in choice.compared if c.indistinguishable] == ["lgbm", "logreg"]


def test_a_clearly_better_complex_run_is_chosen():
    base = np.array([0.80, 0.81, 0.79, 0.82, 0.80])
    simple = _run("logreg", "model", "logreg", base)
    strong = _run("lgbm", "model", "lgbm", base + np.array([0.05, 0.051, 0.049, 0.05, 0.052]))
    choice = _choose([simple, strong])
    assert choice.run is strong and choice.reason.startswith("the best CV, clearly ahead")


def test_an_ensemble_within_noise_of_the_best_is_preferred():
    rng = np.random.default_rng(2)
    base = 0.84 + 0.01 * rng.standard_normal(5)
    best = _run("lgbm", "model", "lgbm", base + 0.004 + 0.01 * rng.standard_normal(5))
    blend = _run("blend", "ensemble", None, base)
    simple = _run("logreg", "model", "logreg", base - 0.001 + 0.01 * rng.standard_normal(5))
    choice = _choose([best, blend, simple])
    assert choice.run is blend and "an ensemble within noise" in choice.reason


def test_optimistic_runs_are_listed_and_never_chosen():
    base = np.array([0.80, 0.81, 0.79, 0.82, 0.80])
    honest = _run("rf", "model", "rf", base)
    peeked = _run(
        "lgbm", "model", "lgbm", base + 0.05, optimistic=["early stopping on the scored folds"]
    )
    choice = _choose([peeked, honest])
    assert choice.run is honest and [r["id"] for r, _ in choice.skipped] == ["lgbm"]
    with pytest.raises(NoiseError, match="every candidate run's score is optimistic"):
        _choose([peeked])


def test_compare_orients_the_difference_as_run_minus_best_for_losses_too():
    base = np.array([0.30, 0.31, 0.29, 0.32, 0.30])
    a = {**_run("a", "model", "lgbm", base), "greater_is_better": False}
    b = {**_run("b", "model", "rf", base + 0.02), "greater_is_better": False}
    best, other = compare([b, a], lambda r: r["per_fit"], 712, 179)
    assert best.record is a and other.difference.mean == pytest.approx(0.02)
    assert other.difference.low > 0 and not other.indistinguishable


def test_a_metric_undefined_on_a_fold_alone_has_no_standard_error():
    y = np.array([0, 0, 0, 1, 1, 0])  # fold 0 holds one class: its ROC-AUC is undefined
    pred = np.linspace(0.1, 0.9, 6)
    assignment = np.array([[0], [0], [0], [1], [1], [1]])
    with pytest.raises(NoiseError, match=r"roc_auc is undefined on fold 0 of repeat 0 alone"):
        fit_scores(get_metric("roc_auc"), y, pred, assignment)


def test_mean_interval_is_the_t_interval_of_independent_values() -> None:
    from kfw.core.noise import mean_interval

    values = np.array([1.0, 2.0, 4.0, 7.0])
    low, high = stats.t.interval(0.95, 3, loc=values.mean(), scale=stats.sem(values))
    mean, half = mean_interval(values)
    assert mean == pytest.approx(3.5) and half == pytest.approx((high - low) / 2)
    assert np.isnan(mean_interval([5.0])[1])
