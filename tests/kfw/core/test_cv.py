"""The fold loop: what each step is fitted on, what is scored, determinism and resuming."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin

from kfw.core.config import EarlyStopping
from kfw.core.cv import FoldResult, FoldStore, cross_validate
from kfw.core.folds import Folds, FoldScheme, assign_folds
from kfw.core.metrics import get_metric
from kfw.core.runstore import PartialFolds
from models.lgbm import LGBMClassifier


def _folds(n: int, k: int = 4, seed: int = 0, y=None) -> Folds:
    scheme = FoldScheme("stratified" if y is not None else "kfold", n_splits=k, seed=seed)
    assignment, _ = assign_folds(scheme, n, y, task="binary")
    return Folds(scheme, np.arange(n), assignment, None, "h")


def _data(n: int = 200, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.choice(list("xyz"), n)}
    )
    y = (X["a"] + 0.5 * rng.normal(size=n) > 0).astype(int).to_numpy()
    return X, y


class SpyFeatures(TransformerMixin, BaseEstimator):
    """Records the rows (by the 'row' column) it was fitted on; passes data through."""

    fitted_on: list = []  # noqa: RUF012 - deliberately shared across clones, to observe them

    def fit(self, X, y=None):
        SpyFeatures.fitted_on.append(set(X["row"].tolist()))
        return self

    def transform(self, X):
        return X


class SpyModel(ClassifierMixin, BaseEstimator):
    """Remembers what it saw; predicts 0.5. It stops early (kfw.core.cv.stops_early) at round 7."""

    seen: list = []  # noqa: RUF012

    def __init__(self, rounds: int = 100, stopping: bool = True):
        self.rounds = rounds
        self.stopping = stopping

    def stops_early(self):
        return self.stopping

    def fixed_length(self, n):
        return {"rounds": n, "stopping": False}

    def fit(self, X, y, eval_set=None):
        SpyModel.seen.append(
            (set(X["row"].tolist()), set(eval_set[0]["row"].tolist()) if eval_set else None)
        )
        self.classes_ = np.array([0, 1])
        self.best_iteration_ = 7 if eval_set is not None else None
        return self

    def predict_proba(self, X):
        return np.full((len(X), 2), 0.5)


def _spied(model=None, **kwargs):
    """The fold loop over generated rows keyed by a ``row`` column, the spies reset first."""
    X, y = _data()
    X["row"] = np.arange(len(X))
    folds = _folds(len(X))
    SpyFeatures.fitted_on, SpyModel.seen = [], []
    result = cross_validate(
        model or SpyModel(), X, y, folds, metric=get_metric("log_loss"), task="binary", **kwargs
    )
    return folds, result


def test_features_and_model_never_see_the_scored_part_early_stopping_included():
    folds, result = _spied(features=SpyFeatures())
    # per fold: the inner fit (features too) on the inner training rows, watching the inner
    # validation rows; then the refit on the whole training part, watching nothing
    assert len(SpyModel.seen) == len(SpyFeatures.fitted_on) == 2 * folds.n_fits
    for i, split in enumerate(folds.splits()):
        (inner, held), (refit, none) = SpyModel.seen[2 * i : 2 * i + 2]
        train = set(split.train.tolist())
        assert inner | held == train and not inner & held
        assert 0.15 < len(held) / len(train) < 0.25  # the default fraction, 0.2
        assert SpyFeatures.fitted_on[2 * i] == inner
        assert refit == SpyFeatures.fitted_on[2 * i + 1] == train and none is None
    assert result.early_stopping == "inner"
    assert all(f.best_iteration == 7 and f.refit and f.stopped_on == "inner" for f in result.folds)


def test_stopping_on_the_scored_fold_is_explicit_and_labelled():
    folds, result = _spied(early_stopping=EarlyStopping(mode="scored-fold"))
    for split, (trained, watched) in zip(folds.splits(), SpyModel.seen, strict=True):
        assert trained == set(split.train.tolist()) and watched == set(split.valid.tolist())
    assert result.early_stopping == "scored-fold"


def test_inner_split_without_refit_predicts_with_the_inner_model():
    folds, result = _spied(early_stopping=EarlyStopping(refit=False, fraction=0.3))
    assert len(SpyModel.seen) == folds.n_fits
    for split, (inner, held) in zip(folds.splits(), SpyModel.seen, strict=True):
        assert inner | held == set(split.train.tolist())
        assert 0.25 < len(held) / len(split.train) < 0.35
    assert not any(f.refit for f in result.folds)


def test_train_mask_filters_training_parts_only():
    folds, result = _spied(
        SpyModel(stopping=False), train_mask=lambda Xt, yt: (Xt["row"] % 2 == 0).to_numpy()
    )
    for split, (trained, watched) in zip(folds.splits(), SpyModel.seen, strict=True):
        assert trained == {r for r in split.train.tolist() if r % 2 == 0}
        assert watched is None
    assert not np.isnan(result.oof).any()  # every row still scored


class Memorizer(RegressorMixin, BaseEstimator):
    """1-nearest neighbour on a row key: perfect on rows it trained on, useless elsewhere."""

    def fit(self, X, y):
        self.table_ = dict(zip(X["key"].tolist(), y.tolist(), strict=True))
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, X):
        return np.array([self.table_.get(k, self.mean_) for k in X["key"]])


def test_out_of_fold_predictions_never_come_from_a_model_that_saw_the_row():
    n = 150
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"key": np.arange(n)})
    y = rng.normal(size=n)
    folds = _folds(n, k=5)
    result = cross_validate(Memorizer(), X, y, folds, metric=get_metric("rmse"), task="regression")
    # a memoriser that leaked would score 0; out of fold it can only predict a training mean
    assert result.score > 0.8 * np.std(y)


def test_scores_and_shapes():
    X, y = _data(240)
    folds = _folds(len(X), k=4, y=y)
    X_test = X.iloc[:30].reset_index(drop=True)
    metric = get_metric("roc_auc")
    model = LGBMClassifier(n_estimators=50, num_leaves=7, n_jobs=1)
    result = cross_validate(model, X, y, folds, metric=metric, task="binary", X_test=X_test)
    assert result.oof.shape == (240,) and result.test.shape == (30,)
    assert result.score == pytest.approx(metric(y, result.oof))
    assert len(result.folds) == 4 and all(isinstance(f, FoldResult) for f in result.folds)
    for f, split in zip(result.folds, folds.splits(), strict=True):
        assert f.score == pytest.approx(metric(y[split.valid], result.oof[split.valid]))
    assert result.early_stopping == "inner" and all(f.best_iteration for f in result.folds)
    assert set(result.importances.index) == {"a", "b", "c"}
    assert result.score > 0.75


def test_multiclass_oof_is_a_probability_matrix():
    X, _ = _data(240)
    y = np.digitize(X["a"], [-0.5, 0.5])
    folds = _folds(len(X), k=3, y=y)
    model = LGBMClassifier(n_estimators=30, num_leaves=5, n_jobs=1)
    result = cross_validate(
        model, X, y, folds, metric=get_metric("log_loss"), task="multiclass", X_test=X
    )
    assert result.oof.shape == (240, 3) and result.test.shape == (240, 3)
    np.testing.assert_allclose(result.oof.sum(axis=1), 1.0)


def test_log1p_target_is_fitted_on_the_log_scale_and_scored_on_the_original():
    class Capture(RegressorMixin, BaseEstimator):
        def fit(self, X, y):
            self.y_max_ = float(np.max(y))
            self.mean_ = float(np.mean(y))
            return self

        def predict(self, X):
            return np.full(len(X), self.mean_)

    X = pd.DataFrame({"a": np.arange(100.0)})
    y = np.linspace(1000, 500_000, 100)
    folds = _folds(100)
    result = cross_validate(
        Capture(),
        X,
        y,
        folds,
        metric=get_metric("rmsle"),
        task="regression",
        target_transform="log1p",
    )
    assert np.all(result.oof > 1000)  # predictions back on the price scale
    assert np.exp(np.mean(np.log1p(y))) == pytest.approx(np.median(result.oof), rel=0.2)


def test_same_inputs_give_identical_oof():
    X, y = _data(200)
    folds = _folds(len(X), y=y)
    runs = [
        cross_validate(LGBMClassifier(n_estimators=40, subsample=0.8, subsample_freq=1, colsample_bytree=0.7, n_jobs=1),
                       X, y, folds, metric=get_metric("roc_auc"), task="binary", X_test=X).oof
        for _ in range(2)
    ]  # fmt: skip
    np.testing.assert_array_equal(runs[0], runs[1])


class Boom(Exception):
    pass


class StopAfter(FoldStore):
    """Wraps a real checkpoint store and raises after ``n`` saved folds (an interruption)."""

    def __init__(self, inner: FoldStore, n: int) -> None:
        self.inner, self.n = inner, n

    def load(self, split):
        return self.inner.load(split)

    def save(self, result, valid_pred, test_pred, importance):
        self.inner.save(result, valid_pred, test_pred, importance)
        self.n -= 1
        if self.n == 0:
            raise Boom


def test_interrupted_run_resumes_from_finished_folds(tmp_path):
    X, y = _data(200)
    folds = _folds(len(X), y=y)
    model = LGBMClassifier(n_estimators=40, n_jobs=1)
    kwargs = dict(metric=get_metric("roc_auc"), task="binary", X_test=X)
    store = PartialFolds(tmp_path / "partial")
    with pytest.raises(Boom):
        cross_validate(model, X, y, folds, store=StopAfter(store, 2), **kwargs)
    resumed = cross_validate(model, X, y, folds, store=store, **kwargs)
    assert [f.restored for f in resumed.folds] == [True, True, False, False]
    fresh = cross_validate(model, X, y, folds, **kwargs)
    np.testing.assert_array_equal(resumed.oof, fresh.oof)
    np.testing.assert_allclose(resumed.test, fresh.test)
    assert set(resumed.importances.columns) == set(fresh.importances.columns)


def test_repeated_folds_average_the_repeats():
    X, y = _data(120)
    scheme = FoldScheme("stratified", n_splits=3, n_repeats=2, seed=0)
    assignment, _ = assign_folds(scheme, len(y), y, task="binary")
    folds = Folds(scheme, np.arange(len(y)), assignment, None, "h")
    result = cross_validate(
        LGBMClassifier(n_estimators=20, n_jobs=1),
        X,
        y,
        folds,
        metric=get_metric("roc_auc"),
        task="binary",
    )
    assert len(result.folds) == 6
    assert {(f.repeat, f.fold) for f in result.folds} == {
        (r, k) for r in range(2) for k in range(3)
    }


def test_excluded_rows_are_never_fitted_or_watched_but_are_in_the_headline_score():
    X, y = _data()
    X["row"] = np.arange(len(X))
    folds = _folds(len(X))
    exclude = np.zeros(len(X), dtype=bool)
    exclude[[3, 50, 111]] = True
    metric = get_metric("log_loss")
    for mode in ("inner", "scored-fold"):
        SpyModel.seen = []
        result = cross_validate(
            SpyModel(), X, y, folds, metric=metric, task="binary", exclude=exclude,
            early_stopping=EarlyStopping(mode=mode),
        )  # fmt: skip
        for trained, watched in SpyModel.seen:
            assert not (trained | (watched or set())) & {3, 50, 111}
        assert not np.isnan(result.oof).any()
        assert result.excluded == 3
        assert result.score == pytest.approx(metric(y, result.oof))
        assert result.score_without_excluded == pytest.approx(
            metric(y[~exclude], result.oof[~exclude])
        )
        for f, split in zip(result.folds, folds.splits(), strict=True):
            assert f.score == pytest.approx(metric(y[split.valid], result.oof[split.valid]))


# every registered model that stops early, small enough for a test
EARLY_STOPPERS = {
    "lgbm": {
        "n_estimators": 300,
        "learning_rate": 0.1,
        "num_leaves": 7,
        "early_stopping_rounds": 10,
    },
    "xgb": {"n_estimators": 300, "learning_rate": 0.1, "max_depth": 3, "early_stopping_rounds": 10},
    "catboost": {"iterations": 300, "learning_rate": 0.1, "depth": 3, "early_stopping_rounds": 10},
    "torch-mlp": {"epochs": 8, "patience": 3, "hidden_layer_sizes": [16], "batch_size": 32},
}


def _permuted_fold(y: np.ndarray, folds: Folds, fold: int, seed: int = 0) -> np.ndarray:
    """``y`` with the labels of one fold's validation rows shuffled among themselves."""
    rows = next(s.valid for s in folds.splits() if s.fold == fold)
    out = y.copy()
    out[rows] = np.random.default_rng(seed).permutation(y[rows])
    assert (out[rows] != y[rows]).any()
    return out


@pytest.mark.parametrize("task", ["binary", "regression"])
@pytest.mark.parametrize("name", sorted(EARLY_STOPPERS))
def test_a_fold_never_sees_its_own_labels(name, task):
    """Permuting one fold's labels changes nothing that fold predicts, nor the rounds it chose."""
    from kfw.core.registry import make_estimator

    X, y = _data(300, seed=3)
    if task == "regression":
        y = X["a"].to_numpy() * 2 + np.random.default_rng(4).normal(size=len(y))
    folds = _folds(len(X), k=3, y=y if task == "binary" else None)
    model = make_estimator(name, task, EARLY_STOPPERS[name], random_state=0, n_jobs=1)
    metric = get_metric("log_loss" if task == "binary" else "rmse")
    valid = next(s.valid for s in folds.splits() if s.fold == 0)
    runs = [
        cross_validate(model, X, labels, folds, metric=metric, task=task)
        for labels in (y, _permuted_fold(y, folds, 0))
    ]
    assert runs[0].early_stopping == "inner"
    assert runs[0].folds[0].best_iteration == runs[1].folds[0].best_iteration is not None
    np.testing.assert_array_equal(runs[0].oof[valid], runs[1].oof[valid])
    assert runs[0].folds[0].score != runs[1].folds[0].score  # the labels did change


def test_stopping_on_the_scored_fold_does_see_its_labels():
    """The check above has teeth: the optimistic mode's predictions move with the labels."""
    X, y = _data(300, seed=3)
    folds = _folds(len(X), k=3, y=y)
    model = LGBMClassifier(**EARLY_STOPPERS["lgbm"], n_jobs=1)
    valid = next(s.valid for s in folds.splits() if s.fold == 0)
    scored_fold = dict(early_stopping=EarlyStopping(mode="scored-fold"))
    runs = [
        cross_validate(
            model, X, labels, folds, metric=get_metric("log_loss"), task="binary", **scored_fold
        )
        for labels in (y, _permuted_fold(y, folds, 0))
    ]
    assert runs[0].early_stopping == "scored-fold"
    assert np.abs(runs[0].oof[valid] - runs[1].oof[valid]).max() > 0.01


def test_an_image_network_never_sees_its_own_fold_labels():
    """The same for the convolutional nets (torch-cnn; torch-resnet shares its estimator)."""
    from sklearn.datasets import load_digits

    from kfw.core.registry import make_estimator

    pixels, digit = load_digits(return_X_y=True)
    X = pd.DataFrame(pixels[:240] / 16.0, columns=[f"p{i}" for i in range(64)])
    y = (digit[:240] >= 5).astype(int)
    folds = _folds(len(X), k=3, y=y)
    params = {"input_shape": [1, 8, 8], "channels": [4, 8], "epochs": 6, "patience": 2,
              "batch_size": 32, "augment": False}  # fmt: skip
    model = make_estimator("torch-cnn", "binary", params, random_state=0, n_jobs=1)
    valid = next(s.valid for s in folds.splits() if s.fold == 0)
    runs = [
        cross_validate(model, X, labels, folds, metric=get_metric("log_loss"), task="binary")
        for labels in (y, _permuted_fold(y, folds, 0))
    ]
    assert runs[0].folds[0].best_iteration == runs[1].folds[0].best_iteration is not None
    np.testing.assert_array_equal(runs[0].oof[valid], runs[1].oof[valid])
