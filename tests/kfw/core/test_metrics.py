"""kfw.core.metrics against scikit-learn (and a loop reference for MAP@k) on random, tie-heavy inputs."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from kfw.core.metrics import METRICS, check_metric_task, get_metric
from kfw.errors import ConfigError

RTOL = 1e-12  # relative tolerance of every parity check
ATOL = 1e-15  # only matters for scores that land on ~0 (r2, qwk), where rtol alone is vacuous
SETTINGS = settings(max_examples=40, deadline=None)

seeds = st.integers(0, 2**32 - 1)
sizes = st.integers(2, 120)
class_counts = st.integers(3, 6)


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
    ],
)
def test_bad_input_raises_value_error(name, y_true, y_pred, match) -> None:
    with pytest.raises(ValueError, match=match):
        get_metric(name)(np.asarray(y_true), np.asarray(y_pred))


# --- registry -----------------------------------------------------------------------------------


def test_registry_names() -> None:
    assert list(METRICS) == [
        "accuracy", "f1", "roc_auc", "log_loss", "rmse", "rmsle", "mae", "r2", "qwk", "map@3",
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


def test_direction() -> None:
    rmse, auc = get_metric("rmse"), get_metric("roc_auc")
    assert rmse.is_better(0.1, 0.2) and not rmse.is_better(0.2, 0.1)
    assert auc.is_better(0.9, 0.8) and not auc.is_better(0.8, 0.9)
    assert not auc.is_better(0.8, 0.8) and not rmse.is_better(0.8, 0.8)
    assert not auc.is_better(float("nan"), 0.5)
    assert (rmse.sign(), auc.sign()) == (-1, 1)
    assert get_metric("log_loss").sign() == -1 and get_metric("qwk").sign() == 1


def test_import_is_light() -> None:
    code = "import sys, kfw.core.metrics; print(sorted({'sklearn', 'scipy', 'pandas'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
