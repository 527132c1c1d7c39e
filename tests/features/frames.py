"""What the feature tests share: Kaggle's frames (open copy or real download), a fold split,
and a model that keeps what the fold loop hands it."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, RegressorMixin

from kfw.core.folds import Split
from kfw.kaggle.opendata import build_open_copy
from tests.conftest import shared_zip

# "open" always runs; "kaggle" needs the real download in ../shared and skips without it
SOURCES = ["open", pytest.param("kaggle", marks=pytest.mark.shared)]


def _read(folder: Path | zipfile.ZipFile, name: str) -> pd.DataFrame:
    if isinstance(folder, zipfile.ZipFile):
        with folder.open(name) as f:
            return pd.read_csv(f, low_memory=False)
    return pd.read_csv(folder / name, low_memory=False)


def kaggle_frames(source: str, slug: str, zip_name: str, tmp: pytest.TempPathFactory):
    """Train and test frames of the open copy or of the real download, and which it is."""
    if source == "kaggle":
        with zipfile.ZipFile(shared_zip(zip_name)) as zf:
            return _read(zf, "train.csv"), _read(zf, "test.csv"), source
    folder = build_open_copy(slug, tmp.mktemp("open") / slug)
    return _read(folder, "train.csv"), _read(folder, "test.csv"), source


def without_target(train: pd.DataFrame, test: pd.DataFrame, target: str) -> pd.DataFrame:
    """Train then test, without the target: what kfw's build_design passes to row_features."""
    features = train.drop(columns=[target])
    return pd.concat([features, test[features.columns]], ignore_index=True)


def eighty_twenty(n: int, seed: int = 0) -> Split:
    """An 80 / 20 fold."""
    order = np.random.default_rng(seed).permutation(n)
    cut = int(0.8 * n)
    return Split(0, 0, np.sort(order[:cut]), np.sort(order[cut:]))


class Capture(RegressorMixin, BaseEstimator):
    """Keeps the frames the fold loop hands the model: training, validation, test."""

    def fit(self, X: pd.DataFrame, y: np.ndarray, eval_set=None) -> Capture:
        self.frames_ = [X]
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        self.frames_.append(X)
        return np.zeros(len(X))
