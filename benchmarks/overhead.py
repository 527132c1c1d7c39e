"""How much does kfw's fold loop cost over a hand-written LightGBM loop? And `kfw --help`?

Both loops get the same frame, the same folds, the same LightGBM parameters and threads, and
early-stop on the fold's validation part; kfw adds its categorical alignment, bookkeeping and
test-set prediction (the hand loop predicts the test set too). Runs alternate and the median
of several repetitions is reported. Target: ratio <= 1.10; `kfw --help` under 0.5 s.

    .venv/bin/python benchmarks/overhead.py [--rows 200000] [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from kfw.core.cv import cross_validate
from kfw.core.folds import Folds, FoldScheme, assign_folds
from kfw.core.metrics import get_metric
from models.lgbm import LGBMRegressor

PARAMS = {
    "n_estimators": 300,
    "learning_rate": 0.05,
    "num_leaves": 31,
    "subsample": 0.8,
    "subsample_freq": 1,
}
EARLY = 50


def make_data(rows: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    n = rows + rows // 4
    frame = pd.DataFrame({f"x{i}": rng.normal(size=n) for i in range(16)})
    for i in range(4):
        frame[f"c{i}"] = pd.Categorical(rng.integers(0, 20 * (i + 1), size=n).astype(str))
    y = frame["x0"] * 2 + np.sin(frame["x1"] * 3) + frame["c0"].cat.codes % 3 + rng.normal(size=n)
    return (
        frame.iloc[:rows].reset_index(drop=True),
        y.to_numpy()[:rows],
        frame.iloc[rows:].reset_index(drop=True),
    )


def hand_loop(X, y, X_test, folds, threads):
    oof, test = np.zeros(len(y)), np.zeros(len(X_test))
    for split in folds.splits():
        model = lgb.LGBMRegressor(
            **PARAMS,
            random_state=0,
            n_jobs=threads,
            verbose=-1,
            deterministic=True,
            force_col_wise=True,
        )
        model.fit(
            X.iloc[split.train],
            y[split.train],
            eval_X=(X.iloc[split.valid],),
            eval_y=(y[split.valid],),
            callbacks=[lgb.early_stopping(EARLY, verbose=False)],
        )
        oof[split.valid] = model.predict(X.iloc[split.valid])
        test += model.predict(X_test) / folds.n_fits
    return oof


def kfw_loop(X, y, X_test, folds, threads):
    model = LGBMRegressor(**PARAMS, early_stopping_rounds=EARLY, random_state=0, n_jobs=threads)
    return cross_validate(
        model, X, y, folds, metric=get_metric("rmse"), task="regression", X_test=X_test
    ).oof


def help_seconds(repeats: int = 7) -> float:
    kfw = Path(sys.executable).with_name("kfw")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([str(kfw), "--help"], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    X, y, X_test = make_data(args.rows)
    scheme = FoldScheme("kfold", n_splits=5, seed=0)
    folds = Folds(scheme, np.arange(len(y)), assign_folds(scheme, len(y))[0], None, "bench")
    timings: dict[str, list[float]] = {"hand-written loop": [], "kfw cross_validate": []}
    oofs = {}
    for _ in range(args.repeats):
        for name, loop in (("hand-written loop", hand_loop), ("kfw cross_validate", kfw_loop)):
            start = time.perf_counter()
            oofs[name] = loop(X, y, X_test, folds, args.threads)
            timings[name].append(time.perf_counter() - start)
    rmse = {name: float(np.sqrt(np.mean((oof - y) ** 2))) for name, oof in oofs.items()}
    hand, ours = (statistics.median(timings[k]) for k in timings)

    print(f"5-fold LightGBM, {args.rows:,} rows x {X.shape[1]} columns, {args.threads} threads, "
          f"median of {args.repeats}")  # fmt: skip
    print(f"{'loop':<22}{'seconds':>10}{'OOF rmse':>12}")
    for name in timings:
        print(f"{name:<22}{statistics.median(timings[name]):>10.2f}{rmse[name]:>12.5f}")
    print(f"ratio kfw / hand-written: {ours / hand:.3f}  (target <= 1.10)")
    print(f"kfw --help start-up: {help_seconds():.3f} s  (target < 0.5 s)")


if __name__ == "__main__":
    main()
