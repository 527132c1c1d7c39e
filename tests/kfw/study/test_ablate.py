"""``kfw ablate`` on a generated Digit Recognizer look-alike, with the from-scratch MLP.

``scratch-mlp`` has boolean parameters (``batch_norm``, ``early_stopping``), fits 240 8x8
digits in a fraction of a second at these sizes, and takes ``random_state``: it exercises the
same machinery as ``torch-resnet``'s ``augment`` / ``batchnorm`` / ``residual``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.stats import t as student_t
from sklearn.datasets import load_digits
from typer.testing import CliRunner

from kfw.cli import main
from kfw.cli.app import app
from kfw.errors import ConfigError
from kfw.study.ablate import first_folds, paired_interval

RUNNER = CliRunner()
EXACT = 1e-12  # the table is arithmetic on the runs' own per-fold scores
SMALL = ["-p", "max_iter=3", "-p", "hidden_layer_sizes=[16]"]
ABLATE = ["ablate", "pixels", "-m", "scratch-mlp", "--toggle", "batch_norm", "--seeds", "2"]


N_TRAIN, N_TEST = 300, 50
SPEC = """
title = "Pixels"
kaggle = "pixels"
task = "multiclass"
metric = "accuracy"
id = "ImageId"
row_ids = true
target = "label"
features = "digit_recognizer"
seed = 42

[files]
train = "train.csv"
test = "test.csv"
sample_submission = "sample_submission.csv"

[submission]
columns = ["ImageId", "Label"]
format = "label"

[folds]
scheme = "stratified"
n_splits = 5
seed = 42

[[models]]
name = "scratch-mlp"
params = { scaler = "none", hidden_layer_sizes = [16], max_iter = 3, batch_size = 32 }
"""


def pixels_competition(home: Path) -> Path:
    """sklearn's 8x8 digits in Digit Recognizer's layout (no id column), as competition "pixels".

    Returns the download folder to import.
    """
    X, y = load_digits(return_X_y=True)
    pixels = pd.DataFrame(
        (X * 255 / 16).round().astype(int), columns=[f"pixel{i}" for i in range(64)]
    )
    download = home / "download"
    download.mkdir(parents=True)
    pd.concat([pd.Series(y[:N_TRAIN], name="label"), pixels[:N_TRAIN]], axis=1).to_csv(
        download / "train.csv", index=False
    )
    pixels[N_TRAIN : N_TRAIN + N_TEST].to_csv(download / "test.csv", index=False)
    pd.DataFrame({"ImageId": np.arange(1, N_TEST + 1), "Label": 0}).to_csv(
        download / "sample_submission.csv", index=False
    )
    (home / "competitions" / "pixels").mkdir(parents=True)
    (home / "competitions" / "pixels" / "competition.toml").write_text(SPEC)
    return download


@pytest.fixture
def pixels(home: Path) -> Path:
    pixels_competition(home)
    result = RUNNER.invoke(app, ["--home", str(home), "data", "import", "pixels", str(home / "download")])  # fmt: skip
    assert result.exit_code == 0, result.output
    return home


def kfw(home: Path, *args: str, env: dict[str, Any] | None = None) -> str:
    result = RUNNER.invoke(app, ["--home", str(home), *args], env=env)
    assert result.exit_code == 0, result.output
    return result.output


def _runs(home: Path) -> dict[str, dict[str, Any]]:
    return {
        p.parent.name: json.loads(p.read_text())
        for p in (home / "runs" / "pixels").glob("*/run.json")
    }


def _ablation(home: Path) -> tuple[Path, dict[str, Any]]:
    (folder,) = (home / "runs" / "pixels" / "ablations").iterdir()
    return folder, json.loads((folder / "ablation.json").read_text())


def test_table_is_the_paired_arithmetic_of_the_runs_and_a_rerun_refits_nothing(pixels: Path):
    out = kfw(pixels, *ABLATE, "--folds", "2", *SMALL, "--no-wandb")
    runs = _runs(pixels)
    assert len(runs) == 4  # base and no-batch_norm, two seeds each
    folder, data = _ablation(pixels)
    assert [r["variant"] for r in data["rows"]] == ["base", "no-batch_norm"]

    # recompute every number of the table from the per-fold scores in the run records
    def scores(variant: str) -> dict[tuple[int, int], float]:
        (row,) = [r for r in data["rows"] if r["variant"] == variant]
        out = {}
        for run_id in row["runs"]:
            r = runs[run_id]
            assert r["ablation"]["variant"] == variant and r["params"]["estimator__batch_norm"] == (variant == "base")  # fmt: skip
            assert r["label"] == f"ablate-scratch-mlp-{variant}-s{r['seed']}"
            out.update({(r["seed"], f["fold"]): f["score"] for f in r["fold_scores"]})
        return out

    base, off = scores("base"), scores("no-batch_norm")
    assert sorted(base) == sorted(off) == [(42, 0), (42, 1), (43, 0), (43, 1)]  # --folds 2
    d = np.array([off[k] - base[k] for k in sorted(base)])
    half = student_t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    row = data["rows"][1]
    assert row["n"] == 4
    assert abs(row["diff"] - d.mean()) < EXACT
    assert abs(row["ci_low"] - (d.mean() - half)) < EXACT
    assert abs(row["ci_high"] - (d.mean() + half)) < EXACT
    values = np.array(list(off.values()))
    assert abs(row["mean"] - values.mean()) < EXACT and abs(row["std"] - values.std(ddof=1)) < EXACT
    seconds = np.mean([runs[i]["seconds"] for i in row["runs"]])
    assert abs(row["seconds"] - seconds) < EXACT

    md = (folder / "ablation.md").read_text()
    assert data["command"] in md and "--folds 2" in data["command"]
    assert f"{row['diff']:+.5f} [{row['ci_low']:.5f}, {row['ci_high']:.5f}]" in md
    assert "paired by seed and fold" in md and "| no-batch_norm |" in out
    assert (folder / "ablation.png").read_bytes()[:4] == b"\x89PNG"
    # the first 2 of 5 folds: a fold hash of their own, so stacking never mixes these runs in
    assert all(r["folds"]["hash"].endswith("-first2") for r in runs.values())
    assert all(len(r["fold_scores"]) == 2 for r in runs.values())

    # a rerun fits nothing: same runs, same table
    again = kfw(pixels, *ABLATE, "--folds", "2", *SMALL, "--no-wandb")
    assert set(_runs(pixels)) == set(runs)
    assert _ablation(pixels)[1]["rows"] == data["rows"]
    assert "already run" in again

    # an interrupted ablation (one run missing) fits only what is missing
    deleted = row["runs"][1]
    shutil.rmtree(pixels / "runs" / "pixels" / deleted)
    kfw(pixels, *ABLATE, "--folds", "2", *SMALL, "--no-wandb")
    after = _runs(pixels)
    assert len(after) == 4
    # the three kept runs are untouched; the fourth is the refit (its id may equal the
    # deleted one's when the refit lands in the same second: ids are stamp + config key)
    assert all(after[i] == runs[i] for i in runs if i != deleted)
    (new_run,) = [r for i, r in after.items() if i not in runs or i == deleted]
    assert new_run["label"] == runs[deleted]["label"]
    # the same seed and folds: the refit reproduces the deleted run's scores
    assert new_run["fold_scores"][0]["score"] == runs[deleted]["fold_scores"][0]["score"]


def test_factorial_runs_every_combination(pixels: Path):
    args = ["ablate", "pixels", "-m", "scratch-mlp", "--toggle", "batch_norm,early_stopping"]
    kfw(pixels, *args, "--factorial", "--seeds", "1", "--folds", "2", *SMALL, "--no-wandb")
    _, data = _ablation(pixels)
    assert [r["variant"] for r in data["rows"]] == [
        "base",
        "no-batch_norm",
        "with-early_stopping",
        "no-batch_norm+with-early_stopping",
    ]
    assert len(_runs(pixels)) == 4
    assert data["rows"][3]["switched"] == ["batch_norm", "early_stopping"]
    assert all(r["n"] == 2 for r in data["rows"])
    one_at_a_time = ["--seeds", "1", "--folds", "2", *SMALL, "--no-wandb"]
    kfw(pixels, *args, *one_at_a_time)
    assert len(list((pixels / "runs" / "pixels" / "ablations").iterdir())) == 2
    assert len(_runs(pixels)) == 4  # its three variants were all among the factorial's runs


def test_an_unknown_toggle_is_one_line_and_writes_nothing(pixels: Path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--home", str(pixels), *ABLATE[:4], "--toggle", "batchnorm", "--no-wandb"])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert exc.value.code != 0 and out == "" and len(lines) == 1, err
    assert "'batchnorm' is not a boolean parameter of model 'scratch-mlp'" in lines[0]
    assert "batch_norm" in lines[0]  # the ones it has are listed
    assert not (pixels / "runs").exists()


def test_ablation_runs_share_a_wandb_group(pixels: Path, tmp_path: Path):
    from tests.kfw.pipeline.test_mirror import _env, read_back

    env = _env(tmp_path, WANDB_MODE="offline")
    kfw(pixels, *ABLATE[:-1], "1", "--folds", "2", *SMALL, env=env)
    _, data = _ablation(pixels)
    runs = list(_runs(pixels).values())
    assert len(runs) == 2 and all(r["group"] == data["group"] for r in runs)
    assert data["group"] == f"ablate-{data['id']}"
    logged = read_back(Path(runs[0]["wandb"]["dir"]))
    assert logged.run["run_group"] == data["group"]


def test_paired_interval_and_first_folds_edges(pixels: Path):
    mean, low, high = paired_interval(np.array([0.01, 0.03]))
    half = student_t.ppf(0.975, 1) * np.std([0.01, 0.03], ddof=1) / np.sqrt(2)
    assert abs(mean - 0.02) < EXACT and abs(high - low - 2 * half) < EXACT
    assert np.isnan(paired_interval(np.array([0.5]))[1])  # one pair: no interval
    from kfw.core.config import load_competition
    from kfw.pipeline.context import prepare

    ctx = prepare(load_competition("pixels", pixels), pixels, wandb=False)
    sub = first_folds(ctx.folds, 2)
    assert [s.fold for s in sub.splits()] == [0, 1] and sub.n_fits == 2
    full = {s.fold: s for s in ctx.folds.splits()}
    for s in sub.splits():  # the same training parts as the full file
        np.testing.assert_array_equal(s.train, full[s.fold].train)
    assert first_folds(ctx.folds, 5) is ctx.folds
    with pytest.raises(ConfigError, match="--folds must lie in 1..5"):
        first_folds(ctx.folds, 6)


def test_the_writeup_shows_the_ablation_and_keeps_its_runs_out_of_the_models(pixels: Path):
    kfw(pixels, "cv", "pixels", "-m", "scratch-mlp", *SMALL, "--no-wandb")
    kfw(pixels, *ABLATE[:-1], "1", "--folds", "2", *SMALL, "--no-wandb")
    _, data = _ablation(pixels)
    kfw(pixels, "writeup", "pixels", "--no-adversarial")
    md = (pixels / "reports" / "pixels" / "writeup.md").read_text()
    assert "### Ablation of scratch-mlp" in md and data["command"] in md
    assert "| no-batch_norm |" in md and "![Ablation" in md
    assert (pixels / "reports" / "pixels" / "ablation.png").is_file()
    models = md.split("## Models", 1)[1].split("## Bake-off", 1)[0]
    assert "ablate-" not in models  # the ablation's runs are in its table, not among the models
