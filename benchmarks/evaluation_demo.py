"""The evaluation tools on two competitions, as `docs/evaluation.md` shows them.

1. An imbalanced competition that `kfw new` builds from a generated data set with 5%
   positives, scored by F1: the default 0.5 threshold against the threshold tuned in each
   fold, a random forest's calibration before and after temperature scaling, the learning curve, the worst rows and a segment
   table, and the run's evaluation report.
2. Titanic (Kaggle's download when `../shared` has it, else the embedded open copy), scored
   by accuracy: the same threshold and calibration comparison.

Everything runs through the CLI in a fresh KFW_HOME (or --home), as a user would; the
numbers printed at the end are read back from the run records.

    .venv/bin/python benchmarks/evaluation_demo.py [--home DIR] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import make_classification

KFW = [sys.executable, "-m", "kfw"]
SHARED = Path(__file__).resolve().parents[2] / "shared" / "kaggle"


def imbalanced_download(folder: Path, n: int = 8000, seed: int = 0) -> Path:
    """train.csv, test.csv and sample_submission.csv of a data set with 5% positives."""
    X, y = make_classification(
        n, n_features=10, n_informative=5, n_redundant=2, weights=[0.95], flip_y=0.01,
        class_sep=0.8, random_state=seed,
    )  # fmt: skip
    frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])]).round(4)
    frame["region"] = np.random.default_rng(seed).choice(["north", "south", "east", "west"], n)
    frame.insert(0, "id", np.arange(1, n + 1))
    frame["target"] = y
    cut = 3 * n // 4
    folder.mkdir(parents=True, exist_ok=True)
    frame.iloc[:cut].to_csv(folder / "train.csv", index=False)
    frame.iloc[cut:].drop(columns="target").to_csv(folder / "test.csv", index=False)
    pd.DataFrame({"id": frame["id"].iloc[cut:], "target": 0}).to_csv(
        folder / "sample_submission.csv", index=False
    )
    return folder


def kfw(env: dict[str, str], *args: str) -> str:
    print("$ kfw " + " ".join(args), flush=True)
    done = subprocess.run([*KFW, *args], env=env, capture_output=True, text=True)
    print(done.stdout + done.stderr, flush=True)
    if done.returncode != 0:
        sys.exit(f"kfw {' '.join(args)} failed ({done.returncode})")
    return done.stdout


def latest(home: Path, slug: str, label: str) -> dict:
    runs = [json.loads(p.read_text()) for p in (home / "runs" / slug).glob("*/run.json")]
    return max((r for r in runs if r["label"] == label), key=lambda r: r["id"])


def calibration(record: dict) -> dict[str, float]:
    folds = [f["calibration"] for f in record["fold_scores"]]
    keys = ("ece_before", "ece_after", "brier_before", "brier_after")
    return {k: float(np.mean([f[k] for f in folds])) for k in keys}


def compare(env: dict[str, str], home: Path, slug: str, model: str) -> dict[str, float]:
    kfw(env, "cv", slug, "-m", model, "--no-blend")
    fixed = latest(home, slug, model)
    kfw(env, "cv", slug, "-m", model, "--threshold", "tune", "--no-blend")
    tuned = latest(home, slug, model)
    # a forest's probabilities are pulled towards the middle: what calibration is for
    kfw(env, "cv", slug, "-m", "rf", "--no-blend")
    kfw(env, "cv", slug, "-m", "rf", "--calibrate", "temperature", "--no-blend")
    cal = latest(home, slug, "rf")
    return {
        "at 0.5": fixed["score"],
        "tuned in the folds": tuned["score"],
        "tuned on the OOF (optimistic)": tuned["score_oof_tuned"],
        "median threshold": tuned["threshold"],
        **calibration(cal),
        "tuned run": tuned["id"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = args.home or Path(tmp)
        env = {**os.environ, "KFW_HOME": str(home), "KFW_THREADS": str(args.threads)}
        env["WANDB_MODE"] = "disabled"
        source = imbalanced_download(home / "downloads" / "imbalanced")
        kfw(env, "new", "imbalanced", "--from", str(source), "--metric", "f1", "--target", "target", "--id", "id", "--force")  # fmt: skip
        results = {"imbalanced (F1, logreg)": compare(env, home, "imbalanced", "logreg")}
        run = results["imbalanced (F1, logreg)"]["tuned run"]
        kfw(env, "curves", "imbalanced", "--model", "lgbm")
        kfw(env, "errors", "imbalanced", run, "--by", "region", "--by", "x0", "--top", "5")
        kfw(env, "report", "imbalanced", run)
        titanic = SHARED / "titanic.zip"
        if titanic.is_file():
            kfw(env, "data", "import", "titanic", str(titanic))
        results["titanic (accuracy, logreg)"] = compare(env, home, "titanic", "logreg")
        kfw(env, "curves", "titanic", "--model", "lgbm")
        kfw(env, "errors", "titanic", results["titanic (accuracy, logreg)"]["tuned run"], "--by", "Pclass", "--by", "Sex", "--top", "5")  # fmt: skip
    print(
        "\n| competition | at 0.5 | tuned in the folds | tuned on the OOF (optimistic) | threshold | ECE before -> after | Brier before -> after |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, r in results.items():
        print(
            f"| {name} | {r['at 0.5']:.4f} | {r['tuned in the folds']:.4f} | "
            f"{r['tuned on the OOF (optimistic)']:.4f} | {r['median threshold']:.3f} | "
            f"{r['ece_before']:.4f} -> {r['ece_after']:.4f} | {r['brier_before']:.4f} -> {r['brier_after']:.4f} |"
        )


if __name__ == "__main__":
    main()
