"""kfw's TargetEncoder against scikit-learn's, cross-fitted, on 1,000,000 rows x 5 columns.

Both encode the same frame with 5 inner folds (``fit_transform``, the leak-free encoding
of the training rows) and then ``transform`` it again; the outputs are compared. Columns have
10, 100, 1,000, 10,000 and 100,000 categories; the target is binary. Target: kfw at least
as fast (ratio <= 1.0).

    .venv/bin/python benchmarks/target_encoding.py [--rows 1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import TargetEncoder as SkTargetEncoder

from kfw.core.encoding import TargetEncoder

CARDINALITIES = (10, 100, 1_000, 10_000, 100_000)


def make_data(rows: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"c{k}": rng.integers(0, k, rows).astype(str) for k in CARDINALITIES})
    logit = sum(rng.normal(size=k)[frame[f"c{k}"].astype(int)] * 0.3 for k in CARDINALITIES)
    y = (logit + rng.logistic(size=rows) > 0).astype(int)
    return frame, y


def ours(X, y):
    enc = TargetEncoder(cv=5, random_state=0)
    return enc.fit_transform(X, y).to_numpy(), enc.transform(X).to_numpy()


def sklearn(X, y):
    enc = SkTargetEncoder(cv=StratifiedKFold(5, shuffle=True, random_state=0))
    return enc.fit_transform(X, y), enc.transform(X)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore", FutureWarning)
    X, y = make_data(args.rows)
    X_obj = X.astype(object)  # scikit-learn's encoder wants object (or numeric) input
    times: dict[str, list[float]] = {"scikit-learn TargetEncoder": [], "kfw TargetEncoder": []}
    outputs = {}
    for _ in range(args.repeats):
        for name, fn, data in (
            ("scikit-learn TargetEncoder", sklearn, X_obj),
            ("kfw TargetEncoder", ours, X),
        ):
            start = time.perf_counter()
            outputs[name] = fn(data, y)
            times[name].append(time.perf_counter() - start)
    (sk_fit, sk_tr), (kf_fit, kf_tr) = outputs.values()
    print(f"{args.rows:,} rows x {len(CARDINALITIES)} columns (cardinalities {', '.join(map(str, CARDINALITIES))}), "
          f"5-fold fit_transform + transform, median of {args.repeats}")  # fmt: skip
    print(f"{'encoder':<30}{'seconds':>10}")
    for name, t in times.items():
        print(f"{name:<30}{statistics.median(t):>10.2f}")
    ratio = statistics.median(times["kfw TargetEncoder"]) / statistics.median(
        times["scikit-learn TargetEncoder"]
    )
    print(
        f"max |difference|: fit_transform {np.abs(sk_fit - kf_fit).max():.2e}, transform {np.abs(sk_tr - kf_tr).max():.2e}"
    )
    print(f"ratio kfw / scikit-learn: {ratio:.3f}  (target <= 1.0)")


if __name__ == "__main__":
    main()
