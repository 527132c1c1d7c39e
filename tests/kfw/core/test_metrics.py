"""kfw.core.metrics against scikit-learn (and loop references for MAP@k and ECE) on random, tie-heavy inputs."""

from __future__ import annotations

import subprocess
import sys
import warnings
from functools import partial

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from kfw.core.metrics import METRICS, check_metric_task, confusion_matrix, fbeta, get_metric
from kfw.errors import ConfigError

RTOL = 1e-12  # relative tolerance of every parity check
ATOL = 1e-15  # only matters for scores that land on ~0 (r2, qwk), where rtol alone is vacuous
# ECE has no scikit-learn twin; the loop reference sums per bin in another order, so a score
# near 0 keeps an absolute error of ~n * 1e-16
ECE_ATOL = 1e-13
SETTINGS = settings(max_examples=40, deadline=None)

seeds = st.integers(0, 2**32 - 1)
sizes = st.integers(2, 120)
class_counts = st.integers(3, 6)
# any cut, and the tie-heavy case's levels themselves, so rows land exactly on the cut
thresholds = st.one_of(st.floats(0.0, 1.0), st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]))

# the metrics of labels and their scikit-learn twins on labels (binary: of class 1)
LABEL_TWINS = {
    "accuracy": skm.accuracy_score,
    "f1": skm.f1_score,
    "f2": partial(skm.fbeta_score, beta=2),
    "precision": skm.precision_score,
    "recall": skm.recall_score,
    "balanced_accuracy": skm.balanced_accuracy_score,
    "mcc": skm.matthews_corrcoef,
}
MACRO = {"f1", "f2", "precision", "recall"}  # average="macro" for multiclass


def close(ours: float, theirs: float) -> None:
    assert ours == pytest.approx(theirs, rel=RTOL, abs=ATOL)


def sk(fn, *args, **kwargs) -> float:
    """Call a scikit-learn metric with its undefined-metric / normalisation warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(fn(*args, **kwargs))


def binary_case(n: int, seed: int, ties: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]  # both classes, so roc_auc is defined
    p = rng.random(n)
    if ties:
        p = np.round(p * 4) / 4  # five levels, exact 0.0, 0.5 and 1.0 included
    return y, p


def multiclass_case(n: int, k: int, seed: int, ties: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n + k)
    y[:k] = np.arange(k)  # every class present, as OvR roc_auc needs
    raw = rng.integers(1, 4, (n + k, k)).astype(float) if ties else rng.dirichlet(np.ones(k), n + k)
    return y, raw / raw.sum(axis=1, keepdims=True)


# --- parity with scikit-learn -------------------------------------------------------------------


@SETTINGS
@given(sizes, seeds, st.booleans())
def test_binary_parity(n: int, seed: int, ties: bool) -> None:
    y, p = binary_case(n, seed, ties)
    labels = (p >= 0.5).astype(int)
    close(get_metric("accuracy")(y, p), skm.accuracy_score(y, labels))
    close(get_metric("f1")(y, p), sk(skm.f1_score, y, labels))
    close(get_metric("roc_auc")(y, p), skm.roc_auc_score(y, p))
    close(get_metric("log_loss")(y, p), skm.log_loss(y, p, labels=[0, 1]))


@SETTINGS
@given(sizes, class_counts, seeds, st.booleans())
def test_multiclass_parity(n: int, k: int, seed: int, ties: bool) -> None:
    y, proba = multiclass_case(n, k, seed, ties)
    labels = np.argmax(proba, axis=1)
    close(get_metric("accuracy")(y, proba), skm.accuracy_score(y, labels))
    close(get_metric("f1")(y, proba), sk(skm.f1_score, y, labels, average="macro"))
    close(
        get_metric("roc_auc")(y, proba),
        skm.roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=range(k)),
    )
    close(get_metric("log_loss")(y, proba), sk(skm.log_loss, y, proba, labels=range(k)))
    close(
        get_metric("qwk")(y, proba),
        sk(skm.cohen_kappa_score, y, labels, weights="quadratic", labels=range(k)),
    )


@SETTINGS
@given(sizes, seeds, st.booleans(), thresholds)
def test_binary_label_metrics_at_any_threshold(n: int, seed: int, ties: bool, t: float) -> None:
    y, p = binary_case(n, seed, ties)
    labels = (p >= t).astype(int)
    for name, twin in LABEL_TWINS.items():
        metric = get_metric(name)
        close(metric.at_threshold(t)(y, p), sk(twin, y, labels))
        if t == 0.5:
            assert metric(y, p) == metric.at_threshold(t)(y, p)
    expected = skm.confusion_matrix(y, labels, labels=[0, 1])
    np.testing.assert_array_equal(confusion_matrix(y, p, threshold=t), expected)


@SETTINGS
@given(sizes, seeds, st.booleans())
def test_binary_probability_metrics_parity(n: int, seed: int, ties: bool) -> None:
    y, p = binary_case(n, seed, ties)
    close(get_metric("average_precision")(y, p), skm.average_precision_score(y, p))
    close(get_metric("brier")(y, p), skm.brier_score_loss(y, p))
    # the two-column layout of the same probabilities scores the same, as in scikit-learn
    proba = np.column_stack([1 - p, p])
    close(get_metric("brier")(y, proba), skm.brier_score_loss(y, proba, labels=[0, 1]))
    close(get_metric("brier")(y, proba), get_metric("brier")(y, p))


@SETTINGS
@given(sizes, class_counts, seeds, st.booleans())
def test_multiclass_new_metrics_parity(n: int, k: int, seed: int, ties: bool) -> None:
    y, proba = multiclass_case(n, k, seed, ties)
    labels = np.argmax(proba, axis=1)
    close(
        get_metric("average_precision")(y, proba),
        skm.average_precision_score(y, proba, average="macro"),
    )
    close(get_metric("brier")(y, proba), sk(skm.brier_score_loss, y, proba, labels=range(k)))
    # labels from y_true alone, so some classes may be absent from it or never predicted
    y = np.random.default_rng(seed).integers(0, k, len(y))
    for name, twin in LABEL_TWINS.items():
        kwargs = {"average": "macro"} if name in MACRO else {}
        close(get_metric(name)(y, proba), sk(twin, y, labels, **kwargs))
        # a multiclass score is an argmax: a binary threshold leaves it alone
        assert get_metric(name).at_threshold(0.9)(y, proba) == get_metric(name)(y, proba)
    expected = skm.confusion_matrix(y, labels, labels=range(k))
    np.testing.assert_array_equal(confusion_matrix(y, proba, threshold=0.9), expected)


@SETTINGS
@given(sizes, seeds, st.floats(0.1, 10.0))
def test_regression_parity(n: int, seed: int, scale: float) -> None:
    rng = np.random.default_rng(seed)
    y = rng.exponential(scale, n)
    pred = np.abs(y + rng.normal(0, scale, n))
    close(get_metric("rmse")(y, pred), np.sqrt(skm.mean_squared_error(y, pred)))
    close(get_metric("rmsle")(y, pred), np.sqrt(skm.mean_squared_log_error(y, pred)))
    close(get_metric("mae")(y, pred), skm.mean_absolute_error(y, pred))
    close(get_metric("r2")(y, pred), skm.r2_score(y, pred))


@SETTINGS
@given(sizes, seeds, st.integers(-3, 3), st.integers(1, 6), st.floats(0.0, 3.0))
def test_qwk_regression_parity(n: int, seed: int, lo: int, width: int, noise: float) -> None:
    rng = np.random.default_rng(seed)
    hi = lo + width
    y = rng.integers(lo, hi + 1, n)
    y[:2] = [lo, hi]  # at least two levels, else kappa is undefined
    pred = y + rng.normal(0, noise, n)
    rounded = np.clip(np.rint(pred), lo, hi)
    levels = np.arange(lo, hi + 1)
    close(
        get_metric("qwk")(y.astype(float), pred),
        sk(skm.cohen_kappa_score, y, rounded, weights="quadratic", labels=levels),
    )


def map_at_k_reference(y: np.ndarray, proba: np.ndarray, k: int) -> float:
    """Kaggle's MAP@k with one relevant label per row, written as a plain loop."""
    total = 0.0
    for label, row in zip(y, proba, strict=True):
        ranked = sorted(range(len(row)), key=lambda c: (-row[c], c))[:k]
        total += 1.0 / (ranked.index(label) + 1) if label in ranked else 0.0
    return total / len(y)


@SETTINGS
@given(sizes, class_counts, seeds, st.booleans(), st.integers(1, 7))
def test_map_at_k_matches_reference(n: int, k: int, seed: int, ties: bool, top: int) -> None:
    y, proba = multiclass_case(n, k, seed, ties)
    close(get_metric(f"map@{top}")(y, proba), map_at_k_reference(y, proba, top))


def ece_reference(y: np.ndarray, y_pred: np.ndarray) -> tuple[float, list[tuple[float, float]]]:
    """ECE as a loop over ten bins (a, b] (the first holding 0 too), with each non-empty bin's
    (observed frequency, mean confidence): binary on P(class 1), multiclass on the top label."""
    if y_pred.ndim == 1:
        confidence, hit = y_pred, y == 1
    else:
        confidence, hit = y_pred.max(axis=1), np.argmax(y_pred, axis=1) == y
    edges = np.linspace(0.0, 1.0, 11)  # calibration_curve's edges
    total, bins = 0.0, []
    for b in range(10):
        rows = [
            i
            for i, c in enumerate(confidence)
            if edges[b] < c <= edges[b + 1] or (b == 0 and c == 0.0)
        ]
        if rows:
            mean_confidence = sum(confidence[i] for i in rows) / len(rows)
            frequency = sum(float(hit[i]) for i in rows) / len(rows)
            total += len(rows) / len(y) * abs(mean_confidence - frequency)
            bins.append((frequency, mean_confidence))
    return total, bins


@SETTINGS
@given(sizes, seeds, st.booleans())
def test_binary_ece_matches_loop_and_calibration_curve(n: int, seed: int, ties: bool) -> None:
    y, p = binary_case(n, seed, ties)
    expected, bins = ece_reference(y, p)
    assert get_metric("ece")(y, p) == pytest.approx(expected, rel=RTOL, abs=ECE_ATOL)
    frequency, mean_confidence = calibration_curve(y, p, n_bins=10)
    np.testing.assert_allclose([b[0] for b in bins], frequency, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose([b[1] for b in bins], mean_confidence, rtol=RTOL, atol=ATOL)


@SETTINGS
@given(sizes, class_counts, seeds, st.booleans())
def test_multiclass_ece_matches_loop(n: int, k: int, seed: int, ties: bool) -> None:
    y, proba = multiclass_case(n, k, seed, ties)
    expected, _ = ece_reference(y, proba)
    assert get_metric("ece")(y, proba) == pytest.approx(expected, rel=RTOL, abs=ECE_ATOL)


def test_ece_is_zero_when_calibrated() -> None:
    # each level p is the observed frequency of its rows: 1 in 4 at 0.25, 3 in 4 at 0.75, ...
    p = np.repeat([0.0, 0.25, 0.5, 0.75, 1.0], 4)
    y = np.array([0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1])
    assert get_metric("ece")(y, p) == pytest.approx(0.0, abs=ECE_ATOL)
    # top label: right half the time at confidence 0.5, always at confidence 1
    proba = np.array([[0.5, 0.3, 0.2]] * 4 + [[0.0, 1.0, 0.0]] * 2)
    assert get_metric("ece")([0, 0, 1, 2, 1, 1], proba) == pytest.approx(0.0, abs=ECE_ATOL)


def test_ece_of_a_miscalibrated_model_by_hand() -> None:
    # 0.85 four times, one positive: |0.85 - 0.25| weighed 4/6; 0.15 twice, none: 0.15 x 2/6
    p = np.array([0.85, 0.85, 0.85, 0.85, 0.15, 0.15])
    y = np.array([1, 0, 0, 0, 0, 0])
    close(get_metric("ece")(y, p), 4 / 6 * 0.6 + 2 / 6 * 0.15)
    # top label 0.7 right once in two (gap 0.2); 0.4 right twice in two (gap 0.6); half each
    proba = np.array([[0.7, 0.2, 0.1], [0.7, 0.2, 0.1], [0.4, 0.35, 0.25], [0.4, 0.35, 0.25]])
    close(get_metric("ece")([0, 1, 0, 0], proba), 0.5 * 0.2 + 0.5 * 0.6)


# --- edge cases ---------------------------------------------------------------------------------


def test_perfect_predictions() -> None:
    y = np.array([0, 1, 1, 0, 1])
    p = y.astype(float)  # probabilities exactly 0 and 1
    for name in ("accuracy", "f1", "roc_auc"):
        assert get_metric(name)(y, p) == 1.0
    close(get_metric("log_loss")(y, p), skm.log_loss(y, p))
    yr = np.array([1.0, 2.0, 3.0])
    assert get_metric("rmse")(yr, yr) == 0.0
    assert get_metric("r2")(yr, yr) == 1.0
    assert get_metric("qwk")(yr, yr) == 1.0
    proba = np.eye(3)[[0, 2, 1, 2]]
    assert get_metric("map@3")([0, 2, 1, 2], proba) == 1.0
    assert get_metric("qwk")([0, 2, 1, 2], proba) == 1.0


def test_log_loss_clips_exact_zero_and_one_like_sklearn() -> None:
    y = np.array([0, 1, 1, 0])
    p = np.array([1.0, 0.0, 1.0, 0.0])  # two confidently wrong
    close(get_metric("log_loss")(y, p), skm.log_loss(y, p))
    proba = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    close(get_metric("log_loss")([0, 0, 2], proba), skm.log_loss([0, 0, 2], proba, labels=range(3)))


def test_log_loss_does_not_renormalise_rows_like_sklearn() -> None:
    # scikit-learn >= 1.5 only warns when rows do not sum to one
    proba = np.array([[0.2, 0.2, 0.2], [0.5, 0.3, 0.4], [0.1, 0.1, 0.9]])
    y = np.array([0, 1, 2])
    close(get_metric("log_loss")(y, proba), sk(skm.log_loss, y, proba))


def test_single_class_where_defined() -> None:
    y = np.zeros(4, dtype=int)
    p = np.array([0.1, 0.7, 0.2, 0.4])
    close(get_metric("accuracy")(y, p), skm.accuracy_score(y, p >= 0.5))
    assert get_metric("f1")(y, np.zeros(4)) == sk(skm.f1_score, y, np.zeros(4)) == 0.0
    close(get_metric("log_loss")(y, p), skm.log_loss(y, p, labels=[0, 1]))
    yr = np.full(3, 2.0)
    assert get_metric("r2")(yr, yr) == skm.r2_score(yr, yr) == 1.0
    assert get_metric("r2")(yr, yr + 1) == skm.r2_score(yr, yr + 1) == 0.0


@pytest.mark.parametrize("cls", [0, 1])
@pytest.mark.parametrize("p", [[0.1, 0.7, 0.2, 0.4], [0.0, 0.0, 0.0, 0.0], [0.9, 0.6, 0.5, 1.0]])
def test_binary_all_one_class_like_sklearn(cls: int, p: list[float]) -> None:
    y, p = np.full(4, cls), np.array(p)
    labels = (p >= 0.5).astype(int)
    for name, twin in LABEL_TWINS.items():
        close(get_metric(name)(y, p), sk(twin, y, labels))
    close(get_metric("brier")(y, p), skm.brier_score_loss(y, p, pos_label=1))
    np.testing.assert_array_equal(
        confusion_matrix(y, p), skm.confusion_matrix(y, labels, labels=[0, 1])
    )
    if cls == 1:  # every row relevant: precision is 1 at every threshold
        assert get_metric("average_precision")(y, p) == skm.average_precision_score(y, p) == 1.0


def test_multiclass_class_absent_or_never_predicted_like_sklearn() -> None:
    # class 3 never in y_true but predicted once; class 2 in y_true but never predicted
    y = np.array([0, 0, 1, 1, 2, 2, 0])
    labels = np.array([0, 1, 1, 3, 0, 1, 0])
    proba = np.eye(4)[labels] * 0.7 + 0.075
    for name, twin in LABEL_TWINS.items():
        kwargs = {"average": "macro"} if name in MACRO else {}
        close(get_metric(name)(y, proba), sk(twin, y, labels, **kwargs))
    close(get_metric("brier")(y, proba), sk(skm.brier_score_loss, y, proba, labels=range(4)))
    np.testing.assert_array_equal(
        confusion_matrix(y, proba), skm.confusion_matrix(y, labels, labels=range(4))
    )


def test_mcc_constant_side_is_zero_like_sklearn() -> None:
    y = np.array([0, 1, 1, 0])
    assert get_metric("mcc")(y, np.full(4, 0.9)) == skm.matthews_corrcoef(y, np.ones(4)) == 0.0
    proba = np.tile([0.2, 0.5, 0.3], (4, 1))
    assert get_metric("mcc")([0, 1, 2, 1], proba) == 0.0


def test_fbeta_generalises_f1() -> None:
    y, p = binary_case(60, 3, ties=True)
    assert fbeta(1).name == "f1" and fbeta(2).name == "f2" and fbeta(0.5).name == "f0.5"
    assert fbeta(1)(y, p) == get_metric("f1")(y, p)
    close(fbeta(0.5)(y, p), sk(skm.fbeta_score, y, p >= 0.5, beta=0.5))
    for beta in (0, -1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="beta > 0"):
            fbeta(beta)


def test_binary_label_arrays_work_as_probabilities() -> None:
    y = np.array([0, 1, 1, 0, 1])
    labels = np.array([0, 1, 0, 0, 1])
    close(get_metric("accuracy")(y, labels), skm.accuracy_score(y, labels))
    close(get_metric("f1")(y, labels.astype(bool)), skm.f1_score(y, labels))


def test_two_class_multiclass_roc_auc_equals_binary() -> None:
    y, p = binary_case(50, 0, ties=True)
    proba = np.column_stack([1 - p, p])
    close(get_metric("roc_auc")(y, proba), skm.roc_auc_score(y, p))


def test_argmax_ties_go_to_lowest_class() -> None:
    proba = np.array([[0.4, 0.4, 0.2], [0.3, 0.35, 0.35]])
    assert get_metric("accuracy")([0, 1], proba) == 1.0
    assert get_metric("map@1")([0, 1], proba) == 1.0


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "y_true", "y_pred", "match"),
    [
        ("rmse", [1.0, 2.0], [1.0], "rows"),
        ("rmse", [1.0, 2.0], [1.0, np.nan], "NaN or inf"),
        ("accuracy", [0, 1], [0.2, np.inf], "NaN or inf"),
        ("rmse", [], [], "empty"),
        ("rmse", [1.0, 2.0], [[1.0, 0.0], [0.0, 1.0]], "1-D y_pred"),
        ("map@3", [0, 1], [0.2, 0.8], "2-D y_pred"),
        ("accuracy", [0, 1], np.zeros((2, 2, 2)), "got shape"),
        ("accuracy", [[0, 1]], [[0.2, 0.8]], "y_true must be 1-D"),
        ("roc_auc", [1, 1, 1], [0.2, 0.3, 0.9], "single class"),
        ("roc_auc", [0, 0, 1], np.eye(3)[[0, 0, 1]], "single class"),
        ("accuracy", [0, 1], [0.2, 1.3], r"\[0, 1\]"),
        ("log_loss", [0, 1], np.array([[0.5, 0.5], [-0.1, 1.1]]), r"\[0, 1\]"),
        ("accuracy", [0, 2], [0.2, 0.9], "labels 0..1"),
        ("f1", [0, 3], np.eye(3)[[0, 1]], "labels 0..2"),
        ("rmsle", [1.0, 2.0], [1.0, -0.5], "non-negative"),
        ("qwk", [1.0, 2.5], [1.0, 2.0], "integer-valued"),
        ("qwk", [2.0, 2.0], [2.0, 2.0], "single level"),
        ("r2", [1.0], [1.0], "two samples"),
        ("mae", ["a", "b"], [1.0, 2.0], "numeric"),
        ("average_precision", [0, 0, 0], [0.2, 0.3, 0.9], "no positives"),
        ("average_precision", [0, 0, 1], np.eye(3)[[0, 0, 1]], "no positives"),
        ("brier", [0, 1], [0.2, 1.3], r"\[0, 1\]"),
        ("ece", [0, 1], np.array([[0.5, 0.5], [-0.1, 1.1]]), r"\[0, 1\]"),
        ("ece", [0, 2], [0.2, 0.9], "labels 0..1"),
        ("mcc", [0, 1], [0.2, 1.3], r"\[0, 1\]"),
        ("precision", [0, 1], [0.2, np.nan], "NaN or inf"),
        ("balanced_accuracy", [0, 3], np.eye(3)[[0, 1]], "labels 0..2"),
    ],
)
def test_bad_input_raises_value_error(name, y_true, y_pred, match) -> None:
    with pytest.raises(ValueError, match=match):
        get_metric(name)(np.asarray(y_true), np.asarray(y_pred))


# --- registry -----------------------------------------------------------------------------------


def test_registry_names() -> None:
    assert list(METRICS) == [
        "accuracy", "f1", "roc_auc", "log_loss", "rmse", "rmsle", "mae", "r2", "qwk", "map@3",
        "precision", "recall", "f2", "balanced_accuracy", "mcc", "average_precision", "brier",
        "ece",
    ]  # fmt: skip
    assert all(get_metric(name) is METRICS[name] for name in METRICS)
    m5 = get_metric("map@5")
    assert (m5.name, m5.greater_is_better, m5.tasks) == ("map@5", True, frozenset({"multiclass"}))


@pytest.mark.parametrize("name", ["auc", "map@0", "map@", "map@x", "MAP@3", "rmse "])
def test_get_metric_unknown(name: str) -> None:
    with pytest.raises(ConfigError, match=rf"unknown metric '{name}'; known: accuracy, f1, "):
        get_metric(name)


def test_check_metric_task() -> None:
    check_metric_task(get_metric("rmse"), "regression")
    check_metric_task(get_metric("qwk"), "multiclass")
    with pytest.raises(ConfigError, match="metric 'rmse' does not fit task 'binary'"):
        check_metric_task(get_metric("rmse"), "binary")
    with pytest.raises(ConfigError, match="metric 'map@3' does not fit task 'regression'"):
        check_metric_task(get_metric("map@3"), "regression")
    with pytest.raises(ConfigError, match="unknown task 'ranking'"):
        check_metric_task(get_metric("rmse"), "ranking")


NEW_CLASSIFICATION = [
    "precision", "recall", "f2", "balanced_accuracy", "mcc", "average_precision", "brier", "ece",
]  # fmt: skip


@pytest.mark.parametrize("name", NEW_CLASSIFICATION)
def test_check_metric_task_new_metrics(name: str) -> None:
    metric = get_metric(name)
    assert metric.tasks == frozenset({"binary", "multiclass"})
    check_metric_task(metric, "binary")
    check_metric_task(metric, "multiclass")
    with pytest.raises(ConfigError, match=f"metric '{name}' does not fit task 'regression'"):
        check_metric_task(metric, "regression")


def test_uses_threshold() -> None:
    with_threshold = {n for n, m in METRICS.items() if m.uses_threshold}
    assert with_threshold == set(LABEL_TWINS)
    assert all(METRICS[n].threshold == 0.5 for n in with_threshold)
    assert not get_metric("map@5").uses_threshold
    f1 = get_metric("f1").at_threshold(0.3)
    assert (f1.name, f1.threshold, f1.uses_threshold, f1.greater_is_better) == (
        "f1",
        0.3,
        True,
        True,
    )
    assert get_metric("f1").threshold == 0.5  # the registry's metric is left alone
    assert get_metric("mcc").at_threshold(np.float32(0.25)).threshold == 0.25


@pytest.mark.parametrize(
    "name", ["roc_auc", "log_loss", "average_precision", "brier", "ece", "rmse"]
)
def test_at_threshold_refused_for_scores_of_probabilities(name: str) -> None:
    with pytest.raises(ValueError, match="has no threshold"):
        get_metric(name).at_threshold(0.3)


@pytest.mark.parametrize("t", [-0.1, 1.5, float("nan"), "0.5", True, None])
def test_threshold_must_be_in_unit_interval(t) -> None:
    with pytest.raises(ValueError, match="threshold must be"):
        get_metric("accuracy").at_threshold(t)
    with pytest.raises(ValueError, match="threshold must be"):
        confusion_matrix([0, 1], [0.2, 0.8], threshold=t)


def test_confusion_matrix_bad_input() -> None:
    with pytest.raises(ValueError, match="confusion_matrix: y_true has 2 rows"):
        confusion_matrix([0, 1], [0.2])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        confusion_matrix([0, 1], [0.2, 1.2])
    with pytest.raises(ValueError, match="labels 0..2"):
        confusion_matrix([0, 3], np.eye(3)[[0, 1]])
    assert confusion_matrix([0, 1, 1], [0.2, 0.8, 0.4]).dtype == np.int64


def test_direction() -> None:
    rmse, auc = get_metric("rmse"), get_metric("roc_auc")
    assert rmse.is_better(0.1, 0.2) and not rmse.is_better(0.2, 0.1)
    assert auc.is_better(0.9, 0.8) and not auc.is_better(0.8, 0.9)
    assert not auc.is_better(0.8, 0.8) and not rmse.is_better(0.8, 0.8)
    assert not auc.is_better(float("nan"), 0.5)
    assert (rmse.sign(), auc.sign()) == (-1, 1)
    assert get_metric("log_loss").sign() == -1 and get_metric("qwk").sign() == 1
    lower = {n for n, m in METRICS.items() if not m.greater_is_better}
    assert lower == {"log_loss", "rmse", "rmsle", "mae", "brier", "ece"}


def test_import_is_light() -> None:
    code = "import sys, kfw.core.metrics; print(sorted({'sklearn', 'scipy', 'pandas'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
