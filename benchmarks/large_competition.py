"""A Playground-sized competition: 1,000,000 x 40, binary, mixed types.

Generates the download (train, test of 250,000 rows, sample submission), then measures, each
in its own process, wall time and peak memory (max RSS) of

- kfw: ``kfw new big --from DIR --metric roc_auc`` then ``kfw cv big --model lgbm`` (5 folds,
  the generated features: counts, date parts, out-of-fold target encoding);
- a hand-written loop: polars reads the CSVs, strings become categories, LightGBM with the
  same parameters and threads fits the same 5 folds (read from kfw's fold file), early
  stopping on each validation part, test predictions averaged.

Targets: kfw at most 1.2x the hand-written loop's time and 1.5x its memory.

With early stopping each side trains as long as its own features keep helping, so the time
ratio mixes overhead with model size (kfw's target encoding and date parts make a better model
that stops later). ``--rounds N`` fixes the rounds on both sides (no early stopping) and so
measures what kfw itself costs.

    .venv/bin/python benchmarks/large_competition.py [--rows 1000000] [--threads 2] [--rounds N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PARAMS = {
    "learning_rate": 0.05,
    "num_leaves": 31,
    "n_estimators": 5000,
    "early_stopping_rounds": 100,
}

HAND_WRITTEN = r"""
import sys, json, numpy as np, polars as pl, lightgbm as lgb
src, folds_csv, threads, params = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
train = pl.read_csv(f"{src}/train.csv", infer_schema_length=None)
test = pl.read_csv(f"{src}/test.csv", infer_schema_length=None)
y = train["target"].to_numpy()
features = [c for c in test.columns if c != "id"]
strings = [c for c in features if train.schema[c] == pl.String]
both = pl.concat([train.select(features), test.select(features)]).with_columns(
    [pl.col(c).cast(pl.Categorical) for c in strings])
X_all = both.to_pandas()
X, X_test = X_all.iloc[: len(train)], X_all.iloc[len(train):]
fold = pl.read_csv(folds_csv)["fold_0"].to_numpy()
oof, pred = np.zeros(len(y)), np.zeros(len(X_test))
stop = params.pop("early_stopping_rounds")
callbacks = [lgb.early_stopping(stop, verbose=False)] if stop else []
for k in range(5):
    tr, va = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
    model = lgb.LGBMClassifier(**params, n_jobs=threads, random_state=42, verbose=-1, deterministic=True, force_col_wise=True)
    model.fit(X.iloc[tr], y[tr], eval_X=(X.iloc[va],), eval_y=(y[va],), callbacks=callbacks)
    oof[va] = model.predict_proba(X.iloc[va])[:, 1]
    pred += model.predict_proba(X_test)[:, 1] / 5
from sklearn.metrics import roc_auc_score
print(json.dumps({"auc": roc_auc_score(y, oof)}))
"""


def generate(folder: Path, rows: int, seed: int = 0) -> None:
    import polars as pl

    rng = np.random.default_rng(seed)
    n_test = rows // 4
    n = rows + n_test
    cols: dict[str, np.ndarray] = {"id": np.arange(n)}
    logit = np.zeros(n)
    for i in range(25):
        x = rng.normal(size=n)
        x[rng.random(n) < 0.02] = np.nan
        cols[f"num_{i}"] = np.round(x, 4)
        logit += np.nan_to_num(x) * rng.normal(0, 0.3)
    for i in range(10):
        k = 3 + 2 * i
        codes = rng.integers(0, k, n)
        cols[f"cat_{i}"] = np.array([f"c{j}" for j in range(k)])[codes]
        logit += rng.normal(0, 0.4, k)[codes]
    for i, k in enumerate((1_000, 10_000, 50_000)):
        codes = rng.integers(0, k, n)
        cols[f"high_{i}"] = np.char.add("h", codes.astype(str))
        logit += rng.normal(0, 0.3, k)[codes]
    days = rng.integers(0, 1500, n)
    cols["signup"] = (np.datetime64("2020-01-01") + days).astype(str)
    logit += np.sin(days / 200)
    cols["flag"] = rng.random(n) < 0.3
    target = (logit + rng.logistic(size=n) > 0).astype(int)
    frame = pl.DataFrame(cols)
    folder.mkdir(parents=True, exist_ok=True)
    frame[:rows].with_columns(pl.Series("target", target[:rows])).write_csv(folder / "train.csv")
    frame[rows:].write_csv(folder / "test.csv")
    pl.DataFrame({"id": cols["id"][rows:], "target": np.full(n_test, 0.5)}).write_csv(
        folder / "sample_submission.csv"
    )


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run with /usr/bin/time-like accounting: wall seconds, max RSS in MiB, stdout."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # wait4 gives this child's own resource usage (its max RSS), unlike getrusage(CHILDREN)
    out = proc.stdout.read() if proc.stdout else ""
    err = proc.stderr.read() if proc.stderr else ""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} failed:\n{err[-3000:]}")
    return wall, usage.ru_maxrss / 1024, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, help="fixed boosting rounds, no early stopping")
    parser.add_argument("--keep", type=Path, help="reuse / keep the generated files here")
    args = parser.parse_args()
    params = dict(PARAMS)
    if args.rounds:
        params.update(n_estimators=args.rounds, early_stopping_rounds=0)
    work = Path(tempfile.mkdtemp(prefix="kfw-large-"))
    src = args.keep or work / "download"
    if not (src / "train.csv").is_file():
        t = time.perf_counter()
        generate(src, args.rows)
        print(f"generated {args.rows:,} x 40 in {time.perf_counter() - t:.0f} s ({src})")
    kfw = str(Path(sys.executable).with_name("kfw"))
    home = work / "home"
    env = {
        **os.environ,
        "KFW_HOME": str(home),
        "KFW_THREADS": str(args.threads),
        "WANDB_MODE": "disabled",
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    try:
        new_s, new_mb, _ = run([kfw, "new", "big", "--from", str(src), "--metric", "roc_auc"], env)
        flags = [arg for k, v in params.items() for arg in ("-p", f"{k}={v}")]
        cv_s, cv_mb, out = run([kfw, "cv", "big", "--model", "lgbm", *flags], env)
        kfw_auc = float(out.strip().splitlines()[-1].split()[2])
        folds = next((home / "data" / "big" / "folds").glob("*.csv"))
        hand_s, hand_mb, out = run(
            [
                sys.executable,
                "-c",
                HAND_WRITTEN,
                str(src),
                str(folds),
                str(args.threads),
                json.dumps(params),
            ],
            env,
        )
        hand_auc = json.loads(out.strip().splitlines()[-1])["auc"]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    kfw_s, kfw_mb = new_s + cv_s, max(new_mb, cv_mb)
    rounds = f"{args.rounds} rounds" if args.rounds else "early stopping"
    print(f"{args.rows:,} rows x 40 columns, 5-fold LightGBM ({rounds}), {args.threads} threads")
    print(f"{'':<28}{'seconds':>10}{'peak MiB':>10}{'CV AUC':>9}")
    print(f"{'kfw new':<28}{new_s:>10.1f}{new_mb:>10.0f}")
    print(f"{'kfw cv --model lgbm':<28}{cv_s:>10.1f}{cv_mb:>10.0f}{kfw_auc:>9.4f}")
    print(f"{'hand-written polars+lgbm':<28}{hand_s:>10.1f}{hand_mb:>10.0f}{hand_auc:>9.4f}")
    print(
        f"ratio kfw / hand-written: time {kfw_s / hand_s:.2f} (target <= 1.2), memory {kfw_mb / hand_mb:.2f} (target <= 1.5)"
    )


if __name__ == "__main__":
    main()
