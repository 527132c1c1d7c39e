"""Features for Kaggle's Digit Recognizer (MNIST): the 784 pixels of a 28 x 28 image, scaled.

Each row of ``train.csv`` / ``test.csv`` is one handwritten digit, ``pixel0`` .. ``pixel783``
in row-major order, grey levels 0 (background) to 255 (ink). The only row feature is the
pixels divided by 255, as float32: inputs in [0, 1] train a network well (no pixel is
amplified by a tiny training-set spread, as per-column standardising would), and float32
halves the memory of the 70,000 x 784 matrix. Trees do not care either way.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


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
    pixels = df[columns].to_numpy(dtype=np.float32) / np.float32(255.0)  # (n_rows, 784)
    return pd.DataFrame(pixels, columns=columns, index=df.index)
