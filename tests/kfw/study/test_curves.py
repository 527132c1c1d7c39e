"""Learning and validation curves on a generated competition whose shape is known.

The log-odds are ``2 x0 + 4 (x1^2 - 1) + 3 sin(2 x2)``, plus logistic noise. A random forest
with no depth limit fits its training rows perfectly and closes the gap to validation as rows
are added: high variance, and more data helps (the same reading on four data seeds when this
was written). A logistic regression sees only the linear part (``x1^2`` is symmetric, the sine
mostly so): training and validation meet low, high bias.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from kfw.cli import main
from kfw.cli.app import app
from kfw.core.config import load_competition
from kfw.core.folds import Split
from kfw.errors import ConfigError
from kfw.pipeline.context import Context, prepare
from kfw.study.curves import (
    SubsampledFolds,
    draw,
    parse_sizes,
    parse_values,
    plan,
    subsample,
    subsampled,
)
from tests.synth import make_competition, write_files

RUNNER = CliRunner()
N_TRAIN, N_TEST = 1000, 40
SIZES = "0.1,0.3,1"
FOREST = {"n_estimators": 30}  # no depth limit, one-row leaves: high variance
SAME = 1e-12


def bowl(n: int, seed: int = 0) -> pd.DataFrame:
    """A linear part a linear model can see, curved parts it cannot, logistic noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    logit = 2 * x[:, 0] + 4 * (x[:, 1] ** 2 - 1) + 3 * np.sin(2 * x[:, 2])
    frame = pd.DataFrame({"Id": np.arange(1, n + 1), "x0": x[:, 0], "x1": x[:, 1], "x2": x[:, 2]})
    frame["cat"] = rng.choice(["a", "b", "c", "d"], size=n)
    frame["target"] = (logit + rng.logistic(size=n) > 0).astype(int)
    return frame


def bowl_competition(home: Path, n_train: int = N_TRAIN) -> None:
    data = make_competition(home, slug="bowl", models=("rf", "logreg"), write_data=False)
    frame = bowl(n_train + N_TEST)
    test = frame.iloc[n_train:].drop(columns=["target"]).reset_index(drop=True)
    write_files(data, frame.iloc[:n_train].reset_index(drop=True), test)


@pytest.fixture(scope="module")
def bowl_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("curves") / "home"
    bowl_competition(home)
    return home


@pytest.fixture(scope="module")
def ctx(bowl_home: Path) -> Context:
    return prepare(load_competition("bowl", bowl_home), bowl_home, wandb=False)


def _learning(ctx: Context, model: str, overrides: dict[str, Any] | None = None) -> Any:
    return draw(ctx, plan(ctx.spec, model, sizes=SIZES, overrides=overrides), threads=1)


def test_a_high_variance_model_closes_its_gap_with_data_and_is_read_as_such(ctx: Context):
    curves = _learning(ctx, "rf", FOREST)
    train = [p.train_mean for p in curves.points]
    valid = [p.valid_mean for p in curves.points]
    gaps = [t - v for t, v in zip(train, valid, strict=True)]
    assert min(train) > 0.999  # one-row leaves: the training rows are fitted perfectly
    assert valid == sorted(valid)  # validation climbs with data ...
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < gaps[0] - 0.03  # ... the gap closes
    # 0.1, 0.3 and 1 of 750 rows (rounded per class)
    assert np.allclose([p.n_train for p in curves.points], [75, 225, 750], atol=1)
    assert curves.verdict.startswith("high variance, more data would help at size 1")
    assert curves.points[-1].reading == "high variance"


def test_a_linear_model_on_a_curved_target_is_high_bias(ctx: Context):
    curves = _learning(ctx, "logreg")
    last = curves.points[-1]
    assert abs(last.train_mean - last.valid_mean) < 0.05  # they meet ...
    assert last.valid_mean < 0.7  # ... low
    assert curves.verdict.startswith("high bias at size 1")
    assert "more capacity or better features" in curves.verdict


def test_the_files_hold_the_numbers_and_a_rerun_gives_the_same(ctx: Context, bowl_home: Path):
    first = _learning(ctx, "rf", FOREST)
    again = _learning(ctx, "rf", FOREST)
    assert first.folder != again.folder  # each curve has its own folder
    assert first.folder.parent == bowl_home / "reports" / "bowl" / "curves"
    assert first.folder.name.endswith("-rf")
    for folder in (first.folder, again.folder):
        assert sorted(p.name for p in folder.iterdir()) == ["curves.csv", "curves.json", "curves.png"]  # fmt: skip
    a = json.loads((first.folder / "curves.json").read_text())
    b = json.loads((again.folder / "curves.json").read_text())
    assert a["points"] == b["points"] and a["verdict"] == b["verdict"]
    assert [p["x"] for p in a["points"]] == [0.1, 0.3, 1.0]
    for p in a["points"]:  # mean and sample sd over the 4 folds
        assert len(p["train"]) == len(p["valid"]) == 4
        assert abs(p["valid_mean"] - np.mean(p["valid"])) < SAME
        assert abs(p["valid_std"] - np.std(p["valid"], ddof=1)) < SAME
    assert a["command"] == "kfw curves bowl --model rf --sizes 0.1,0.3,1 --set n_estimators=30"
    csv = pd.read_csv(first.folder / "curves.csv")
    assert list(csv.columns) == ["size", "n_train", "train_mean", "train_std", "valid_mean", "valid_std", "reading"]  # fmt: skip
    assert np.allclose(csv["valid_mean"], [p["valid_mean"] for p in a["points"]])


def test_the_validation_curve_varies_one_parameter(ctx: Context):
    chosen = plan(ctx.spec, "rf", param="max_depth=1,8", overrides=FOREST)
    curves = draw(ctx, chosen, threads=1)
    stump, deep = curves.points
    assert (stump.x, deep.x) == (1, 8)
    assert stump.train_mean < deep.train_mean  # depth buys training fit
    assert stump.reading == "high bias"
    assert "at max_depth=8, the best validation score" in curves.verdict
    data = json.loads((curves.folder / "curves.json").read_text())
    assert data["kind"] == "validation" and data["param"] == "max_depth"


def test_subsamples_are_nested_stratified_and_seeded(ctx: Context):
    y = np.asarray(ctx.design.y)
    split = next(ctx.folds.splits())
    prior = y[split.train].mean()
    kept = [subsample(split.train, s, 42, split, y) for s in (0.1, 0.3, 0.7, 1.0)]
    for small, large in itertools.pairwise(kept):
        assert np.isin(small, large).all()  # a smaller size keeps a subset of a larger one
    assert np.array_equal(kept[-1], split.train)
    assert set(kept[0]) <= set(split.train)
    assert abs(y[kept[0]].mean() - prior) < 0.01  # the class balance is kept
    assert np.array_equal(kept[1], subsample(split.train, 0.3, 42, split, y))
    other = Split(split.repeat, split.fold + 1, split.train, split.valid)
    assert not np.array_equal(kept[1], subsample(split.train, 0.3, 42, other, y))
    folds = subsampled(ctx.folds, 0.3, 42, y)
    assert isinstance(folds, SubsampledFolds)
    for full, sub in zip(ctx.folds.splits(), folds.splits(), strict=True):
        assert np.array_equal(full.valid, sub.valid)  # the validation part is fixed
        assert np.isin(sub.train, full.train).all()


def test_curves_work_for_regression_and_multiclass(home: Path):
    for task in ("regression", "multiclass"):
        make_competition(home, slug=f"s-{task}", task=task, models=("ridge" if task == "regression" else "logreg",), n_train=160, n_test=20)  # fmt: skip
        spec = load_competition(f"s-{task}", home)
        ctx = prepare(spec, home, wandb=False)
        curves = draw(ctx, plan(spec, spec.models[0].label, sizes="0.5,1"), threads=1)
        assert len(curves.points) == 2 and curves.verdict
        assert all(np.isfinite(p.train_mean) and np.isfinite(p.valid_mean) for p in curves.points)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("0.1,abc", "fractions in (0, 1]"),
        ("0,0.5", "0 is not a fraction in (0, 1]"),
        ("0.5,1.5", "1.5 is not a fraction"),
        ("1", "at least two sizes"),
        ("0.5,0.5", "repeats a size"),
    ],
)
def test_bad_sizes_are_refused(text: str, says: str):
    with pytest.raises(ConfigError, match=says.replace("(", r"\(").replace(")", r"\)")):
        parse_sizes(text)


def test_parameter_values_are_read_as_toml():
    assert parse_values("max_depth=2,4,8") == ("max_depth", [2, 4, 8])
    assert parse_values("criterion=gini,entropy") == ("criterion", ["gini", "entropy"])
    assert parse_values('max_features=["sqrt", 0.5]') == ("max_features", ["sqrt", 0.5])
    with pytest.raises(ConfigError, match="at least two values"):
        parse_values("max_depth=3")


# ---------------------------------------------------------------------------------------------
# the command


def _files(home: Path) -> list[str]:
    return sorted(str(p.relative_to(home)) for p in home.rglob("*"))


def _run(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    return exc.value.code, capsys.readouterr().err


BAD = {
    "unparsable size": (["--sizes", "0.1,x"], "--sizes takes fractions in (0, 1]"),
    "size above one": (["--sizes", "0.5,2"], "--sizes: 2 is not a fraction in (0, 1]"),
    "unknown parameter": (["--param", "leaves=1,2"], "has no parameter 'leaves'"),
    "wrong value type": (["--param", "max_depth='a','b'"], "parameter 'max_depth'"),
    "both curves": (["--sizes", "0.5,1", "--param", "max_depth=1,2"], "one curve at a time"),
    "unknown model": (["--sizes", "0.5,1", "--model", "nope"], "unknown model 'nope'"),
    # 300 rows per training part: 0.001 keeps no row of either class
    "a class left empty": (["--sizes", "0.001,1"], "--sizes 0.001 leaves class 0 out of fold 0"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_argument_is_one_line_exit_1_and_writes_nothing(
    case: str, home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("KFW_DEBUG", raising=False)
    bowl_competition(home, n_train=400)
    prepare(load_competition("bowl", home), home, wandb=False)  # the folds exist already
    before = _files(home)
    args, says = BAD[case]
    model = [] if "--model" in args else ["--model", "rf"]
    code, err = _run(capsys, ["curves", "bowl", *model, *args])
    lines = err.strip().splitlines()
    assert code == 1, err
    assert len(lines) == 1 and lines[0].startswith("kfw: error: "), err
    assert says in lines[0]
    assert _files(home) == before


def test_a_bad_argument_is_refused_before_the_data_is_read(home: Path):
    bowl_competition(home, n_train=400)
    before = _files(home)
    spec = load_competition("bowl", home)
    for kwargs in ({"sizes": "0,1"}, {"param": "leaves=1,2"}, {"param": "max_depth=1,2", "sizes": "0.5,1"}):  # fmt: skip
        with pytest.raises(ConfigError):
            plan(spec, "rf", **kwargs)
    assert _files(home) == before  # no folds computed, nothing read into an open copy


def test_the_command_prints_the_table_and_ends_with_the_verdict(home: Path):
    bowl_competition(home, n_train=400)
    args = ["curves", "bowl", "-m", "rf", "--sizes", "0.3,1", "--set", "n_estimators=10"]
    result = RUNNER.invoke(app, ["--home", str(home), *args])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith(("high variance", "high bias", "neither"))
    assert "rows fitted" in result.output and "JSON, CSV and chart in" in result.output
    (folder,) = (home / "reports" / "bowl" / "curves").iterdir()
    assert (folder / "curves.png").stat().st_size > 0
