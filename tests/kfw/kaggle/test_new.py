"""kfw new: a competition inferred from its download alone, run, and submitted (dry run).

Generated downloads of every task type and submission format, with what real ones contain:
column names with hyphens, spaces and dots, empty cells, string targets, ids from 1000, test
categories unseen in train.
"""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from kfw.cli.app import app
from tests.synth import kaggle_download

RUNNER = CliRunner()
CASES = {
    # kind: (metric, task, submission format, target columns)
    "binary-label": ("accuracy", "binary", "label", "approved"),
    "binary-proba": ("roc_auc", "binary", "proba", "approved"),
    "multiclass-label": ("accuracy", "multiclass", "label", "grade"),
    "multiclass-proba": ("log_loss", "multiclass", "proba", "grade"),
    "regression": ("rmse", "regression", "value", "price"),
    "multi-target": ("roc_auc", "binary", "proba", ["default", "late"]),
}


def kfw(home: Path, *args: str):
    return RUNNER.invoke(app, ["--home", str(home), *args])


def _ok(result):
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


@pytest.mark.parametrize("kind", list(CASES))
def test_new_cv_submit_for_every_task_and_format(home, tmp_path, kind):
    metric, task, fmt, target = CASES[kind]
    source = kaggle_download(tmp_path / "download", kind)
    _ok(kfw(home, "new", "comp", "--from", str(source), "--metric", metric))
    spec = tomllib.loads((home / "competitions" / "comp" / "competition.toml").read_text())
    assert (spec["task"], spec["submission"]["format"], spec["target"]) == (task, fmt, target)
    assert spec["id"] == "row id"
    assert (home / "data" / "comp" / "train.csv").is_file()
    _ok(kfw(home, "cv", "comp", "--model", "lgbm", "-p", "n_estimators=40"))
    out = tmp_path / "submission.csv"
    _ok(kfw(home, "submit", "comp", "--dry-run", "--output", str(out)))
    sub, sample = pd.read_csv(out), pd.read_csv(source / "sample_submission.csv")
    assert list(sub.columns) == list(sample.columns)
    assert sorted(sub["row id"]) == sorted(sample["row id"])
    if fmt == "label":  # string classes come back spelled as in train
        classes = set(pd.read_csv(source / "train.csv")[target])
        assert set(sub[target]) <= classes
    if fmt == "proba":
        values = sub.drop(columns=["row id"]).to_numpy()
        assert ((values >= 0) & (values <= 1)).all()
        if kind == "multiclass-proba":
            np.testing.assert_allclose(values.sum(axis=1), 1.0, atol=1e-9)


def test_decisions_are_printed_one_per_line_and_roles_inferred(home, tmp_path):
    source = kaggle_download(tmp_path / "download", "binary-proba")
    result = kfw(home, "new", "loans", "--from", str(source), "--metric", "roc_auc")
    out = _ok(result)
    for line in (
        "id column: row id",
        "target: approved",
        "task: binary",
        "metric: roc_auc",
        "folds: stratified 5-fold, repeated 3 times (300 rows: one split's CV moves with its seed)",
    ):
        assert line in out
    features = (home / "competitions" / "loans" / "features.py").read_text()
    assert "'high_cardinality': ['city']" in features and "'date': ['opened']" in features
    assert "probabilities are of class 'Yes'" in out


def test_the_default_roster_ensembles_and_a_time_limit_still_submits(home, tmp_path):
    source = kaggle_download(tmp_path / "download", "binary-label", n_train=200, n_test=60)
    _ok(kfw(home, "new", "quick", "--from", str(source), "--metric", "accuracy"))
    out = _ok(kfw(home, "cv", "quick", "--time-limit", "0s"))  # only the first member runs
    assert "time limit of 0 s reached" in out
    _ok(kfw(home, "submit", "quick", "--dry-run", "--output", str(tmp_path / "s.csv")))


def test_extra_training_rows_join_training_parts_only(home, tmp_path):
    source = kaggle_download(tmp_path / "download", "regression")
    original = kaggle_download(tmp_path / "original", "regression", n_train=150, n_test=10, seed=9)
    _ok(kfw(home, "new", "ep", "--from", str(source), "--metric", "rmse"))
    out = _ok(
        kfw(home, "cv", "ep", "--model", "ridge", "--extra-train", str(original / "train.csv"))
    )
    assert "extra training rows: 150" in out
    import json

    (run,) = [json.loads(p.read_text()) for p in (home / "runs" / "ep").glob("*/run.json")]
    assert run["extra_train"]["rows"] == 150
    oof = pd.read_parquet(home / "runs" / "ep" / run["id"] / "oof.parquet")
    assert len(oof) == 300  # scored on the competition's own rows only


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("no-sample", "no sample submission"),
        ("no-target", "cannot infer the target"),
        ("bad-metric", "does not fit task"),
        ("mismatch", "test has columns train lacks"),
        ("empty", "empty"),
        ("no-metric", "pass --metric"),
    ],
)
def test_bad_downloads_are_one_clear_line_and_write_nothing(home, tmp_path, breakage, message):
    source = kaggle_download(tmp_path / "download", "binary-label")
    metric = "accuracy"
    if breakage == "no-sample":
        (source / "sample_submission.csv").unlink()
    elif breakage == "no-target":
        pd.read_csv(source / "sample_submission.csv").rename(
            columns={"approved": "outcome"}
        ).to_csv(source / "sample_submission.csv", index=False)
        train = pd.read_csv(source / "train.csv")
        train["extra_a"] = 1
        train["extra_b"] = 2  # two train-only columns: nothing says which is the target
        train.to_csv(source / "train.csv", index=False)
    elif breakage == "bad-metric":
        metric = "rmse"
    elif breakage == "mismatch":
        test = pd.read_csv(source / "test.csv")
        test["surprise"] = 1
        test.to_csv(source / "test.csv", index=False)
    elif breakage == "empty":
        (source / "test.csv").write_text("")
    args = ["new", "bad", "--from", str(source)] + (
        [] if breakage == "no-metric" else ["--metric", metric]
    )
    result = kfw(home, *args)
    assert result.exit_code != 0
    assert message in str(result.exception)
    assert not (home / "competitions" / "bad").exists()
    assert not (home / "data" / "bad").exists()


def test_existing_competition_needs_force(home, tmp_path):
    source = kaggle_download(tmp_path / "download", "regression")
    _ok(kfw(home, "new", "again", "--from", str(source), "--metric", "rmse"))
    result = kfw(home, "new", "again", "--from", str(source), "--metric", "rmse")
    assert result.exit_code != 0 and "--force" in str(result.exception)
    _ok(kfw(home, "new", "again", "--from", str(source), "--metric", "mae", "--force"))
    assert 'metric = "mae"' in (home / "competitions" / "again" / "competition.toml").read_text()


def test_new_from_a_zip(home, tmp_path):
    source = kaggle_download(tmp_path / "download", "regression")
    archive = shutil.make_archive(str(tmp_path / "comp"), "zip", source)
    _ok(kfw(home, "new", "zipped", "--from", archive, "--metric", "rmse"))
    assert (home / "data" / "zipped" / "sample_submission.csv").is_file()


@pytest.mark.parametrize(
    ("kind", "metric", "task", "fmt"),
    [
        (
            "multiclass-label",
            "mcc",
            "multiclass",
            "label",
        ),  # any metric of classes, not a fixed list
        ("binary-label", "balanced_accuracy", "binary", "label"),
        ("binary-proba", "average_precision", "binary", "proba"),
        ("binary-label", "cost@5", "binary", "label"),
    ],
)
def test_the_task_and_format_follow_what_the_metric_scores(home, tmp_path, kind, metric, task, fmt):
    source = kaggle_download(tmp_path / "download", kind)
    _ok(kfw(home, "new", "comp", "--from", str(source), "--metric", metric))
    spec = tomllib.loads((home / "competitions" / "comp" / "competition.toml").read_text())
    assert (spec["metric"], spec["task"], spec["submission"]["format"]) == (metric, task, fmt)


def test_the_roster_is_the_portfolio_and_a_skewed_target_gets_a_transformed_twin(home, tmp_path):
    from kfw.core.portfolio import PORTFOLIO

    source = kaggle_download(tmp_path / "download", "regression")  # prices, skewness 3.4
    out = _ok(kfw(home, "new", "skewed", "--from", str(source), "--metric", "rmse"))
    spec = tomllib.loads((home / "competitions" / "skewed" / "competition.toml").read_text())
    labels = [m.get("alias", m["name"]) for m in spec["models"]]
    twins = [m for m in spec["models"] if "target_transform" in m.get("params", {})]
    assert len(twins) == 1 and twins[0]["params"]["target_transform"] == "log1p"
    first_boosted = next(p for p in PORTFOLIO if p != "linear")
    assert labels[: labels.index(twins[0]["alias"]) + 1][-2:] == [
        first_boosted,
        f"{first_boosted}-log",
    ]
    assert [label for label in labels if label != twins[0]["alias"]] == [
        "ridge" if p == "linear" else p for p in PORTFOLIO
    ]
    assert f"{first_boosted}-log fits log1p of the skewed target" in out
    train = pd.read_csv(source / "train.csv")
    train["price"] = np.log(train["price"])  # nearly symmetric now: no twin
    train.to_csv(source / "train.csv", index=False)
    _ok(kfw(home, "new", "plain", "--from", str(source), "--metric", "rmse"))
    spec = tomllib.loads((home / "competitions" / "plain" / "competition.toml").read_text())
    assert not [m for m in spec["models"] if "target_transform" in m.get("params", {})]
