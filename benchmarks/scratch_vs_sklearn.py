"""Each from-scratch estimator against its scikit-learn twin: fit and predict time, quality.

Same data, same parameters, both in this one run, each timed as the best of ``--repeats``
(scikit-learn with its default threads). Quality is R^2 or accuracy on a held-out quarter.
Targets on 2 cores: the tree at most 5x scikit-learn's fit time on 20,000 x 20, the
histogram booster at most 3x on 100,000 x 20, the lasso path at most 3x.

    .venv/bin/python benchmarks/scratch_vs_sklearn.py [--repeats 3] [--quick] [--only tree]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as kfw runs them (see kfw.core.registry)

import numpy as np
import sklearn.cluster
import sklearn.decomposition
import sklearn.ensemble
import sklearn.linear_model
import sklearn.neighbors
import sklearn.svm
import sklearn.tree
from sklearn.datasets import make_classification, make_regression

import scratch_models as ours

TARGETS = {"tree (regression)": 5.0, "hist gradient boosting (regression)": 3.0, "lasso path": 3.0}


def data(kind: str, n: int, p: int = 20, seed: int = 0):
    if kind == "regression":
        X, y = make_regression(n, p, n_informative=10, noise=10.0, random_state=seed)
    else:
        X, y = make_classification(n, p, n_informative=10, random_state=seed)
    cut = 3 * n // 4
    return X[:cut], y[:cut], X[cut:], y[cut:]


def best_of(repeats: int, fn: Callable[[], object]) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def quality(model, X, y, kind: str) -> float:
    pred = model.predict(X)
    if kind == "regression":
        return 1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2)
    return float(np.mean(pred == y))


def cases(quick: bool):
    n_big = 20_000 if quick else 100_000
    return [
        (
            "linear regression",
            "regression",
            20_000,
            ours.LinearRegression(),
            sklearn.linear_model.LinearRegression(),
        ),
        (
            "ridge",
            "regression",
            20_000,
            ours.Ridge(alpha=1.0),
            sklearn.linear_model.Ridge(alpha=1.0),
        ),
        (
            "lasso",
            "regression",
            20_000,
            ours.Lasso(alpha=0.1),
            sklearn.linear_model.Lasso(alpha=0.1),
        ),
        (
            "logistic regression",
            "classification",
            20_000,
            ours.LogisticRegression(max_iter=1000),
            sklearn.linear_model.LogisticRegression(max_iter=1000),
        ),
        (
            "tree (regression)",
            "regression",
            20_000,
            ours.DecisionTreeRegressor(),
            sklearn.tree.DecisionTreeRegressor(),
        ),
        (
            "tree (classification)",
            "classification",
            20_000,
            ours.DecisionTreeClassifier(),
            sklearn.tree.DecisionTreeClassifier(),
        ),
        (
            "random forest",
            "classification",
            10_000,
            ours.RandomForestClassifier(50, random_state=0),
            sklearn.ensemble.RandomForestClassifier(50, random_state=0, n_jobs=1),
        ),
        (
            "gradient boosting",
            "regression",
            10_000,
            ours.GradientBoostingRegressor(n_estimators=100),
            sklearn.ensemble.GradientBoostingRegressor(n_estimators=100),
        ),
        (
            "hist gradient boosting (regression)",
            "regression",
            n_big,
            ours.HistGradientBoostingRegressor(max_iter=100),
            sklearn.ensemble.HistGradientBoostingRegressor(max_iter=100, early_stopping=False),
        ),
        (
            "hist gradient boosting (classification)",
            "classification",
            n_big,
            ours.HistGradientBoostingClassifier(max_iter=100),
            sklearn.ensemble.HistGradientBoostingClassifier(max_iter=100, early_stopping=False),
        ),
        (
            "k-nearest neighbours",
            "classification",
            10_000,
            ours.KNeighborsClassifier(),
            sklearn.neighbors.KNeighborsClassifier(algorithm="brute"),
        ),
        ("svc (rbf)", "classification", 2_000, ours.SVC(), sklearn.svm.SVC()),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--quick", action="store_true", help="20,000 rows for the histogram booster"
    )
    parser.add_argument("--only", help="just the estimators whose name contains this text")
    args = parser.parse_args()
    rows = []
    for name, kind, n, mine, theirs in cases(args.quick):
        if args.only and args.only not in name:
            continue
        X, y, Xt, yt = data(kind, n)
        fit_s, _ = best_of(args.repeats, lambda theirs=theirs, X=X, y=y: theirs.fit(X, y))
        fit_o, _ = best_of(args.repeats, lambda mine=mine, X=X, y=y: mine.fit(X, y))
        pred_s, _ = best_of(args.repeats, lambda theirs=theirs, Xt=Xt: theirs.predict(Xt))
        pred_o, _ = best_of(args.repeats, lambda mine=mine, Xt=Xt: mine.predict(Xt))
        rows.append(
            (
                name,
                n,
                fit_o,
                fit_s,
                pred_o,
                pred_s,
                quality(mine, Xt, yt, kind) - quality(theirs, Xt, yt, kind),
            )
        )
        print(".", end="", flush=True)
    X, y, _, _ = data("regression", 2_000, 50)
    if args.only and args.only not in "lasso path":
        return report(rows)
    path_s, _ = best_of(args.repeats, lambda: sklearn.linear_model.lasso_path(X, y, alphas=100))
    path_o, _ = best_of(args.repeats, lambda: ours.lasso_path(X, y, n_alphas=100))
    rows.append(("lasso path", 2_000, path_o, path_s, float("nan"), float("nan"), 0.0))
    report(rows)


def report(rows: list[tuple]) -> None:
    print()
    print(
        f"{'estimator':<42}{'rows':>8}{'fit ours':>10}{'fit sk':>9}{'ratio':>7}{'pred ratio':>11}{'quality Δ':>11}  target"
    )
    for name, n, fo, fs, po, ps, dq in rows:
        target = TARGETS.get(name)
        verdict = (
            "" if target is None else f"<= {target:g}x {'met' if fo / fs <= target else 'NOT met'}"
        )
        pred = f"{po / ps:>11.2f}" if np.isfinite(po) else f"{'-':>11}"
        print(f"{name:<42}{n:>8,}{fo:>10.3f}{fs:>9.3f}{fo / fs:>7.2f}{pred}{dq:>+11.4f}  {verdict}")


if __name__ == "__main__":
    main()
