"""The command line: what each command prints and writes, and how a failure reads.

Three ways in, from cheap to faithful: ``CliRunner`` on the Typer app (output and files),
:func:`kfw.cli.main` in-process (the one-line error rendering), and a real ``kfw`` subprocess
(exit code, stderr exactly one line, no traceback, nothing heavy imported at start-up).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from kfw.cli import main
from kfw.cli.app import app
from kfw.core.config import load_competition
from kfw.kaggle.data import import_data
from kfw.kaggle.submit import validate_submission
from tests.synth import frames, make_competition, write_files

KFW = Path(sys.executable).with_name("kfw")
RUN_ID = re.compile(r"\b\d{8}-\d{6}-[\w-]+\b")
HEAVY = (
    "pandas",
    "sklearn",
    "lightgbm",
    "xgboost",
    "catboost",
    "torch",
    "wandb",
    "optuna",
    "kaggle",
    "polars",
    "matplotlib",
)
runner = CliRunner()


def _invoke(home: Path, *args: str):
    result = runner.invoke(app, ["--home", str(home), *args])
    return result


def _kfw(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "KFW_DEBUG")}
    full.update(KFW_HOME=str(home), KFW_THREADS="1", WANDB_MODE="disabled", **env)
    return subprocess.run([str(KFW), *args], capture_output=True, text=True, env=full, timeout=120)


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``kfw ARGS`` in this process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def _one_error_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert lines[0].startswith("kfw: error: ")
    return lines[0]


def _runs(home: Path) -> dict[str, dict]:
    root = home / "runs" / "synth"
    return {p.parent.name: json.loads(p.read_text()) for p in root.glob("*/run.json")}


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@dataclass
class Trained:
    home: Path
    stdout: str


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """A generated binary competition after one ``kfw cv`` of a two-model roster (+ blend)."""
    home = tmp_path_factory.mktemp("trained") / "home"
    make_competition(home, models=("logreg", "lgbm"))
    result = runner.invoke(
        app,
        ["--home", str(home), "cv", "synth"],
        env={"KFW_THREADS": "1", "WANDB_MODE": "disabled"},
    )
    assert result.exit_code == 0, result.output
    return Trained(home, result.stdout)


# ---------------------------------------------------------------------------------------------
# the happy path


def test_cv_writes_runs_and_ends_with_the_cv_line(trained: Trained) -> None:
    last = trained.stdout.strip().splitlines()[-1]
    assert last.startswith("CV roc_auc ")
    run_id = RUN_ID.findall(last)[-1]
    runs = _runs(trained.home)
    assert run_id in runs and runs[run_id]["kind"] == "ensemble"
    assert sorted(r["label"] for r in runs.values()) == ["blend", "lgbm", "logreg"]
    for rid in runs:
        folder = trained.home / "runs" / "synth" / rid
        assert {"oof.parquet", "test.parquet", "submission.csv"} <= {
            p.name for p in folder.iterdir()
        }
    assert not list((trained.home / "runs" / "synth").glob(".staging-*"))


def test_runs_lists_them_best_first(trained: Trained) -> None:
    result = _invoke(trained.home, "runs", "synth")
    assert result.exit_code == 0, result.output
    shown = [
        RUN_ID.search(line).group() for line in result.stdout.splitlines() if RUN_ID.search(line)
    ]
    runs = _runs(trained.home)
    assert sorted(shown) == sorted(runs)
    scores = [runs[rid]["score"] for rid in shown]
    assert scores == sorted(scores, reverse=True)  # roc_auc: greater is better


def test_runs_without_runs_says_how_to_make_one(home: Path) -> None:
    make_competition(home, write_data=False)
    result = _invoke(home, "runs", "synth")
    assert result.exit_code == 0
    assert result.stdout.strip() == "no runs for synth yet: `kfw cv synth`"


def test_submit_dry_run_writes_a_valid_file(trained: Trained, tmp_path: Path) -> None:
    out = tmp_path / "out" / "submission.csv"
    result = _invoke(trained.home, "submit", "synth", "--dry-run", "--output", str(out))
    assert result.exit_code == 0, result.output
    chose, *_, written = result.stdout.strip().splitlines()
    assert chose.startswith("chose ") and written.startswith(f"{out}: 80 rows, valid · run ")
    sub = pd.read_csv(out)
    sample = pd.read_csv(trained.home / "data" / "synth" / "sample_submission.csv")
    assert sub.columns.tolist() == ["Id", "target"]
    assert sub["Id"].tolist() == sample["Id"].tolist()
    assert set(sub["target"]) <= {0, 1}
    spec = load_competition("synth", trained.home)
    validate_submission(spec, sub, sample, [0, 1])
    chosen = RUN_ID.search(chose).group()
    assert f"run {chosen} " in written
    assert [p.name for p in out.parent.iterdir()] == ["submission.csv"]


def test_submit_without_credentials_is_refused(
    trained: Trained,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # a home of its own: real credentials on this machine must not turn this into a submission
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "user" / ".kaggle"))
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    code, out, err = _main(capsys, "--home", str(trained.home), "submit", "synth")
    assert code == 1 and out == ""
    line = _one_error_line(err)
    assert "no Kaggle credentials" in line and "--dry-run" in line


def test_folds_prints_the_hash_the_runs_recorded(trained: Trained) -> None:
    result = _invoke(trained.home, "folds", "synth")
    assert result.exit_code == 0, result.output
    last = result.stdout.strip().splitlines()[-1]
    match = re.search(r"stratified-k4-s7\.csv \(read\), hash ([0-9a-f]{12})$", last)
    assert match, last
    assert {r["folds"]["hash"] for r in _runs(trained.home).values()} == {match.group(1)}


def test_models_lists_the_registry() -> None:
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    names = {line.split()[1] for line in result.stdout.splitlines() if line.startswith("│")}
    expected = {
        "lgbm",
        "xgb",
        "catboost",
        "ridge",
        "lasso",
        "elasticnet",
        "logreg",
        "rf",
        "extratrees",
    }
    assert expected <= names


def test_data_import_and_show(home: Path, tmp_path: Path) -> None:
    make_competition(home, write_data=False)
    src = tmp_path / "src"
    write_files(src, *frames(n_train=100, n_test=30))
    result = _invoke(home, "data", "import", "synth", str(src))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("imported: 100 train rows, 30 test rows in ")
    result = _invoke(home, "data", "show", "synth")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("synth: source import, 100 train x 6 columns, 30 test rows")


def test_cv_twice_gives_identical_predictions(home: Path) -> None:
    make_competition(home, models=("lgbm",), n_train=160, n_test=40)
    ids = []
    for _ in range(2):
        result = _invoke(home, "cv", "synth")
        assert result.exit_code == 0, result.output
        ids.append(RUN_ID.findall(result.stdout.strip().splitlines()[-1])[-1])
    assert ids[0] != ids[1]
    root = home / "runs" / "synth"
    for name in ("oof.parquet", "test.parquet"):
        first, second = (pd.read_parquet(root / rid / name) for rid in ids)
        pd.testing.assert_frame_equal(first, second, check_exact=True)


# ---------------------------------------------------------------------------------------------
# failures: one line, exit 1, nothing written


def test_an_unknown_competition_is_one_line(home: Path) -> None:
    proc = _kfw(home, "cv", "nope")
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert _one_error_line(proc.stderr).startswith(
        "kfw: error: unknown competition 'nope' (known: "
    )


def test_usage_errors_exit_2_with_click_s_message(home: Path) -> None:
    proc = _kfw(home, "frobnicate")
    assert proc.returncode == 2
    assert "No such command 'frobnicate'" in proc.stderr and "Traceback" not in proc.stderr
    proc = _kfw(home, "cv", "synth", "--seed", "x")
    assert proc.returncode == 2 and "'--seed'" in proc.stderr


def test_debug_shows_the_traceback(home: Path) -> None:
    proc = _kfw(home, "--debug", "cv", "nope")
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("kfw: error: unknown competition 'nope'")


def test_kfw_debug_in_the_environment_shows_the_traceback(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KFW_DEBUG", "1")
    code, _, err = _main(capsys, "cv", "nope")
    assert code == 1
    assert "Traceback" in err and "load_competition" in err


def test_a_bad_zip_is_one_line_and_keeps_the_data(home: Path, tmp_path: Path) -> None:
    make_competition(home, write_data=False)
    good = tmp_path / "good"
    write_files(good, *frames(n_train=100, n_test=30))
    dest = import_data(load_competition("synth", home), home, good)
    before = _tree(dest)
    bad_src = tmp_path / "bad"
    train, test = frames(n_train=100, n_test=30, seed=1)
    write_files(bad_src, train.drop(columns=["target"]), test, target="x0")
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        for path in bad_src.iterdir():
            zf.write(path, path.name)
    proc = _kfw(home, "data", "import", "synth", str(bad))
    assert proc.returncode == 1
    assert proc.stdout == ""
    line = _one_error_line(proc.stderr)
    assert line == f"kfw: error: {bad}/train.csv: target column 'target' is missing"
    assert _tree(dest) == before
    assert [p.name for p in (home / "data").iterdir()] == ["synth"]


def test_an_unknown_param_is_refused_before_any_run(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_competition(home, models=("logreg",))
    code, out, err = _main(capsys, "cv", "synth", "-m", "logreg", "--param", "nonexistent=1")
    assert code == 1 and out == ""
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("kfw: error: model 'logreg' has no parameter 'nonexistent' (it takes: ")
    assert not _runs(home)


def test_a_bad_roster_member_fails_before_any_run(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_competition(home, models=("logreg", "ridge"))  # ridge does not do binary
    code, _, err = _main(capsys, "cv", "synth")
    assert code == 1
    assert err.strip().splitlines()[-1] == (
        "kfw: error: model 'ridge' does not fit a binary task (it serves: regression)"
    )
    assert not _runs(home)  # logreg's run is not left behind by a command that failed


def test_cv_without_data_says_how_to_get_it(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_competition(home, write_data=False)
    code, out, err = _main(capsys, "cv", "synth")
    assert code == 1 and out == ""
    line = _one_error_line(err)
    assert "run `kfw data download synth` or `kfw data import synth PATH`" in line
    assert not (home / "runs").exists()


def test_a_message_with_brackets_is_printed_verbatim(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # rich markup must not eat "[/x]" (nor crash on it, which printed a traceback)
    make_competition(home, write_data=False, extra_toml='unseen_categories = "error"\n')
    train, test = frames(n_train=100, n_test=30)
    test.loc[0, "cat"] = "[/x]"
    write_files(tmp_path / "src", train, test)
    code, _, err = _main(capsys, "data", "import", "synth", str(tmp_path / "src"))
    assert code == 1
    line = _one_error_line(err)
    assert line.endswith("values never seen in train.csv: 'cat' '[/x]' (1 row)")


# ---------------------------------------------------------------------------------------------
# start-up


def test_the_cli_imports_nothing_heavy() -> None:
    code = (
        "import sys; import kfw.cli, kfw.cli.app; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {set(HEAVY)!r}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert proc.stdout.strip() == "[]"


def test_help_exits_zero(home: Path) -> None:
    proc = _kfw(home, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage: kfw ")
    for command in ("cv", "data", "folds", "models", "runs", "submit"):
        assert re.search(rf"^\s+{command}\b", proc.stdout, re.MULTILINE), command


# ---------------------------------------------------------------------------------------------
# honest early stopping and selection under noise


def test_runs_shows_each_run_against_the_best_with_a_paired_interval(trained: Trained) -> None:
    result = _invoke(trained.home, "runs", "synth")
    assert result.exit_code == 0, result.output
    rows = {
        RUN_ID.search(line).group(): line
        for line in result.stdout.splitlines()
        if RUN_ID.search(line)
    }
    runs = _runs(trained.home)
    (best,) = [rid for rid, line in rows.items() if " best " in line]
    assert runs[best]["score"] == max(r["score"] for r in runs.values())
    for rid, line in rows.items():
        if rid != best:  # the difference from the best and its 95% interval
            delta = runs[rid]["score"] - runs[best]["score"]
            interval = re.escape(f"{delta:+.5f}") + r" \[[-+]\d\.\d{5}, [-+]\d\.\d{5}\]"
            assert re.search(interval, line), line
    assert "within noise of the best run" in result.stdout


def test_submit_explains_its_choice(trained: Trained, tmp_path: Path) -> None:
    result = _invoke(
        trained.home, "submit", "synth", "--dry-run", "--output", str(tmp_path / "s.csv")
    )
    assert result.exit_code == 0, result.output
    chose = result.stdout.splitlines()[0]
    run_id = RUN_ID.search(chose).group()
    assert _runs(trained.home)[run_id]["kind"] == "ensemble"  # within noise of the best: the blend
    assert "ensemble" in chose


def test_submit_refuses_a_run_of_another_fold_file(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_competition(home, models=("logreg",))
    assert _invoke(home, "cv", "synth", "--no-wandb").exit_code == 0
    (old,) = _runs(home)
    spec = home / "competitions" / "synth" / "competition.toml"
    spec.write_text(spec.read_text().replace("seed = 7", "seed = 8"))  # new fold file
    code, out, err = _main(capsys, "--home", str(home), "submit", "synth", "--run", old,
                           "--dry-run", "--output", str(tmp_path / "s.csv"))  # fmt: skip
    assert code == 1 and out == ""
    line = _one_error_line(err)
    assert f"run {old} was cross-validated on other folds (stratified-k4-s7" in line
    assert "rerun it with `kfw cv synth --model logreg`" in line
    assert not (tmp_path / "s.csv").exists()


def test_folds_too_small_for_early_stopping_fail_before_any_run(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_competition(home, models=("logreg", "lgbm"), n_train=40)
    code, out, err = _main(capsys, "--home", str(home), "cv", "synth")
    assert code == 1 and out == "" and "Traceback" not in err
    line = err.strip().splitlines()[-1]  # after the progress line that computed the folds
    assert line.startswith("kfw: error: fold 0: its training part has 30 rows, too few to hold out")
    assert not _runs(home)


def test_stopping_on_the_scored_folds_is_labelled_and_never_submitted_by_default(
    home: Path, tmp_path: Path
) -> None:
    make_competition(home, models=("lgbm",))
    honest = _invoke(home, "cv", "synth", "--no-wandb")
    peeked = _invoke(home, "cv", "synth", "--no-wandb", "--early-stopping", "scored-fold")
    assert honest.exit_code == 0 and peeked.exit_code == 0, peeked.output
    assert "OPTIMISTIC: early stopping on the scored folds" not in honest.stdout
    assert "OPTIMISTIC: early stopping on the scored folds" in peeked.stdout
    runs = sorted(_runs(home).values(), key=lambda r: r["optimistic"] != [])
    assert [r["early_stopping"] for r in runs] == ["inner", "scored-fold"]
    assert runs[1]["optimistic"] == ["early stopping on the scored folds"]
    result = _invoke(home, "submit", "synth", "--dry-run", "--output", str(tmp_path / "s.csv"))
    assert result.exit_code == 0, result.output
    assert RUN_ID.search(result.stdout.splitlines()[0]).group() == runs[0]["id"]
    assert f"left out, optimistic CV: {runs[1]['id']}" in result.stdout
    bad = _invoke(home, "cv", "synth", "--early-stopping", "sometimes")
    assert bad.exit_code != 0 and "'sometimes' is not one of 'inner'" in str(bad.exception)


@pytest.mark.parametrize(
    ("args", "passive"),
    [
        (["lm", "info", "--preset", "cpu"], False),
        (["--home", "lm", "lm", "info"], False),  # a home folder named like a command
        (["--home", "rl", "--help"], True),
        (["--help"], True),
    ],
)
def test_torch_only_commands_keep_openmp_spinning(
    monkeypatch: pytest.MonkeyPatch, args: list[str], passive: bool
) -> None:
    # LightGBM and XGBoost want OMP_WAIT_POLICY=PASSIVE beside busy processes; the torch-only
    # groups (lm, rl, repro) run many small kernels that each wake sleeping threads
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 0
    assert ("OMP_WAIT_POLICY" in os.environ) is passive
    if passive:
        assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
