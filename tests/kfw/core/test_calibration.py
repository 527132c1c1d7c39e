"""Calibration fitted inside the folds: Platt, isotonic and temperature scaling lower the
expected calibration error of a deliberately overconfident model, and a fold's calibrator
never sees the labels it is scored on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

from kfw.cli import main
from kfw.core.calibration import Calibrator
from kfw.core.cv import cross_validate
from kfw.core.metrics import get_metric
from tests.kfw.core.test_cv import _folds, _permuted_fold
from tests.synth import make_competition

ECE, BRIER = get_metric("ece"), get_metric("brier")


class Overconfident(ClassifierMixin, BaseEstimator):
    """A logistic regression whose logits are multiplied by ``sharpness``: overconfident."""

    def __init__(self, sharpness: float = 4.0) -> None:
        self.sharpness = sharpness

    def fit(self, X, y):
        self.model_ = LogisticRegression().fit(np.asarray(X, dtype=float), y)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X):
        z = self.model_.decision_function(np.asarray(X, dtype=float)) * self.sharpness
        if z.ndim == 1:
            p = 1 / (1 + np.exp(-z))
            return np.column_stack([1 - p, p])
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def _data(n: int = 4000, seed: int = 0, classes: int = 2) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    z = X["a"].to_numpy() + 0.5 * X["b"].to_numpy() + rng.normal(scale=1.0, size=n)
    cuts = np.quantile(z, np.linspace(0, 1, classes + 1)[1:-1])
    return X, np.searchsorted(cuts, z)


@pytest.mark.parametrize("method", ["platt", "isotonic", "temperature"])
def test_calibration_in_the_folds_lowers_the_ece_of_an_overconfident_model(method):
    X, y = _data()
    folds = _folds(len(X), k=4, y=y)
    cv = cross_validate(Overconfident(), X, y, folds, metric=get_metric("log_loss"), task="binary", calibration=method)  # fmt: skip
    raw = cross_validate(Overconfident(), X, y, folds, metric=get_metric("log_loss"), task="binary")
    for fold in cv.folds:
        c = fold.calibration
        assert c["method"] == method
        assert c["ece_after"] < c["ece_before"] / 2  # the overconfidence is mostly gone
        assert c["brier_after"] < c["brier_before"]
    assert ECE(y, cv.oof) < ECE(y, raw.oof) / 2 and cv.score < raw.score  # log loss improves
    assert cv.folds[0].calibration["ece_before"] == pytest.approx(
        ECE(y[next(folds.splits()).valid], raw.oof[next(folds.splits()).valid])
    )


def test_temperature_scaling_finds_the_sharpness_and_keeps_the_argmax():
    X, y = _data(3000, seed=1, classes=3)
    model = Overconfident(sharpness=3.0).fit(X, y)
    honest = LogisticRegression().fit(X, y).predict_proba(X)
    sharp = model.predict_proba(X)
    cal = Calibrator("temperature").fit(sharp, y)
    assert cal.summary()["temperature"] == pytest.approx(3.0, rel=0.1)
    np.testing.assert_allclose(cal.transform(sharp), honest, atol=0.02)
    np.testing.assert_array_equal(cal.transform(sharp).argmax(1), sharp.argmax(1))


def test_a_folds_calibrator_never_sees_its_own_labels():
    X, y = _data(600, seed=2)
    folds = _folds(len(X), k=3, y=y)
    valid = next(s.valid for s in folds.splits() if s.fold == 0)
    runs = [
        cross_validate(Overconfident(), X, labels, folds, metric=get_metric("log_loss"), task="binary", calibration="isotonic")
        for labels in (y, _permuted_fold(y, folds, 0))
    ]  # fmt: skip
    np.testing.assert_array_equal(runs[0].oof[valid], runs[1].oof[valid])
    assert runs[0].folds[0].calibration["ece_before"] != runs[1].folds[0].calibration["ece_before"]


def test_platt_is_binary_and_calibration_needs_classes():
    with pytest.raises(ValueError, match="platt scaling is binary"):
        Calibrator("platt").fit(np.full((4, 3), 1 / 3), np.array([0, 1, 2, 0]))
    X, y = _data(200)
    with pytest.raises(ValueError, match="a regression has none"):
        cross_validate(Overconfident(), X, y.astype(float), _folds(200, 3), metric=get_metric("rmse"), task="regression", calibration="platt")  # fmt: skip


def _run(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return exc.value.code, out, err


@pytest.mark.parametrize(
    ("task", "method", "says"),
    [
        ("regression", "temperature", "calibration maps class probabilities; synth is regression"),
        ("multiclass", "platt", "platt scaling is binary"),
        ("binary", "bogus", "'bogus' is not one of"),
    ],
)
def test_calibrate_where_it_cannot_apply_is_one_line(home: Path, capsys, task, method, says):
    make_competition(home, task=task, models=("logreg" if task != "regression" else "ridge",))
    before = sorted(home.rglob("*"))
    code, _, err = _run(capsys, "cv", "synth", "--calibrate", method)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert err.startswith("kfw: error: --calibrate") and says in err
    assert sorted(home.rglob("*")) == before


def test_cv_calibrate_records_each_fold_and_says_before_and_after(home: Path, capsys):
    make_competition(home, models=("logreg",))
    code, out, err = _run(capsys, "cv", "synth", "--calibrate", "platt", "--no-wandb")
    assert code == 0, err
    assert "platt calibration, fitted in each fold on an inner split: ECE " in out
    import json

    record = json.loads(next((home / "runs" / "synth").glob("*/run.json")).read_text())
    assert record["calibration"] == "platt"
    assert all({"a", "b", "ece_after"} <= set(f["calibration"]) for f in record["fold_scores"])


def test_temperature_scaling_runs_on_a_torch_net_and_keeps_its_classes():
    """Multiclass temperature scaling (Guo et al. 2017) on a network in the fold loop: each
    fold's probabilities are softmax(log p / T) of the plain run's, so the classes (and the
    accuracy) stay and only the confidence moves. Whether it helps a given net is measured,
    per fold, by the ECE before and after (docs/evaluation.md)."""
    from kfw.core.calibration import _scaled
    from kfw.core.registry import make_estimator

    X, y = _data(900, seed=3, classes=3)
    folds = _folds(len(X), k=3, y=y)
    params = {"hidden_layer_sizes": [32], "epochs": 6, "early_stopping": False, "batch_size": 64}
    net = make_estimator("torch-mlp", "multiclass", params, random_state=0, n_jobs=1)
    accuracy = get_metric("accuracy")
    plain = cross_validate(net, X, y, folds, metric=accuracy, task="multiclass")
    scaled = cross_validate(net, X, y, folds, metric=accuracy, task="multiclass", calibration="temperature")  # fmt: skip
    np.testing.assert_array_equal(plain.oof.argmax(1), scaled.oof.argmax(1))
    assert [f.score for f in plain.folds] == [f.score for f in scaled.folds]
    for split, fold in zip(folds.splits(), scaled.folds, strict=True):
        t = fold.calibration["temperature"]
        assert 0.05 <= t <= 20 and t != 1.0
        np.testing.assert_allclose(
            scaled.oof[split.valid], _scaled(plain.oof[split.valid], t), atol=1e-9
        )
        assert {"ece_before", "ece_after", "brier_before", "brier_after"} <= set(fold.calibration)
