"""Submission files: built in the sample's order, validated as Kaggle would, written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kfw.core.config import Competition, FilesSpec, SubmissionSpec
from kfw.errors import DataError
from kfw.kaggle.submit import build_submission, validate_submission, write_submission

SAMPLE_IDS = [10, 11, 12, 13]
TEST_IDS = np.array([12, 10, 13, 11])  # the test file's order, not the sample's


def _spec(task: str, metric: str, columns: tuple[str, ...], fmt: str) -> Competition:
    return Competition(
        slug="t",
        kaggle="t",
        title="t",
        task=task,  # type: ignore[arg-type]
        metric=metric,
        id="Id",
        target="y",
        features="features.py",
        files=FilesSpec(),
        submission=SubmissionSpec(columns, fmt),  # type: ignore[arg-type]
        folds=None,
        models=(),
    )


def _sample(columns: tuple[str, ...]) -> pd.DataFrame:
    frame = pd.DataFrame({"Id": SAMPLE_IDS})
    for col in columns[1:]:
        frame[col] = 0
    return frame


REGRESSION = _spec("regression", "rmsle", ("Id", "SalePrice"), "value")
BINARY_LABEL = _spec("binary", "accuracy", ("Id", "Survived"), "label")
BINARY_PROBA = _spec("binary", "roc_auc", ("Id", "Survived"), "proba")
MULTI_LABEL = _spec("multiclass", "accuracy", ("Id", "kind"), "label")
MULTI_PROBA = _spec("multiclass", "log_loss", ("Id", "c", "a", "b"), "proba")
CLASSES = np.array(["a", "b", "c"])


def _check(spec: Competition, sub: pd.DataFrame, classes=None) -> None:
    validate_submission(spec, sub, _sample(spec.submission.columns), classes)


# ---------------------------------------------------------------------------------------------
# building


def test_regression_is_in_the_sample_order() -> None:
    pred = np.array([120.0, 100.0, 130.0, 110.0])
    sub = build_submission(REGRESSION, TEST_IDS, pred, None, _sample(REGRESSION.submission.columns))
    assert sub.columns.tolist() == ["Id", "SalePrice"]
    assert sub["Id"].tolist() == SAMPLE_IDS
    assert sub["SalePrice"].tolist() == [100.0, 110.0, 120.0, 130.0]
    _check(REGRESSION, sub)


def test_binary_label_thresholds_the_probability_at_one_half() -> None:
    proba = np.array([0.7, 0.2, 0.5, 0.49])  # ids 12, 10, 13, 11
    classes = np.array([0, 1])
    sub = build_submission(BINARY_LABEL, TEST_IDS, proba, classes, _sample(("Id", "Survived")))
    assert sub["Survived"].tolist() == [0, 0, 1, 1]
    _check(BINARY_LABEL, sub, classes)


def test_binary_label_maps_back_to_the_class_names() -> None:
    sub = build_submission(
        BINARY_LABEL,
        TEST_IDS,
        np.array([0.9, 0.1, 0.1, 0.9]),
        np.array(["no", "yes"]),
        _sample(("Id", "Survived")),
    )
    assert sub["Survived"].tolist() == ["no", "yes", "yes", "no"]
    _check(BINARY_LABEL, sub, np.array(["no", "yes"]))


def test_binary_proba_keeps_the_probability() -> None:
    proba = np.array([0.7, 0.2, 0.5, 0.49])
    sub = build_submission(
        BINARY_PROBA, TEST_IDS, proba, np.array([0, 1]), _sample(("Id", "Survived"))
    )
    assert sub["Survived"].tolist() == [0.2, 0.49, 0.7, 0.5]
    _check(BINARY_PROBA, sub, np.array([0, 1]))


def test_multiclass_label_is_the_most_probable_class() -> None:
    proba = np.array([[0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6], [0.3, 0.4, 0.3]])
    sub = build_submission(MULTI_LABEL, TEST_IDS, proba, CLASSES, _sample(("Id", "kind")))
    assert sub["kind"].tolist() == ["a", "b", "b", "c"]
    _check(MULTI_LABEL, sub, CLASSES)


def test_multiclass_proba_has_one_column_per_class_in_the_spec_order() -> None:
    proba = np.array([[0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6], [0.3, 0.4, 0.3]])
    sub = build_submission(
        MULTI_PROBA, TEST_IDS, proba, CLASSES, _sample(MULTI_PROBA.submission.columns)
    )
    assert sub.columns.tolist() == ["Id", "c", "a", "b"]
    assert sub["Id"].tolist() == SAMPLE_IDS
    np.testing.assert_allclose(sub[["a", "b", "c"]].to_numpy(), proba[[1, 3, 0, 2]])
    _check(MULTI_PROBA, sub, CLASSES)


def test_multiclass_proba_columns_must_name_the_classes() -> None:
    spec = _spec("multiclass", "log_loss", ("Id", "x", "y", "z"), "proba")
    with pytest.raises(
        DataError,
        match=r"submission columns \['x', 'y', 'z'\] do not name the classes \['a', 'b', 'c'\]",
    ):
        build_submission(
            spec, TEST_IDS, np.full((4, 3), 1 / 3), CLASSES, _sample(spec.submission.columns)
        )


# ---------------------------------------------------------------------------------------------
# validation: each failure named


def _good(spec: Competition) -> pd.DataFrame:
    sub = _sample(spec.submission.columns)
    for col in spec.submission.columns[1:]:
        sub[col] = {"proba": 0.25, "label": 1, "value": 100.0}[spec.submission.format]
    return sub


def _with(frame: pd.DataFrame, row: int, col: str, value: object) -> pd.DataFrame:
    frame = frame.copy()
    frame[col] = frame[col].astype(object) if isinstance(value, str) else frame[col]
    frame.loc[row, col] = value
    return frame


BAD = {
    "wrong columns": (
        REGRESSION,
        lambda s: s.rename(columns={"SalePrice": "price"}),
        r"submission columns \['Id', 'price'\] differ from the sample's \['Id', 'SalePrice'\]",
    ),
    "no id column": (
        REGRESSION,
        lambda s: s.drop(columns=["Id"]),
        r"submission columns \['SalePrice'\] differ from the sample's \['Id', 'SalePrice'\]",
    ),
    "an id of the sample missing": (
        REGRESSION,
        lambda s: _with(s, 2, "Id", 99),
        r"submission lacks 1 ids of the sample \(e\.g\. 12\)",
    ),
    "a duplicate id": (REGRESSION, lambda s: _with(s, 1, "Id", 10), r"submission repeats Id 10$"),
    "extra rows": (
        REGRESSION,
        lambda s: pd.concat([s, s.tail(1).assign(Id=14)], ignore_index=True),
        r"submission has 5 rows, the sample 4",
    ),
    "missing rows": (REGRESSION, lambda s: s.head(3), r"submission has 3 rows, the sample 4"),
    "NaN": (
        REGRESSION,
        lambda s: _with(s, 0, "SalePrice", np.nan),
        r"submission column 'SalePrice' has 1 missing values",
    ),
    "inf": (
        REGRESSION,
        lambda s: _with(s, 3, "SalePrice", np.inf),
        r"submission column 'SalePrice' has non-numeric or infinite values",
    ),
    "text in a value column": (
        REGRESSION,
        lambda s: _with(s, 3, "SalePrice", "cheap"),
        r"submission column 'SalePrice' has non-numeric or infinite values",
    ),
    "negative under rmsle": (
        REGRESSION,
        lambda s: _with(s, 1, "SalePrice", -5.0),
        r"submission column 'SalePrice' has negative values, which RMSLE cannot score",
    ),
    "a label outside the classes": (
        BINARY_LABEL,
        lambda s: _with(s, 1, "Survived", 2),
        r"submission column 'Survived' has labels outside the training classes: \[2\]",
    ),
    "a multiclass label outside the classes": (
        MULTI_LABEL,
        lambda s: _sample(("Id",)).assign(kind=["a", "b", "d", "a"]),
        r"submission column 'kind' has labels outside the training classes: \['d'\]",
    ),
    "a probability above 1": (
        BINARY_PROBA,
        lambda s: _with(s, 0, "Survived", 1.2),
        r"submission column 'Survived' has probabilities outside \[0, 1\]",
    ),
    "a negative class probability": (
        MULTI_PROBA,
        lambda s: _with(s, 0, "a", -0.1),
        r"submission column 'a' has probabilities outside \[0, 1\]",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_validation_names_the_problem(case: str) -> None:
    spec, mutate, message = BAD[case]
    classes = {"binary": np.array([0, 1]), "multiclass": CLASSES}.get(spec.task)
    good = _good(spec) if spec is not MULTI_LABEL else _sample(("Id",)).assign(kind="a")
    _check(spec, good, classes)  # the unmutated frame passes
    with pytest.raises(DataError, match=message):
        _check(spec, mutate(good), classes)


def test_a_negative_value_is_fine_without_rmsle() -> None:
    spec = _spec("regression", "rmse", ("Id", "SalePrice"), "value")
    _check(spec, _with(_good(spec), 1, "SalePrice", -5.0))


# ---------------------------------------------------------------------------------------------
# writing


def test_write_submission_is_atomic(tmp_path: Path) -> None:
    sub = _good(REGRESSION)
    path = write_submission(sub, tmp_path / "subs" / "run.csv")
    assert path == tmp_path / "subs" / "run.csv"
    assert path.read_text() == "Id,SalePrice\n10,100.0\n11,100.0\n12,100.0\n13,100.0\n"
    write_submission(sub.assign(SalePrice=7.5), path)  # replaces in place
    pd.testing.assert_frame_equal(pd.read_csv(path), sub.assign(SalePrice=7.5))
    assert [p.name for p in path.parent.iterdir()] == ["run.csv"]  # no temp file behind


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_submission(_good(REGRESSION), tmp_path / "run.csv")
    before = path.read_bytes()

    def half_write(self, target, *args, **kwargs):  # writes a little, then the disk fills up
        Path(target).write_text("Id,Sale")
        raise OSError("No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_write)
    with pytest.raises(OSError, match="No space left"):
        write_submission(_good(REGRESSION), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["run.csv"]
