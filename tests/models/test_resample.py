"""Resampling and class weights touch the training part of a fold only (models/_resample.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.estimator_checks import parametrize_with_checks
from typer.testing import CliRunner

from kfw.cli.app import app
from kfw.core.cv import cross_validate, training_rows
from kfw.core.folds import Folds, FoldScheme, assign_folds
from kfw.core.metrics import get_metric
from kfw.core.registry import make_estimator
from kfw.errors import ConfigError
from models._resample import Resampled
from models.lgbm import LGBMClassifier
from models.linear import LogisticRegression
from tests.synth import frames, make_competition, write_files

NUMERIC = ["a", "b"]
ON_SEGMENT = 1e-9  # |s - (x_i + t (x_j - x_i))|, float64 interpolation of unit-scale values
FITS: list[dict] = []  # every fit of a spy, in order: the rows, the target, the eval set


class Spy(ClassifierMixin, BaseEstimator):
    """Records the exact rows each fit receives; predicts the class priors."""

    def fit(self, X, y):
        FITS.append({"X": X.copy(), "y": np.asarray(y).copy()})
        self.classes_, counts = np.unique(y, return_counts=True)
        self.prior_ = counts / counts.sum()
        return self

    def predict_proba(self, X):
        return np.tile(self.prior_, (len(X), 1))

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class WeightedSpy(Spy):
    def fit(self, X, y, sample_weight=None):
        super().fit(X, y)
        FITS[-1]["sample_weight"] = sample_weight
        return self


class SpyLGBM(LGBMClassifier):
    """LightGBM that records its training rows, its eval set and its length."""

    def fit(self, X, y, eval_set=None):
        FITS.append({"X": X.copy(), "y": np.asarray(y).copy(), "eval_set": eval_set})
        FITS[-1]["n_estimators"] = self.n_estimators
        return super().fit(X, y, eval_set=eval_set)


@pytest.fixture(autouse=True)
def _clear():
    FITS.clear()


def _data(n: int = 240, seed: int = 0, positives: float = 0.12):
    """Imbalanced binary data: two numeric columns and a categorical one (SMOTE-NC's path)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < positives).astype(int)
    X = pd.DataFrame(
        {
            "a": rng.normal(size=n) + 1.5 * y,
            "b": rng.normal(size=n) - y,
            "c": pd.Categorical(rng.choice(["u", "v", "w"], size=n)),
        }
    )
    return X, y


def _folds(y: np.ndarray, k: int = 4) -> Folds:
    scheme = FoldScheme("stratified", n_splits=k, seed=3)
    assignment, _ = assign_folds(scheme, len(y), y, task="binary")
    return Folds(scheme, np.arange(len(y)), assignment, None, "h")


def _keys(X: pd.DataFrame) -> list[tuple]:
    return [tuple(map(repr, row)) for row in X.astype(object).itertuples(index=False)]


def _on_segments(synthetic: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """For each synthetic row, whether it lies on a segment between two of ``rows``."""
    i, j = np.triu_indices(len(rows), k=1)
    start, step = rows[i], rows[j] - rows[i]  # (n_pairs, n_features)
    sq = np.maximum((step**2).sum(axis=1), 1e-300)
    found = []
    for s in synthetic:
        t = ((s - start) * step).sum(axis=1) / sq
        near = np.abs(start + t[:, None] * step - s).max(axis=1)
        found.append(bool(np.any((near < ON_SEGMENT) & (t >= -1e-12) & (t <= 1 + 1e-12))))
    return np.array(found)


def _cv(method: str, X, y, folds):
    model = Resampled(Spy(), method=method, random_state=7)
    cross_validate(model, X, y, folds, metric=get_metric("roc_auc"), task="binary")
    fits = list(FITS)
    FITS.clear()
    return fits


# ---------------------------------------------------------------------------------------------
# the leak test


@pytest.mark.parametrize("method", ["smote", "under", "over"])
def test_validation_rows_are_never_resampled_or_synthesised_from(method):
    X, y = _data()
    folds = _folds(y)
    splits = list(folds.splits())
    fits = _cv(method, X, y, folds)
    assert len(fits) == len(splits)
    for fit, split in zip(fits, splits, strict=True):
        train = training_rows(split, X, y)
        X_fit, y_fit = fit["X"], fit["y"]
        train_keys, valid_keys = set(_keys(X.iloc[train])), set(_keys(X.iloc[split.valid]))
        fitted = _keys(X_fit)
        assert not set(fitted) & valid_keys  # no validation row was fitted on
        if method == "smote":
            # the training part as it came, in order, then synthetic rows of the minority
            n = len(train)
            assert fitted[:n] == _keys(X.iloc[train])
            np.testing.assert_array_equal(y_fit[:n], y[train])
            synthetic = X_fit.iloc[n:]
            assert len(synthetic) > 0 and set(y_fit[n:]) == {1}
            assert not set(_keys(synthetic)) & train_keys
            # every synthetic row on a segment between two training-part rows of its class,
            # and its category one of that class's training categories
            minority = X.iloc[train][y[train] == 1]
            assert _on_segments(synthetic[NUMERIC].to_numpy(), minority[NUMERIC].to_numpy()).all()
            assert set(synthetic["c"]) <= set(minority["c"])
            valid = X.iloc[split.valid][NUMERIC].to_numpy()
            assert not _on_segments(synthetic[NUMERIC].to_numpy(), valid).any()
        else:
            assert set(fitted) <= train_keys
    # garbage in every validation row of the first fold: its model's rows do not move
    first = splits[0]
    spoiled = X.copy()
    spoiled.loc[first.valid, "a"] = 1e12
    spoiled.loc[first.valid, "b"] = -1e12
    spoiled["c"] = spoiled["c"].cat.add_categories(["GARBAGE"])
    spoiled.loc[first.valid, "c"] = "GARBAGE"
    again = _cv(method, spoiled, y, folds)
    pd.testing.assert_frame_equal(again[0]["X"], fits[0]["X"], check_exact=True)
    np.testing.assert_array_equal(again[0]["y"], fits[0]["y"])


def test_smote_keeps_dtypes_and_missing_values():
    X, y = _data()
    X["n"] = np.arange(len(X), dtype=np.int64)
    X.loc[:20, "b"] = np.nan
    X["c"] = X["c"].cat.add_categories(["never"])  # a level no row has stays a level
    X.loc[5:15, "c"] = np.nan
    X["s"] = np.where(np.arange(len(X)) % 2, "p", "q").astype(object)
    Resampled(Spy(), method="smote").fit(X, y)
    fitted = FITS[0]["X"]
    assert (fitted.dtypes == X.dtypes).all()
    assert list(fitted["c"].cat.categories) == list(X["c"].cat.categories)
    pd.testing.assert_frame_equal(fitted.iloc[: len(X)], X, check_exact=True)  # NaN kept
    synthetic = fitted.iloc[len(X) :]
    assert synthetic[["a", "b", "n", "s"]].notna().all().all()  # numeric NaN was imputed
    assert set(synthetic["s"]) <= {"p", "q"}


def test_numeric_only_and_categorical_only_frames():
    X, y = _data()
    for frame in (X[NUMERIC], X[["c"]].assign(d=X["c"].astype(str))):
        model = Resampled(Spy(), method="smote").fit(frame, y)
        assert model.counts_[0] == model.counts_[1]
        assert list(FITS[-1]["X"].columns) == list(frame.columns)


# ---------------------------------------------------------------------------------------------
# class counts, seeds, class weights


@pytest.mark.parametrize(
    ("method", "ratio", "expected"),
    [
        ("under", None, {0: 30, 1: 30}),
        ("under", 0.5, {0: 60, 1: 30}),
        ("over", None, {0: 170, 1: 170}),
        ("over", 0.5, {0: 170, 1: 85}),
        ("smote", 0.5, {0: 170, 1: 85}),
    ],
)
def test_class_counts_follow_the_ratio(method, ratio, expected):
    X, _ = _data(200)
    y = np.r_[np.zeros(170, int), np.ones(30, int)]
    model = Resampled(Spy(), method=method, ratio=ratio).fit(X, y)
    assert model.counts_ == expected
    assert dict(zip(*np.unique(FITS[0]["y"], return_counts=True), strict=True)) == expected


def test_multiclass_counts():
    X, _ = _data(200)
    y = np.r_[np.zeros(120, int), np.ones(50, int), np.full(30, 2)]
    assert Resampled(Spy(), method="under", ratio=0.6).fit(X, y).counts_ == {0: 50, 1: 50, 2: 30}
    assert Resampled(Spy(), method="smote").fit(X, y).counts_ == {0: 120, 1: 120, 2: 120}


@pytest.mark.parametrize("method", ["smote", "under", "over"])
def test_seeded(method):
    X, y = _data()
    for seed in (0, 0, 1):
        Resampled(Spy(), method=method, random_state=seed).fit(X, y)
    pd.testing.assert_frame_equal(FITS[0]["X"], FITS[1]["X"], check_exact=True)
    assert not FITS[0]["X"].equals(FITS[2]["X"])


def test_balanced_class_weights_reach_the_inner_fit():
    X, y = _data()
    model = Resampled(WeightedSpy(), class_weight="balanced").fit(X, y)
    w = FITS[0]["sample_weight"]
    assert w[y == 1].sum() == pytest.approx(w[y == 0].sum())
    assert w.sum() == pytest.approx(len(y))
    np.testing.assert_allclose(model.predict_proba(X).sum(axis=1), 1.0)


@pytest.mark.parametrize("name", ["logreg", "lgbm", "xgb", "catboost", "rf"])
def test_balanced_class_weights_through_make_estimator(name):
    # the minority's mean predicted probability moves towards one half when its rows weigh more
    X, y = _data(300)
    fast = {"lgbm": {"n_estimators": 30}, "xgb": {"n_estimators": 30}, "rf": {"n_estimators": 30},
            "catboost": {"iterations": 30}}.get(name, {})  # fmt: skip
    plain = make_estimator(name, "binary", fast).fit(X, y).predict_proba(X)[:, 1]
    model = make_estimator(name, "binary", {**fast, "class_weight": "balanced"})
    assert isinstance(model, Resampled) and model.method is None
    weighted = model.fit(X, y).predict_proba(X)[:, 1]
    assert weighted.mean() > plain.mean() + 0.05


def test_clone_and_params():
    model = Resampled(Spy(), method="under", ratio=0.5, random_state=3)
    twin = clone(model)
    assert (
        twin.get_params(deep=False)["method"] == "under" and twin.estimator is not model.estimator
    )
    X, y = _data()
    twin.fit(X, y)
    assert list(twin.classes_) == [0, 1]
    assert twin.predict(X).shape == (len(X),)


# scikit-learn's estimator checks (tests/models/test_contract.py runs them on registered models)
@parametrize_with_checks(
    [
        Resampled(LogisticRegression(), method="over"),
        Resampled(LogisticRegression(), method="under", ratio=0.5),
        Resampled(LogisticRegression(), method="smote"),
        Resampled(LogisticRegression(), class_weight="balanced"),
    ],
    expected_failed_checks=lambda est: {
        "check_class_weight_classifiers": "class_weight takes 'balanced', not a dict of weights"
    },
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_smote_copies_a_class_of_one_row():
    X, _ = _data(40)
    y = np.r_[np.zeros(30, int), np.ones(9, int), [2]]
    model = Resampled(Spy(), method="smote").fit(X, y)
    assert model.counts_ == {0: 30, 1: 30, 2: 30}
    copies = FITS[0]["X"].iloc[-29:]
    assert (copies == X.iloc[-1]).all().all()


# ---------------------------------------------------------------------------------------------
# early stopping through the wrapper


def test_early_stopping_eval_set_is_not_resampled():
    X, y = _data(300)
    folds = _folds(y, k=3)
    inner = SpyLGBM(n_estimators=200, learning_rate=0.1, num_leaves=7, early_stopping_rounds=10)
    model = Resampled(inner, method="smote", random_state=1)
    assert model.stops_early()
    result = cross_validate(model, X, y, folds, metric=get_metric("roc_auc"), task="binary")
    assert result.early_stopping == "inner"
    fits = iter(FITS)
    for split, fold in zip(folds.splits(), result.folds, strict=True):
        train = training_rows(split, X, y)
        inner_rows, held = folds.inner_split(split, train, y, "binary", 0.2)
        stopped, refit = next(fits), next(fits)
        X_eval, y_eval = stopped["eval_set"]
        # the eval set: the held-out inner rows as they are, none resampled or added
        assert _keys(X_eval) == _keys(X.iloc[held])
        np.testing.assert_array_equal(y_eval, y[held])
        assert not set(_keys(stopped["X"])) & set(_keys(X.iloc[held]))
        # SMOTE added minority rows, each between two inner training rows (never a held one)
        synthetic = stopped["X"].iloc[len(inner_rows) :]
        assert len(synthetic) > 0
        minority = X.iloc[inner_rows][y[inner_rows] == 1][NUMERIC].to_numpy()
        assert _on_segments(synthetic[NUMERIC].to_numpy(), minority).all()
        # then refitted on the whole (resampled) training part for the chosen rounds
        assert fold.refit and fold.best_iteration
        assert refit["eval_set"] is None and refit["n_estimators"] == fold.best_iteration
        assert len(refit["X"]) > len(train)


# ---------------------------------------------------------------------------------------------
# the registry and the command line


def test_make_estimator_wraps_any_classifier():
    X, y = _data()
    model = make_estimator("logreg", "binary", {"resample": "smote", "C": 0.5}, random_state=4)
    assert isinstance(model, Resampled) and model.random_state == 4
    assert model.estimator.C == 0.5
    proba = model.fit(X, y).predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    scratch = make_estimator("scratch-logreg", "binary", {"resample": "under"}).fit(X, y)
    assert scratch.counts_[0] == scratch.counts_[1]  # a factory's model is wrapped the same way
    ratio = make_estimator("lgbm", "binary", {"resample": "under", "resample_ratio": 0.5})
    assert ratio.ratio == 0.5 and ratio.stops_early()
    assert ratio.fixed_length(12) == {
        "estimator__n_estimators": 12,
        "estimator__early_stopping_rounds": 0,
    }


@pytest.mark.parametrize(
    ("name", "task", "params", "message"),
    [
        ("ridge", "regression", {"resample": "smote"}, "regression"),
        ("lgbm", "regression", {"class_weight": "balanced"}, "regression"),
        ("logreg", "binary", {"resample": "bogus"}, "resample must be one of under, over, smote"),
        ("logreg", "binary", {"resample": "under", "resample_ratio": 2}, "resample_ratio"),
        ("logreg", "binary", {"resample_ratio": 0.5}, "resample_ratio needs resample"),
        ("logreg", "binary", {"class_weight": "even"}, "class_weight must be 'balanced'"),
        ("scratch-logreg", "binary", {"class_weight": "balanced"}, "takes no sample_weight"),
        ("logreg", "binary", {"bogus": 1}, "has no parameter 'bogus'"),
    ],
)
def test_make_estimator_refuses(name, task, params, message):
    with pytest.raises(ConfigError, match=message) as info:
        make_estimator(name, task, params)
    assert "\n" not in str(info.value)


def test_kfw_cv_smote_end_to_end(home: Path):
    make_competition(home, models=("logreg",), write_data=False)
    train, test = frames("binary", n_train=400, n_test=40, seed=2)
    keep = (train["target"] == 0) | (np.arange(len(train)) % 6 == 0)  # about 1 in 7 positive
    write_files(home / "data" / "synth", train[keep].reset_index(drop=True), test)
    result = CliRunner().invoke(
        app,
        ["--home", str(home), "cv", "synth", "-m", "logreg", "-p", 'resample="smote"'],
        env={"KFW_THREADS": "1", "WANDB_MODE": "disabled"},
    )
    assert result.exit_code == 0, result.output
    (record,) = [json.loads(p.read_text()) for p in (home / "runs" / "synth").glob("*/run.json")]
    assert record["params"]["method"] == "smote"
    assert record["params"]["estimator"] == "LogisticRegression"
    assert record["params"]["estimator__C"] == 1.0
    assert record["score"] > 0.6
