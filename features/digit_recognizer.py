"""Features for Kaggle's Digit Recognizer (MNIST): the 784 pixels of a 28 x 28 image, scaled.

Each row of ``train.csv`` / ``test.csv`` is one handwritten digit, ``pixel0`` .. ``pixel783``
in row-major order, grey levels 0 (background) to 255 (ink). The only row feature is the
pixels divided by 255, as float32: inputs in [0, 1] train a network well (no pixel is
amplified by a tiny training-set spread, as per-column standardising would), and float32
halves the memory of the 70,000 x 784 matrix. Trees do not care either way.

Bad files are refused in one line before any model sees them: a pixel column missing from
the sequence ``pixel0 .. pixel{n-1}``, a pixel count that is no square image, values missing
or outside 0..255, and (in :func:`exclude_rows`, the hook that sees the labels) labels other
than the digits 0-9.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from kfw.errors import DataError

DIGITS = frozenset(range(10))


def row_features(df: pd.DataFrame) -> pd.DataFrame:
    """Scale the pixels to [0, 1].

    Parameters
    ----------
    df : pandas.DataFrame
        Kaggle's train rows followed by its test rows, without ``label``; the ``ImageId``
        row number kfw adds is dropped.

    Returns
    -------
    pandas.DataFrame
        Every ``pixel*`` column (784 on Kaggle) as float32 in [0, 1], same index as ``df``.
    """
    columns = [c for c in df.columns if str(c).startswith("pixel")]
    numbers = sorted(int(str(c)[5:]) for c in columns if str(c)[5:].isdigit())
    if not numbers:
        raise DataError("no pixel columns (pixel0, pixel1, ...) in train.csv / test.csv")
    missing = sorted(set(range(numbers[-1] + 1)) - set(numbers))
    if missing:
        raise DataError(
            f"pixel columns missing: {', '.join(f'pixel{i}' for i in missing[:5])}"
            f"{' ...' if len(missing) > 5 else ''} (expected pixel0 .. pixel{numbers[-1]})"
        )
    side = math.isqrt(len(columns))
    if side * side != len(columns):
        raise DataError(
            f"images of the wrong size: {len(columns)} pixel columns make no square image "
            "(Digit Recognizer has 784 = 28 x 28)"
        )
    columns = [f"pixel{i}" for i in range(len(columns))]  # row-major order, whatever the file's
    try:
        raw = df[columns].to_numpy(dtype=np.float32)  # (n_rows, 784)
    except (TypeError, ValueError):
        raise DataError("pixel values must be numbers 0..255: a pixel column holds text") from None
    bad = ~np.isfinite(raw) | (raw < 0) | (raw > 255)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataError(
            f"pixel values must be 0..255: {columns[col]} is {raw[row, col]} in row {row + 1} "
            f"({int(bad.sum())} bad values)"
        )
    pixels = raw / np.float32(255.0)
    return pd.DataFrame(pixels, columns=columns, index=df.index)


def exclude_rows(X: pd.DataFrame, y: np.ndarray) -> np.ndarray:
    """No row is excluded; the labels are checked to be the digits 0-9 (DataError if not)."""
    labels = pd.unique(pd.Series(np.asarray(y).ravel()))
    bad = [v for v in labels if not (_is_int(v) and int(v) in DIGITS)]
    if bad:
        raise DataError(f"train.csv: label must be a digit 0-9, found {sorted(map(str, bad))[:5]}")
    return np.zeros(len(X), dtype=bool)


def _is_int(value: object) -> bool:
    try:
        return float(value) == int(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
