"""Write the reference runs that tests/kfw/test_reference_runs.py compares against.

Run once, from the repository root, with the code whose behaviour is the reference:

    .venv/bin/python -m tests.data.reference_runs.make

It drives two generated competitions (tests/synth.py: a binary one, lgbm + logreg and their
blend; a regression one with a log1p target, ridge + lgbm and their blend) through `kfw cv`
with one thread, and keeps, per run, the predictions (``oof.csv``, ``test.csv``: full float
precision), the submission and the parts of ``run.json`` that the code decides (scores,
parameters, folds, rounds), not the ones the clock or the machine does.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from kfw.cli.app import app
from tests.synth import make_competition

HERE = Path(__file__).parent
CASES = {"binary": ("lgbm", "logreg"), "regression": ("ridge", "lgbm")}
# the record's fields that the code decides; run ids, times and versions are left out
KEPT = (
    "kind", "label", "task", "metric", "greater_is_better", "folds", "target_transform",
    "classes", "model", "params", "seed", "threads", "score", "score_without_excluded", "se",
    "mean", "std", "early_stopping", "best_iterations", "optimistic", "member_labels",
)  # fmt: skip
FOLD_KEPT = ("repeat", "fold", "score", "n_train", "n_valid", "best_iteration")


def run_case(task: str, home: Path) -> dict[str, dict]:
    """``kfw cv synth`` of one generated competition; the runs by label."""
    make_competition(home, task=task, models=CASES[task])
    env = {"KFW_THREADS": "1", "WANDB_MODE": "disabled", "OPENBLAS_NUM_THREADS": "1"}
    result = CliRunner().invoke(app, ["--home", str(home), "cv", "synth", "--no-wandb"], env=env)
    if result.exit_code != 0:
        raise RuntimeError(result.output)
    runs = {}
    for path in sorted((home / "runs" / "synth").glob("*/run.json")):
        record = json.loads(path.read_text())
        runs[record["label"]] = {"record": record, "folder": path.parent}
    return runs


def kept(record: dict) -> dict:
    out = {k: record.get(k) for k in KEPT}
    out["fold_scores"] = [{k: f.get(k) for k in FOLD_KEPT} for f in record["fold_scores"]]
    return out


def main() -> None:
    for task in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            runs = run_case(task, Path(tmp) / "home")
            dest = HERE / task
            shutil.rmtree(dest, ignore_errors=True)
            for label, run in runs.items():
                folder = dest / label
                folder.mkdir(parents=True)
                (folder / "record.json").write_text(
                    json.dumps(kept(run["record"]), indent=1) + "\n"
                )
                for name in ("oof", "test"):
                    frame = pd.read_parquet(run["folder"] / f"{name}.parquet")
                    frame.to_csv(folder / f"{name}.csv", index=False, float_format="%.17g")
                shutil.copy2(run["folder"] / "submission.csv", folder / "submission.csv")


if __name__ == "__main__":
    main()
