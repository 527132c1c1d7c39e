"""``kfw cv --time-limit``: the whole command's budget, shared out and honoured."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from kfw.cli.app import app
from tests.synth import kaggle_download

RUNNER = CliRunner()
# members that would train for hours: only the clock stops them
SLOW = """
[[models]]
name = "logreg"

[[models]]
name = "lgbm"
params = { n_estimators = 1000000, learning_rate = 0.0001 }

[[models]]
name = "xgb"
params = { n_estimators = 1000000, learning_rate = 0.0001 }

[[models]]
name = "catboost"
params = { iterations = 1000000, learning_rate = 0.0001 }

[ensemble]
method = "hillclimb"
"""


def kfw(home: Path, *args: str) -> str:
    result = RUNNER.invoke(app, ["--home", str(home), *args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def timed_cv(home: Path, tmp_path: Path, slug: str, roster: str, limit: float, n_train: int):
    """A generated competition with ``roster`` for its members, run by ``kfw cv --time-limit``:
    the output and the command's wall seconds."""
    source = kaggle_download(tmp_path / "download", "binary-proba", n_train=n_train, n_test=500)
    kfw(home, "new", slug, "--from", str(source), "--metric", "roc_auc")
    toml = home / "competitions" / slug / "competition.toml"
    text = toml.read_text()
    toml.write_text(text[: text.index("[[models]]")] + roster)
    start = time.perf_counter()
    out = kfw(home, "cv", slug, "--time-limit", f"{limit:g}s", "--no-wandb", "--threads", "1")
    return out, time.perf_counter() - start


def test_the_time_limit_is_honoured_and_used_on_a_generated_competition(home, tmp_path):
    limit = 12.0
    out, wall = timed_cv(home, tmp_path, "timed", SLOW, limit, n_train=3000)
    # a few percent over at most (a second for the last round and the writing), and most of
    # the budget used: every member ran, each stopped at the end of its share
    assert wall <= limit * 1.05 + 1.0, wall
    assert wall >= limit * 0.8, wall
    runs = [json.loads(p.read_text()) for p in (home / "runs" / "timed").glob("*/run.json")]
    models = {r["label"]: r for r in runs if r["kind"] == "model"}
    assert set(models) == {"logreg", "lgbm", "xgb", "catboost"}
    for label in ("lgbm", "xgb", "catboost"):
        fits = len(models[label]["fold_scores"])  # 5 folds x 3 repeats on 3,000 rows
        assert fits == 15 and models[label]["out_of_time_folds"] == fits
        assert models[label]["time_budget"] > 0
        assert re.search(rf"{label} .* \(15 folds stopped at their share of the time limit\)", out)
    assert models["logreg"]["out_of_time_folds"] == 0
    # the cheap member's small claim leaves the boosted ones most of the time
    assert models["logreg"]["time_budget"] < models["lgbm"]["time_budget"] / 3
    (ensemble,) = [r for r in runs if r["kind"] == "ensemble"]
    assert len(ensemble["members"]) == 4
    sub = tmp_path / "s.csv"
    kfw(home, "submit", "timed", "--dry-run", "--output", str(sub))
    assert len(pd.read_csv(sub)) == 500


QUICK = """
[[models]]
name = "logreg"

[[models]]
name = "lgbm"
params = { n_estimators = 60, subsample = 0.8, subsample_freq = 1, early_stopping_rounds = 0 }

[[models]]
name = "xgb"
params = { n_estimators = 60, early_stopping_rounds = 0 }

[ensemble]
method = "hillclimb"
"""


def test_time_the_roster_leaves_goes_to_repeated_bagging_of_seeded_members(home, tmp_path):
    limit = 14.0
    _, wall = timed_cv(home, tmp_path, "bagged", QUICK, limit, n_train=1500)
    assert wall <= limit * 1.05 + 1.0, wall  # never overrun
    runs = [json.loads(p.read_text()) for p in (home / "runs" / "bagged").glob("*/run.json")]
    bags = sorted((r for r in runs if r.get("bag_of")), key=lambda r: r["seed"])
    # lgbm subsamples rows, so a seed changes it; logreg and this xgb would fit the same model
    assert bags and {r["bag_of"] for r in bags} == {"lgbm"}
    assert [r["label"] for r in bags] == ["lgbm-bag2", "lgbm-bag3", "lgbm-bag4", "lgbm-bag5"]
    first = next(r for r in runs if r["label"] == "lgbm")
    assert [r["seed"] for r in bags][:2] == [first["seed"] + 1, first["seed"] + 2]
    oof = {
        r["label"]: pd.read_parquet(home / "runs" / "bagged" / r["id"] / "oof.parquet")
        for r in (first, bags[0])
    }
    assert not oof["lgbm"].equals(oof["lgbm-bag2"])  # another seed, another model
    (ensemble,) = [r for r in runs if r["kind"] == "ensemble"]
    assert set(ensemble["member_labels"]) >= {"logreg", "lgbm", "xgb", "lgbm-bag2"}
