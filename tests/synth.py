"""Generated competitions in Kaggle's file layout, for tests that must not need real data.

:func:`make_competition` writes ``competitions/<slug>/competition.toml`` and a ``features.py``
beside it under a temporary ``KFW_HOME`` (where kfw looks for user competitions), plus the
train / test / sample-submission CSVs, so a test can drive the whole product as a user would.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

FEATURES = """
import pandas as pd


def row_features(df: pd.DataFrame) -> pd.DataFrame:
    out = df.drop(columns=["Id"])
    out["x_sum"] = out["x0"] + out["x1"]
    return out
"""

MODEL_PARAMS = {
    "lgbm": "params = { n_estimators = 60, learning_rate = 0.1, num_leaves = 7, early_stopping_rounds = 20 }",
    "ridge": "params = { alpha = 1.0 }",
    "logreg": "params = { C = 1.0 }",
}


def frames(
    task: str = "binary", n_train: int = 240, n_test: int = 80, seed: int = 0, signal: float = 1.0
):
    """Train / test frames with numeric and categorical columns, a few missing cells."""
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    x = rng.normal(size=(n, 3))
    cat = rng.choice(["a", "b", "c", "d"], size=n)
    logit = signal * (1.5 * x[:, 0] - x[:, 1] + (cat == "a"))
    if task == "regression":
        target = np.round(np.exp(3 + 0.3 * logit + 0.1 * rng.normal(size=n)), 2)
    elif task == "binary":
        target = (logit + rng.logistic(size=n) > 0).astype(int)
    else:
        target = np.digitize(logit + rng.normal(size=n), [-1.0, 0.5])
    frame = pd.DataFrame(
        {"Id": np.arange(1, n + 1), "x0": x[:, 0], "x1": x[:, 1], "x2": x[:, 2], "cat": cat}
    )
    frame.loc[rng.random(n) < 0.05, "x2"] = np.nan
    frame["target"] = target
    train = frame.iloc[:n_train].reset_index(drop=True)
    test = frame.iloc[n_train:].drop(columns=["target"]).reset_index(drop=True)
    return train, test


def make_competition(
    home: Path,
    slug: str = "synth",
    task: str = "binary",
    models: tuple[str, ...] = ("lgbm",),
    n_train: int = 240,
    n_test: int = 80,
    seed: int = 0,
    signal: float = 1.0,
    features: str = FEATURES,
    folds: str = 'scheme = "stratified"\nn_splits = 4\nseed = 7',
    extra_toml: str = "",
    write_data: bool = True,
) -> Path:
    """Write a competition spec (and, by default, its data) under ``home``; returns the data folder."""
    metric = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmsle"}[task]
    fmt = {"binary": "label", "multiclass": "label", "regression": "value"}[task]
    spec_dir = home / "competitions" / slug
    spec_dir.mkdir(parents=True, exist_ok=True)
    roster = "\n".join(f'[[models]]\nname = "{m}"\n{MODEL_PARAMS.get(m, "")}\n' for m in models)
    transform = 'target_transform = "log1p"\n' if task == "regression" else ""
    (spec_dir / "competition.toml").write_text(
        textwrap.dedent(
            f'''\
            title = "Synthetic {task}"
            kaggle = "synthetic-{slug}"
            task = "{task}"
            metric = "{metric}"
            id = "Id"
            target = "target"
            features = "features.py"
            {transform}{extra_toml}
            [files]
            train = "train.csv"
            test = "test.csv"
            sample_submission = "sample_submission.csv"

            [submission]
            columns = ["Id", "target"]
            format = "{fmt}"

            [folds]
            '''
        )
        + folds
        + "\n\n"
        + roster
    )
    (spec_dir / "features.py").write_text(features)
    data = home / "data" / slug
    if write_data:
        train, test = frames(task, n_train, n_test, seed, signal)
        write_files(data, train, test)
    return data


def write_files(
    folder: Path, train: pd.DataFrame, test: pd.DataFrame, target: str = "target"
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    fill = train[target].mode().iloc[0]
    pd.DataFrame({"Id": test["Id"], target: fill}).to_csv(
        folder / "sample_submission.csv", index=False
    )


def kaggle_download(
    folder: Path, kind: str, n_train: int = 300, n_test: int = 120, seed: int = 0
) -> Path:
    """Files as a Playground download has them: odd column names, empty cells, ids from 1000,
    string targets, test categories unseen in train. ``kind``: binary-label, binary-proba,
    multiclass-label, multiclass-proba, regression, multi-target."""
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    frame = pd.DataFrame(
        {
            "row id": np.arange(1000, 1000 + n),
            "loan-amount": rng.lognormal(8, 1, n).round(2),
            "credit score": rng.integers(300, 850, n).astype(float),
            "emp.length": rng.choice(["<1", "1-3", "3-5", "5+"], n),
            "region": rng.choice([f"r{i}" for i in range(12)], n),
            "city": rng.choice([f"city_{i}" for i in range(400)], n),
            "opened": pd.Timestamp("2020-01-01")
            + pd.to_timedelta(rng.integers(0, 900, n), unit="D"),
        }
    )
    frame["opened"] = frame["opened"].dt.strftime("%Y-%m-%d")
    for col in ("loan-amount", "emp.length", "region"):
        frame.loc[rng.random(n) < 0.05, col] = np.nan
    frame.loc[n_train + rng.choice(n_test, 5, replace=False), "region"] = "r-new"  # unseen in train
    signal = (
        (np.log(frame["loan-amount"].fillna(3000)) - 8)
        + (frame["credit score"] - 575) / 150
        + (frame["region"] == "r1")
    )
    noise = rng.normal(size=n)
    id_col = "row id"
    sample_cols: dict[str, Any] = {}
    if kind.startswith("binary"):
        frame["approved"] = np.where(signal + noise > 0, "Yes", "No")
        sample_cols["approved"] = "No" if kind == "binary-label" else 0.5
    elif kind.startswith("multiclass"):
        frame["grade"] = np.array(["A", "B", "C"])[np.digitize(signal + noise, [-0.7, 0.7])]
        if kind == "multiclass-label":
            sample_cols["grade"] = "B"
        else:
            sample_cols.update({f"grade_{c}": 1 / 3 for c in "ABC"})
    elif kind == "regression":
        frame["price"] = np.exp(10 + 0.5 * signal + 0.2 * noise).round(2)
        sample_cols["price"] = 20000.0
    elif kind == "multi-target":
        frame["default"] = (signal + noise > 0.5).astype(int)
        frame["late"] = (signal + rng.normal(size=n) > -0.5).astype(int)
        sample_cols.update({"default": 0.5, "late": 0.5})
    else:
        raise ValueError(kind)
    targets = [
        c
        for c in frame.columns
        if c
        not in ("row id", "loan-amount", "credit score", "emp.length", "region", "city", "opened")
    ]
    train = frame.iloc[:n_train].reset_index(drop=True)
    test = frame.iloc[n_train:].drop(columns=targets).reset_index(drop=True)
    sample = pd.DataFrame({id_col: test[id_col], **{k: v for k, v in sample_cols.items()}})
    folder.mkdir(parents=True, exist_ok=True)
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    sample.to_csv(folder / "sample_submission.csv", index=False)
    return folder
