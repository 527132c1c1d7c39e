"""The permuted-target audit: honest pipelines at chance, a planted leak flagged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin

from kfw.core.cv import cross_validate
from kfw.core.folds import Folds, FoldScheme, assign_folds
from kfw.core.metrics import get_metric
from kfw.study.audit import chance_score, permutation_audit, permute_within_folds, skill
from models.lgbm import LGBMClassifier, LGBMRegressor


def _setup(n=600, seed=0):
    rng = np.random.default_rng(seed)
    # a high-cardinality id-like column (about 4 rows per group) and two real signals
    X = pd.DataFrame(
        {"grp": rng.integers(0, n // 4, n), "a": rng.normal(size=n), "b": rng.normal(size=n)}
    )
    y = (X["a"] + rng.normal(size=n) > 0).astype(int).to_numpy()
    scheme = FoldScheme("stratified", n_splits=5, seed=1)
    assignment, _ = assign_folds(scheme, n, y, task="binary")
    return X, y, Folds(scheme, np.arange(n), assignment, None, "h")


MODEL = LGBMClassifier(n_estimators=60, num_leaves=7, learning_rate=0.1, n_jobs=1)


class FoldLocalTargetMean(TransformerMixin, BaseEstimator):
    """The honest version: group means learned from the training part only (others: prior)."""

    def fit(self, X, y):
        frame = pd.DataFrame({"g": X["grp"].to_numpy(), "y": y})
        self.means_ = frame.groupby("g")["y"].mean()
        self.prior_ = float(np.mean(y))
        return self

    def transform(self, X):
        X = X.copy()
        X["te"] = X["grp"].map(self.means_).fillna(self.prior_).astype(float)
        return X


def test_planted_leak_is_flagged_and_honest_pipeline_is_not():
    X, y, folds = _setup()
    metric = get_metric("roc_auc")

    def leaky(y_perm):
        # the classic mistake: a target mean over ALL training rows, before the folds
        Xl = X.copy()
        Xl["te"] = pd.Series(y_perm).groupby(Xl["grp"]).transform("mean")
        return cross_validate(MODEL, Xl, y_perm, folds, metric=metric, task="binary").oof

    def honest(y_perm):
        return cross_validate(
            MODEL, X, y_perm, folds, metric=metric, task="binary", features=FoldLocalTargetMean()
        ).oof

    flagged = permutation_audit(leaky, y, folds, metric, "binary", n_permutations=2, seed=0)
    clean = permutation_audit(honest, y, folds, metric, "binary", n_permutations=2, seed=0)
    assert flagged.leak, flagged
    assert flagged.score > 0.7  # noise scored like signal: the leak inflates CV massively
    assert not clean.leak, clean
    assert abs(clean.score - 0.5) < 0.06
    assert clean.chance == pytest.approx(0.5)


def test_regression_audit_uses_the_learn_nothing_model_as_chance():
    rng = np.random.default_rng(3)
    n = 500
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    y = np.exp(10 + X["a"].to_numpy() + 0.3 * rng.normal(size=n))
    scheme = FoldScheme("kfold", n_splits=5, seed=0)
    folds = Folds(scheme, np.arange(n), assign_folds(scheme, n)[0], None, "h")
    metric = get_metric("rmsle")
    model = LGBMRegressor(n_estimators=80, num_leaves=7, n_jobs=1)

    def run(y_perm):
        return cross_validate(
            model, X, y_perm, folds, metric=metric, task="regression", target_transform="log1p"
        ).oof

    result = permutation_audit(
        run, y, folds, metric, "regression", target_transform="log1p", n_permutations=2
    )
    assert not result.leak
    # the same model on the real target has real skill, far above the tolerance
    real = run(y)
    assert (
        skill(metric, metric(y, real), chance_score(metric, "regression", y, folds, "log1p")) > 0.5
    )


def test_permutation_keeps_each_fold_s_values():
    _, y, folds = _setup()
    y_perm = permute_within_folds(y, folds, np.random.default_rng(0))
    for k in range(5):
        rows = folds.assignment[:, 0] == k
        assert sorted(y[rows]) == sorted(y_perm[rows])
    assert (y_perm != y).any()


def test_skill_direction():
    acc, rmse = get_metric("accuracy"), get_metric("rmse")
    assert skill(acc, 0.8, 0.6) == pytest.approx(0.5)
    assert skill(rmse, 0.5, 1.0) == pytest.approx(0.5)
    assert skill(rmse, 1.1, 1.0) < 0


def test_with_drift_the_audit_reports_a_test_like_cv_that_kfw_runs_shows_too(home) -> None:
    from typer.testing import CliRunner

    from kfw.cli.app import app
    from tests.synth import frames, make_competition, write_files

    data = make_competition(home, models=("logreg",), write_data=False)
    train, test = frames(n_train=400, n_test=200, seed=5)
    test["x0"] += 1.5  # the test set drifted on x0
    write_files(data, train, test)
    runner = CliRunner()
    args = ["--home", str(home)]
    assert runner.invoke(app, [*args, "cv", "synth", "--no-wandb"]).exit_code == 0
    out = runner.invoke(app, [*args, "audit", "synth", "--permutations", "1"])
    assert "train and test differ" in out.stdout and "test-like CV" in out.stdout, out.output
    saved = pd.read_csv(home / "data" / "synth" / "adversarial.csv")
    assert list(saved.columns) == ["Id", "p_test"] and len(saved) == 400
    shown = runner.invoke(app, [*args, "runs", "synth", "--test-like"])
    assert shown.exit_code == 0, shown.output
    # the column is the run's score on the quarter of rows most like the test set
    (run_json,) = (home / "runs" / "synth").glob("*/run.json")
    run_dir = run_json.parent
    oof = pd.read_parquet(run_dir / "oof.parquet")
    top = saved.sort_values("p_test", ascending=False, kind="stable").head(100)["Id"]
    rows = oof["Id"].isin(top).to_numpy()
    expected = get_metric("roc_auc")(oof["target"].to_numpy()[rows], oof["pred"].to_numpy()[rows])
    assert f"{expected:.5f}" in shown.stdout
