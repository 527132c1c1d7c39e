"""Decision thresholds tuned inside the folds: chosen on an inner split of each training part,
never on the rows they are scored on; the optimistic shortcut shown beside, labelled."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kfw.cli import main
from kfw.core.cv import at_threshold, choose_threshold, cross_validate
from kfw.core.metrics import get_metric
from kfw.core.registry import make_estimator
from kfw.errors import ConfigError
from tests.kfw.core.test_cv import _folds, _permuted_fold
from tests.synth import make_competition


def _imbalanced(n: int = 600, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """About 8% positives: a 0.5 cut on calibrated probabilities misses most of them."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    y = (X["a"] + 0.8 * rng.normal(size=n) > 1.9).astype(int).to_numpy()
    return X, y


def test_choose_threshold_finds_the_best_cut_and_prefers_one_near_half():
    f1 = get_metric("f1")
    y = np.array([0, 0, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.35, 0.4])
    t = choose_threshold(f1, y, p)
    assert 0.3 < t <= 0.35 and f1(y, at_threshold(p, t)) == 1.0
    # every cut between the classes is perfect: the one nearest 0.5 is kept
    y, p = np.array([0, 1]), np.array([0.2, 0.9])
    assert choose_threshold(get_metric("accuracy"), y, p) == 0.5


def test_a_folds_tuned_threshold_never_sees_its_own_labels():
    X, y = _imbalanced(400, seed=1)
    folds = _folds(len(X), k=3, y=y)
    model = make_estimator("logreg", "binary", {}, random_state=0, n_jobs=1)
    runs = [
        cross_validate(model, X, labels, folds, metric=get_metric("f1"), task="binary", threshold="tune")
        for labels in (y, _permuted_fold(y, folds, 0))
    ]  # fmt: skip
    assert runs[0].folds[0].threshold == runs[1].folds[0].threshold is not None
    assert runs[0].folds[0].score != runs[1].folds[0].score  # the labels did change


def test_with_a_model_that_stops_early_the_threshold_comes_from_its_inner_fit():
    X, y = _imbalanced(400, seed=2)
    folds = _folds(len(X), k=3, y=y)
    params = {
        "n_estimators": 200,
        "learning_rate": 0.1,
        "num_leaves": 7,
        "early_stopping_rounds": 10,
    }
    model = make_estimator("lgbm", "binary", params, random_state=0, n_jobs=1)
    runs = [
        cross_validate(model, X, labels, folds, metric=get_metric("f1"), task="binary", threshold="tune")
        for labels in (y, _permuted_fold(y, folds, 1))
    ]  # fmt: skip
    assert runs[0].early_stopping == "inner"
    assert runs[0].folds[1].threshold == runs[1].folds[1].threshold


def test_tuning_beats_half_on_imbalanced_data_and_the_oof_shortcut_is_kept_apart():
    X, y = _imbalanced(900, seed=3)
    folds = _folds(len(X), k=4, y=y)
    model = make_estimator("logreg", "binary", {}, random_state=0, n_jobs=1)
    f1 = get_metric("f1")
    fixed = cross_validate(model, X, y, folds, metric=f1, task="binary")
    tuned = cross_validate(model, X, y, folds, metric=f1, task="binary", threshold="tune")
    np.testing.assert_array_equal(fixed.oof, tuned.oof)  # the probabilities are the same
    assert tuned.score_at_default == fixed.score and fixed.threshold is None
    assert tuned.score > fixed.score + 0.05  # the in-fold threshold pays on 8% positives
    assert all(f.threshold < 0.5 for f in tuned.folds)
    # the headline scores each row at its own fold's threshold
    labels = np.zeros(len(y))
    for s, f in zip(folds.splits(), tuned.folds, strict=True):
        labels[s.valid] = at_threshold(tuned.oof[s.valid], f.threshold)
    assert tuned.score == f1(y, labels)
    # the shortcut tunes on the OOF it scores: never worse than 0.5 there, and not the headline
    assert tuned.score_oof_tuned >= tuned.score_at_default
    assert tuned.score_oof_tuned == f1(y, at_threshold(tuned.oof, tuned.oof_threshold))
    assert tuned.threshold == pytest.approx(np.median([f.threshold for f in tuned.folds]))


def test_tuning_a_metric_that_reads_probabilities_is_refused():
    X, y = _imbalanced(200)
    model = make_estimator("logreg", "binary", {}, random_state=0, n_jobs=1)
    with pytest.raises(
        ValueError, match="threshold tuning needs a binary label metric, not roc_auc"
    ):
        cross_validate(model, X, y, _folds(len(X), 3, y=y), metric=get_metric("roc_auc"), task="binary", threshold="tune")  # fmt: skip


# --- through the command line: the record, the submission, the bad inputs


def _f1_competition(
    home: Path, task: str = "binary", models: tuple[str, ...] = ("logreg",)
) -> Path:
    make_competition(home, task=task, models=models, n_train=300, signal=0.6)
    toml = home / "competitions" / "synth" / "competition.toml"
    if task == "binary":
        toml.write_text(toml.read_text().replace('metric = "roc_auc"', 'metric = "f1"'))
    return toml


def _run(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_cv_threshold_tune_records_each_folds_threshold_and_submits_at_the_median(
    home: Path, capsys
) -> None:
    _f1_competition(home)
    code, out, err = _run(capsys, "cv", "synth", "--threshold", "tune", "--no-wandb")
    assert code == 0, err
    run_dir = next((home / "runs" / "synth").glob("*/run.json")).parent
    record = json.loads((run_dir / "run.json").read_text())
    folds = [f["threshold"] for f in record["fold_scores"]]
    assert record["threshold_mode"] == "tune" and len(folds) == 4 and None not in folds
    assert record["threshold"] == pytest.approx(np.median(folds))
    assert record["score_oof_tuned"] >= record["score_at_default_threshold"]
    assert "OPTIMISTIC: chosen on the rows it scores" in out
    test = pd.read_parquet(run_dir / "test.parquet")
    sub = pd.read_csv(run_dir / "submission.csv")
    expected = (test.iloc[:, 1].to_numpy() >= record["threshold"]).astype(int)
    np.testing.assert_array_equal(sub.iloc[:, 1].to_numpy(), expected)


@pytest.mark.parametrize(
    ("task", "metric", "says"),
    [
        ("regression", None, "is for one binary target; synth is regression"),
        ("binary", "roc_auc", "roc_auc reads the probabilities"),
    ],
)
def test_threshold_tune_where_no_threshold_applies_is_one_line(
    home: Path, capsys, task, metric, says
):
    toml = _f1_competition(home, task)
    if metric:
        toml.write_text(toml.read_text().replace('metric = "f1"', f'metric = "{metric}"'))
    before = sorted(home.rglob("*"))
    code, _, err = _run(capsys, "cv", "synth", "--threshold", "tune")
    assert code == 1
    assert err.strip().startswith("kfw: error: --threshold tune: ") and says in err
    assert len(err.strip().splitlines()) == 1
    assert sorted(home.rglob("*")) == before  # nothing written: no folds, no run


def test_a_custom_cost_is_a_metric_and_tuning_cuts_where_it_costs_least():
    from sklearn.metrics import confusion_matrix

    cost = get_metric("cost@5")
    assert cost.name == "cost@5" and not cost.greater_is_better and cost.uses_threshold
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 2, 200), rng.random(200)
    for t in (0.2, 0.5, 0.8):
        (_, fp), (fn, _) = confusion_matrix(y, p >= t, labels=[0, 1])
        assert cost.at_threshold(t)(y, p) == pytest.approx((fp + 5 * fn) / 200, abs=1e-12)
    X, y = _imbalanced(900, seed=4)
    folds = _folds(len(X), k=4, y=y)
    model = make_estimator("logreg", "binary", {}, random_state=0, n_jobs=1)
    tuned = cross_validate(model, X, y, folds, metric=cost, task="binary", threshold="tune")
    assert tuned.score < tuned.score_at_default  # lower cost than cutting at 0.5
    assert all(f.threshold < 0.5 for f in tuned.folds)  # a missed positive costs 5 false alarms
    with pytest.raises(ConfigError, match="cost@<w> needs a finite false-negative cost w > 0"):
        get_metric("cost@0")


def test_an_ensemble_tunes_its_threshold_on_the_other_folds_and_submits_at_it(
    home: Path, capsys
) -> None:
    _f1_competition(home, models=("logreg", "lgbm"))
    code, out, err = _run(capsys, "cv", "synth", "--threshold", "tune", "--no-wandb")
    assert code == 0, err
    assert "blend  threshold tuned in each fold on the other folds" in out
    runs = [json.loads(p.read_text()) for p in (home / "runs" / "synth").glob("*/run.json")]
    blend = next(r for r in runs if r["kind"] == "ensemble")
    folds = [f["threshold"] for f in blend["fold_scores"]]
    assert blend["threshold_mode"] == "tune" and len(folds) == 4
    assert blend["threshold"] == pytest.approx(np.median(folds))
    assert blend["score_oof_tuned"] >= blend["score_at_default_threshold"]
    run_dir = home / "runs" / "synth" / blend["id"]
    test = pd.read_parquet(run_dir / "test.parquet").iloc[:, 1].to_numpy()
    sub = pd.read_csv(run_dir / "submission.csv").iloc[:, 1].to_numpy()
    np.testing.assert_array_equal(sub, (test >= blend["threshold"]).astype(int))


def test_a_blends_fold_threshold_never_sees_that_folds_labels():
    from kfw.ensemble.stack import stack

    X, y = _imbalanced(600, seed=5)
    folds = _folds(len(X), k=3, y=y)
    f1 = get_metric("f1")
    members = [make_estimator(m, "binary", {}, random_state=0, n_jobs=1) for m in ("logreg", "rf")]
    oofs = [cross_validate(m, X, y, folds, metric=f1, task="binary").oof for m in members]
    permuted = _permuted_fold(y, folds, 0)
    runs = [stack("blend", oofs, [None, None], labels, folds, f1, "binary", threshold="tune") for labels in (y, permuted)]  # fmt: skip
    # fold 0's weights and threshold come from folds 1 and 2 only
    assert runs[0].fold_thresholds[0] == runs[1].fold_thresholds[0]
    np.testing.assert_array_equal(runs[0].fold_weights[0], runs[1].fold_weights[0])
    assert runs[0].fold_scores[0] != runs[1].fold_scores[0]
