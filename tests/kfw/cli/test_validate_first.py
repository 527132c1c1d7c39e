"""Every argument that can be checked without data is checked before anything is written.

A typo in a model name, a parameter key or type, a storage URL, a method or a metric name
costs one line and exit 1 (a usage error: exit 2), and leaves ``KFW_HOME`` as it was: no
open copy of the data materialised, no folds computed, no run, no study.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kfw.cli import main

BAD = {
    "unknown model": (["cv", "titanic", "--model", "no-such-model"], "unknown model 'no-such-model'"),
    "unknown parameter": (["cv", "titanic", "-m", "lgbm", "-p", "leaves=3"], "has no parameter 'leaves'"),
    "parameter type": (["cv", "titanic", "-m", "lgbm", "-p", "num_leaves='many'"], "parameter 'num_leaves' takes an int, got 'many'"),
    "float for an int": (["cv", "titanic", "-m", "lgbm", "-p", "num_leaves=31.5"], "takes an int, got 31.5"),
    "torch recipe type": (["cv", "titanic", "-m", "torch-mlp", "-p", "epochs='3'"], "parameter 'epochs' takes an int"),
    "scikit-learn constraint": (["cv", "titanic", "-m", "extratrees", "-p", "criterion='bogus'"], "criterion"),
    "param without a model": (["cv", "titanic", "-p", "num_leaves=3"], "--param applies to one model"),
    "bad duration": (["cv", "titanic", "--time-limit", "soon"], "soon"),
    "tuned but never tuned": (["cv", "titanic", "--tuned"], "no tuned parameters"),
    "audit: unknown model": (["audit", "titanic", "--model", "nope"], "unknown model 'nope'"),
    "tune: unknown model": (["tune", "titanic", "--model", "nope"], "unknown model 'nope'"),
    "tune: no search space": (["tune", "titanic", "--model", "scratch-knn"], "no search space"),
    "tune: bad storage": (["tune", "titanic", "--model", "lgbm", "--storage", "nonsense"], "not a database URL"),
    "bakeoff: unknown model": (["bakeoff", "titanic", "--model", "nope"], "unknown model 'nope'"),
    "stack: unknown run": (["stack", "titanic", "--run", "nope"], "no run 'nope' for titanic"),
    "ablate: unknown model": (["ablate", "titanic", "--model", "nope", "--toggle", "x"], "unknown model 'nope'"),
    "curves: unknown model": (["curves", "titanic", "--model", "nope"], "unknown model 'nope'"),
    "curves: bad size": (["curves", "titanic", "-m", "lgbm", "--sizes", "0.5,1.2"], "1.2 is not a fraction in (0, 1]"),
    "curves: unknown parameter": (["curves", "titanic", "-m", "lgbm", "--param", "leaves=3,7"], "has no parameter 'leaves'"),
    "early-stopping mode": (["cv", "titanic", "--early-stopping", "nope"], "'nope' is not one of"),
    "unknown preset": (["cv", "titanic", "--preset", "gpu"], "titanic has no preset 'gpu' (it has: default)"),
    "audit: unknown preset": (["audit", "titanic", "--preset", "gpu"], "has no preset 'gpu'"),
    "executor: unknown kind": (["cv", "titanic", "--executor", "ray://h:1"], "expected local, local:N or dask://HOST:PORT"),
    "tune: bad executor": (["tune", "titanic", "--model", "lgbm", "--executor", "local:0"], "positive number of processes"),
    "bakeoff: bad executor": (["bakeoff", "titanic", "--executor", "dask://nohost"], "a Dask scheduler is dask://HOST:PORT"),
    "new: unknown metric": (["new", "some-comp", "--download", "--metric", "nope"], "unknown metric 'nope'"),
}  # fmt: skip
USAGE = {
    "stack: unknown method": ["stack", "titanic", "--method", "nope"],
    "stack: unknown level-2 model": ["stack", "titanic", "--method", "level2", "--level2", "nope"],
    "cv: extra rows that do not exist": ["cv", "titanic", "--extra-train", "/no/such.csv"],
}


def _files(home: Path) -> list[str]:
    return sorted(str(p.relative_to(home)) for p in home.rglob("*"))


@pytest.fixture
def empty_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    for key in ("KFW_DEBUG", "KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("KFW_HOME", str(home))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-kaggle"))
    return home


def _run(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    return exc.value.code, capsys.readouterr().err


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_argument_is_one_line_and_writes_nothing(
    case: str, empty_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args, says = BAD[case]
    code, err = _run(capsys, args)
    lines = err.strip().splitlines()
    assert code == 1, err
    assert len(lines) == 1 and lines[0].startswith("kfw: error: "), err
    assert says in lines[0]
    assert _files(empty_home) == []


@pytest.mark.parametrize("case", list(USAGE))
def test_a_usage_error_exits_2_and_writes_nothing(
    case: str, empty_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _run(capsys, USAGE[case])
    assert code == 2, err
    assert "Traceback" not in err
    assert _files(empty_home) == []


def test_the_checks_do_not_refuse_what_is_valid(
    empty_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the same path with a good model runs: the data is materialised and a run is written
    code, err = _run(capsys, ["cv", "titanic", "-m", "logreg", "-p", "C=0.5", "--no-blend"])
    assert code == 0, err
    files = _files(empty_home)
    assert any(f.startswith("data/titanic/folds/") for f in files)
    assert any(f.endswith("run.json") for f in files)
