"""Digit Recognizer on a CPU: `kfw cv digit-recognizer --preset cpu`, timed, against its targets.

A user without a GPU runs the competition's CPU roster (`[presets.cpu]` in
`competitions/digit-recognizer/competition.toml`, chosen by default where there is no CUDA).
This runs exactly what that user runs, through the CLI, on Kaggle's download in a fresh
KFW_HOME: `kfw data import` of the zip, then `kfw cv digit-recognizer --preset cpu`, timed end
to end (data, folds, the 5 fold fits, test predictions, the run written). Targets on 2 cores:
CV accuracy >= 0.994 in under 45 minutes. Prints a table and each ratio (<= 1.00 meets it).

    .venv/bin/python benchmarks/digit_recognizer_cpu.py [--data ../shared/kaggle/digit-recognizer.zip] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_CV = 0.994
TARGET_MINUTES = 45.0
KFW = [sys.executable, "-m", "kfw"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/kaggle/digit-recognizer.zip"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--home", type=Path, help="KFW_HOME to use (default: a fresh temporary one)"
    )
    args = parser.parse_args()
    if not args.data.is_file():
        sys.exit(
            f"{args.data}: Kaggle's digit-recognizer.zip is needed (kfw data download digit-recognizer)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        home = args.home or Path(tmp)
        env = {**os.environ, "KFW_HOME": str(home), "KFW_THREADS": str(args.threads)}
        env["WANDB_MODE"] = "disabled"
        subprocess.run(
            [*KFW, "data", "import", "digit-recognizer", str(args.data)], env=env, check=True
        )
        start = time.perf_counter()
        subprocess.run([*KFW, "cv", "digit-recognizer", "--preset", "cpu"], env=env, check=True)
        minutes = (time.perf_counter() - start) / 60
        runs = sorted((home / "runs" / "digit-recognizer").glob("*/run.json"))
        record = json.loads(runs[-1].read_text())
    folds = [f["score"] for f in record["fold_scores"]]
    print()
    print(f"{'':<28} {'measured':>10} {'target':>10} {'ratio':>7}")
    # the accuracy's ratio is of errors: the measured error over the error the target allows
    error_ratio = (1 - record["score"]) / (1 - TARGET_CV)
    print(
        f"{'CV accuracy (5 folds, OOF)':<28} {record['score']:>10.5f} {TARGET_CV:>10.3f} {error_ratio:>7.2f}"
    )
    print(
        f"{'wall minutes, 2 cores':<28} {minutes:>10.1f} {TARGET_MINUTES:>10.1f} {minutes / TARGET_MINUTES:>7.2f}"
    )
    print(f"folds: {', '.join(f'{s:.5f}' for s in folds)}; run {record['id']} ({record['label']})")
    met = record["score"] >= TARGET_CV and minutes < TARGET_MINUTES
    print("both targets met" if met else "a target missed")


if __name__ == "__main__":
    main()
