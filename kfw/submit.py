"""Submission files: built from a run's test predictions, validated against the sample.

Validation catches what Kaggle would reject or silently mis-score: wrong columns, missing or
extra or duplicate ids, a row count that differs, NaN or infinite values, labels outside the
training classes, probabilities outside [0, 1], negative values under RMSLE.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kfw.config import Competition
from kfw.errors import DataError

if TYPE_CHECKING:
    import pandas as pd


def build_submission(
    spec: Competition,
    ids: np.ndarray,
    pred: np.ndarray,
    classes: np.ndarray | None,
    sample: pd.DataFrame,
) -> pd.DataFrame:
    """Turn test predictions into the submission frame, rows in the sample's order.

    Parameters
    ----------
    pred : ndarray
        Regression values, the class-1 probability (binary) or (n, K) probabilities.
    classes : ndarray or None
        The training classes, in the order of the probability columns.
    """
    import pandas as pd

    cols = spec.submission.columns
    fmt = spec.submission.format
    frame = pd.DataFrame({spec.id: ids})
    if spec.task == "regression":
        frame[cols[1]] = pred
    elif fmt == "label":
        index = (pred >= 0.5).astype(int) if pred.ndim == 1 else np.argmax(pred, axis=1)
        frame[cols[1]] = np.asarray(classes)[index]
    elif pred.ndim == 1:
        frame[cols[1]] = pred
    else:
        names = [str(c) for c in np.asarray(classes)]
        if sorted(names) != sorted(cols[1:]):
            raise DataError(f"submission columns {list(cols[1:])} do not name the classes {names}")
        for j, name in enumerate(names):
            frame[name] = pred[:, j]
        frame = frame[list(cols)]
    order = pd.Index(ids).get_indexer(sample[spec.id])
    return frame.iloc[order].reset_index(drop=True) if (order >= 0).all() else frame


def validate_submission(
    spec: Competition, sub: pd.DataFrame, sample: pd.DataFrame, classes: np.ndarray | None
) -> None:
    """Raise :class:`DataError` naming the first problem with ``sub``."""
    import pandas as pd

    if list(sub.columns) != list(sample.columns):
        raise DataError(
            f"submission columns {list(sub.columns)} differ from the sample's {list(sample.columns)}"
        )
    if len(sub) != len(sample):
        raise DataError(f"submission has {len(sub)} rows, the sample {len(sample)}")
    ids = sub[spec.id]
    if ids.duplicated().any():
        raise DataError(f"submission repeats {spec.id} {ids[ids.duplicated()].tolist()[0]!r}")
    missing = set(sample[spec.id].tolist()) - set(ids.tolist())
    if missing:
        raise DataError(
            f"submission lacks {len(missing)} ids of the sample (e.g. {sorted(missing)[0]!r})"
        )
    for col in sub.columns[1:]:
        values = sub[col]
        if values.isna().any():
            raise DataError(
                f"submission column {col!r} has {int(values.isna().sum())} missing values"
            )
        if spec.submission.format == "label":
            allowed = set(np.asarray(classes).tolist()) if classes is not None else None
            bad = sorted(set(values.tolist()) - allowed, key=str) if allowed is not None else []
            if bad:
                raise DataError(
                    f"submission column {col!r} has labels outside the training classes: {bad[:5]}"
                )
            continue
        if (
            not pd.api.types.is_numeric_dtype(values)
            or not np.isfinite(values.to_numpy(float)).all()
        ):
            raise DataError(f"submission column {col!r} has non-numeric or infinite values")
        if spec.submission.format == "proba" and ((values < 0) | (values > 1)).any():
            raise DataError(f"submission column {col!r} has probabilities outside [0, 1]")
        if spec.metric == "rmsle" and (values < 0).any():
            raise DataError(
                f"submission column {col!r} has negative values, which RMSLE cannot score"
            )


def write_submission(sub: pd.DataFrame, path: Path) -> Path:
    """Write atomically (a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        sub.to_csv(tmp, index=False, lineterminator="\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a failed write leaves neither a half file nor the temp
    return path


def submission_bytes(sub: pd.DataFrame) -> bytes:
    return sub.to_csv(index=False, lineterminator="\n").encode()


def check_and_encode(
    spec: Competition, sub: pd.DataFrame, sample: pd.DataFrame, classes: Any
) -> bytes:
    """Validate and serialise in one step (what a run stores as ``submission.csv``)."""
    validate_submission(spec, sub, sample, classes)
    return submission_bytes(sub)
