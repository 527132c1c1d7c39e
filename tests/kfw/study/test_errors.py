"""Error analysis: a planted bad segment found with an interval clear of the overall score,
flipped labels among the worst rows, true nearest neighbours, losses that add up to the run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from kfw.cli.app import app
from kfw.core.config import load_competition
from kfw.core.metrics import get_metric
from kfw.core.runstore import RunStore
from kfw.errors import KfwError
from kfw.study.errors import (
    ErrorReport,
    analyse_errors,
    bootstrap_interval,
    nearest_rows,
    row_losses,
    segment_labels,
    write_errors,
)
from tests.synth import frames, make_competition, write_files

ENV = {"KFW_THREADS": "1", "WANDB_MODE": "disabled"}
TOLERANCE = 1e-9  # per-row losses against the run's own metric


@dataclass
class Run:
    home: Path
    slug: str
    run_id: str
    flipped: set[int]


def _cv(home: Path, slug: str) -> str:
    result = CliRunner().invoke(app, ["--home", str(home), "cv", slug], env=ENV)
    assert result.exit_code == 0, result.output
    (run_id,) = [r["id"] for r in RunStore(home, slug).records()]
    return run_id


@pytest.fixture(scope="module")
def noisy(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A binary competition whose category "c" has half its labels flipped."""
    home = tmp_path_factory.mktemp("errors") / "home"
    data = make_competition(home, models=("logreg",), write_data=False)
    train, test = frames("binary", n_train=600, n_test=40, seed=1, signal=2.0)
    rng = np.random.default_rng(5)
    flip = (train["cat"] == "c").to_numpy() & (rng.random(len(train)) < 0.5)
    train.loc[flip, "target"] = 1 - train.loc[flip, "target"]
    write_files(data, train, test)
    return Run(home, "synth", _cv(home, "synth"), set(train.loc[flip, "Id"]))


@pytest.fixture(scope="module")
def regression(tmp_path_factory: pytest.TempPathFactory) -> Run:
    home = tmp_path_factory.mktemp("errors-reg") / "home"
    make_competition(home, slug="reg", task="regression", models=("ridge",))
    return Run(home, "reg", _cv(home, "reg"), set())


def _analyse(run: Run, **kwargs: Any) -> ErrorReport:
    return analyse_errors(load_competition(run.slug, run.home), run.home, run.run_id, **kwargs)


def test_the_noisy_segment_is_worst_and_clear_of_the_overall_score(noisy: Run) -> None:
    report = _analyse(noisy, by=["cat", "x0"], top=10)
    table = report.segments["cat"]
    assert table["segment"].iloc[0] == "c"
    assert table["high"].iloc[0] < report.score
    assert table["rows"].sum() == report.n_rows == 600
    assert (table["low"] <= table["score"]).all() and (table["score"] <= table["high"]).all()
    assert table["diff"].to_numpy() == pytest.approx(table["score"].to_numpy() - report.score)
    assert len(report.segments["x0"]) == 5  # quantile bins


def test_the_worst_rows_are_mostly_flipped_labels(noisy: Run) -> None:
    report = _analyse(noisy, top=10)
    worst = report.worst
    assert list(worst.columns[:4]) == ["Id", "target", "prediction", "loss"]
    assert {"x0", "x1", "x2", "cat", "nn1_id", "nn3_target", "nn3_distance"} <= set(worst.columns)
    assert worst["loss"].is_monotonic_decreasing
    assert sum(i in noisy.flipped for i in worst["Id"]) >= 7


def test_losses_average_to_the_run_log_loss(noisy: Run) -> None:
    store = RunStore(noisy.home, noisy.slug)
    y, pred, _ = store.predictions(noisy.run_id)
    losses = row_losses(y.astype(int), pred, "binary", "roc_auc")
    assert losses.mean() == pytest.approx(get_metric("log_loss")(y, pred), abs=TOLERANCE)
    report = _analyse(noisy, top=len(y))
    assert report.worst["loss"].sum() == pytest.approx(losses.sum(), abs=TOLERANCE)


def test_regression_losses_average_to_rmsle_squared_and_residuals_are_drawn(
    regression: Run, tmp_path: Path
) -> None:
    store = RunStore(regression.home, regression.slug)
    y, pred, _ = store.predictions(regression.run_id)
    record = store.record(regression.run_id)
    assert row_losses(y, pred, "regression", "rmsle").mean() == pytest.approx(
        record["score"] ** 2, rel=1e-9
    )
    report = _analyse(regression, by=["x1"], top=3)
    assert report.residuals is not None and len(report.residuals) == len(y)
    written = write_errors(report, tmp_path)
    assert {p.name for p in written} == {
        "worst.csv",
        "segments-x1.csv",
        "residuals.png",
        "errors.md",
    }
    assert (tmp_path / "residuals.png").read_bytes()[:4] == b"\x89PNG"


def test_nearest_rows_are_the_brute_force_nearest_and_never_the_row() -> None:
    rng = np.random.default_rng(0)
    features = pd.DataFrame(
        {
            "a": rng.normal(size=40),
            "b": rng.normal(scale=10, size=40),
            "c": rng.choice(["u", "v", "w"], size=40),
        }
    )
    features.loc[[3, 7], "b"] = np.nan
    features.loc[[5], "c"] = np.nan
    rows = np.array([0, 3, 5, 17])
    index, distance = nearest_rows(features, rows, 4)
    # brute force: standardise (ddof 0, missing at the mean), then pair by pair
    z = features[["a", "b"]]
    z = ((z - z.mean()) / z.std(ddof=0)).fillna(0.0).to_numpy()
    cat = features["c"].fillna("<missing>").to_numpy()
    for i, r in enumerate(rows):
        d = [
            np.inf if j == r else np.sqrt(((z[r] - z[j]) ** 2).sum() + (cat[r] != cat[j]))
            for j in range(len(features))
        ]
        assert r not in index[i]
        assert list(index[i]) == list(np.argsort(d, kind="stable")[:4])
        assert distance[i] == pytest.approx(np.sort(d)[:4])


def test_segments_group_rare_values_and_bin_numbers() -> None:
    values = pd.Series(["a"] * 30 + ["b"] * 25 + ["rare"] * 3 + [None] * 21)
    labels, _ = segment_labels(values, min_count=20)
    assert labels.value_counts().to_dict() == {"a": 30, "b": 25, "missing": 21, "other": 3}
    numbers = pd.Series(np.arange(100.0))
    labels, note = segment_labels(numbers, n_bins=4)
    assert labels.nunique() == 4 and "4 quantile bins" in note
    few = pd.Series([1, 2, 3] * 30)  # as few values as bins: by value
    assert set(segment_labels(few, n_bins=5)[0]) == {"1", "2", "3"}


def test_bootstrap_is_seeded_and_covers_the_score() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p = np.clip(0.5 * y + 0.5 * rng.random(200), 0, 1)
    metric = get_metric("roc_auc")
    low, high = bootstrap_interval(metric, y, p, n_boot=200, seed=3)
    assert low <= metric(y, p) <= high
    assert (low, high) == bootstrap_interval(metric, y, p, n_boot=200, seed=3)


def test_bad_inputs_raise_one_line(noisy: Run) -> None:
    with pytest.raises(KfwError, match="no such column"):
        _analyse(noisy, by=["nope"])
    with pytest.raises(KfwError, match="--top"):
        _analyse(noisy, top=0)
    with pytest.raises(KfwError, match="no run"):
        analyse_errors(load_competition("synth", noisy.home), noisy.home, "nope")


def test_multiclass_losses_average_to_the_run_log_loss(tmp_path: Path) -> None:
    home = tmp_path / "home"
    make_competition(home, slug="multi", task="multiclass", models=("logreg",))
    run = Run(home, "multi", _cv(home, "multi"), set())
    record = RunStore(home, "multi").record(run.run_id)
    report = _analyse(run, top=10_000, k=1, by=["cat"])
    assert report.worst["loss"].mean() == pytest.approx(record["score"], abs=TOLERANCE)
    assert report.score == pytest.approx(record["score"], abs=TOLERANCE)
    assert set(report.worst["prediction"]) <= {0, 1, 2}
    p_true = report.worst["p_true"].to_numpy()
    assert report.worst["loss"].to_numpy() == pytest.approx(-np.log(p_true))
