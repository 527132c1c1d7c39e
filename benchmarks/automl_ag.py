"""AutoGluon-Tabular on one Kaggle-layout folder: the other side of ``automl_suite.py``.

Run by the suite with the Python of AutoGluon's own environment (never kfw's): it imports
nothing of kfw. It fits ``TabularPredictor(presets="best_quality", time_limit=T)`` on
``train.csv`` (the id column dropped), predicts ``test.csv`` and writes one JSON file: the
best model's own validation score (in the metric's natural units, so RMSE is positive), the
fit's wall seconds and the test predictions (a probability per class, or values).

    AG_PYTHON benchmarks/automl_ag.py FOLDER --label COL --id COL --metric NAME --task TASK
        --time-limit SECONDS --cpus 2 --out result.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

# kfw's metric names -> AutoGluon's
METRICS = {"roc_auc": "roc_auc", "log_loss": "log_loss", "rmse": "root_mean_squared_error"}
LOWER_IS_BETTER = {"log_loss", "rmse"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--label", required=True)
    parser.add_argument("--id", required=True)
    parser.add_argument("--metric", required=True, choices=sorted(METRICS))
    parser.add_argument("--task", required=True, choices=["binary", "multiclass", "regression"])
    parser.add_argument("--time-limit", type=float, required=True)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--presets", default="best_quality")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    import autogluon.tabular
    from autogluon.tabular import TabularPredictor

    train = pd.read_csv(args.folder / "train.csv").drop(columns=[args.id])
    test = pd.read_csv(args.folder / "test.csv")
    path = Path(tempfile.mkdtemp(prefix="ag-"))
    try:
        start = time.perf_counter()
        predictor = TabularPredictor(
            label=args.label,
            problem_type=args.task,  # a count target is a regression, not 59 classes
            eval_metric=METRICS[args.metric],
            path=str(path),
            verbosity=1,
        ).fit(
            train,
            presets=args.presets,
            time_limit=args.time_limit,
            num_cpus=args.cpus,
            num_gpus=0,
        )
        fit_s = time.perf_counter() - start
        board = predictor.leaderboard(silent=True)
        best = predictor.model_best
        val = float(board.set_index("model").loc[best, "score_val"])
        # AutoGluon reports every score higher-is-better: an error comes back negated
        val = -val if args.metric in LOWER_IS_BETTER else val
        features = test.drop(columns=[args.id])
        if args.metric == "rmse":
            pred = {"values": predictor.predict(features).astype(float).tolist()}
        else:
            proba = predictor.predict_proba(features)
            pred = {"classes": [str(c) for c in proba.columns], "proba": proba.to_numpy().tolist()}
        result = {
            "version": autogluon.tabular.__version__,
            "presets": args.presets,
            "time_limit": args.time_limit,
            "cpus": args.cpus,
            "fit_s": fit_s,
            "wall_s": time.perf_counter() - start,
            "val_score": val,
            "model_best": best,
            "models": len(board),
            "ids": test[args.id].tolist(),
            **pred,
        }
    finally:
        shutil.rmtree(path, ignore_errors=True)
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
