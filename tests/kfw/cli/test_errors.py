"""``kfw errors``: the tables printed, the files written, and bad input as one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kfw.cli import main
from kfw.cli.app import app
from kfw.core.runstore import RunStore
from tests.synth import make_competition

ENV = {"KFW_THREADS": "1", "WANDB_MODE": "disabled"}
runner = CliRunner()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    home = tmp_path_factory.mktemp("cli-errors") / "home"
    make_competition(home, models=("logreg",))
    result = runner.invoke(app, ["--home", str(home), "cv", "synth"], env=ENV)
    assert result.exit_code == 0, result.output
    return home, RunStore(home, "synth").records()[0]["id"]


def test_errors_prints_the_tables_and_writes_the_section(run: tuple[Path, str]) -> None:
    home, run_id = run
    result = runner.invoke(
        app,
        ["--home", str(home), "errors", "synth", run_id, "--top", "4", "--by", "cat", "--by", "x0"],
        env=ENV,
    )
    assert result.exit_code == 0, result.output
    assert "worst rows of" in result.stdout and "roc_auc by cat" in result.stdout
    folder = home / "reports" / "synth" / "errors" / run_id
    assert {p.name for p in folder.iterdir()} == {
        "worst.csv",
        "segments-cat.csv",
        "segments-x0.csv",
        "errors.md",
    }
    text = (folder / "errors.md").read_text()
    assert "### By `cat`" in text and "### By `x0`" in text and "$" not in text
    assert len((folder / "worst.csv").read_text().splitlines()) == 5


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--by", "nope"], "--by 'nope': no such column in train"),
        (["--top", "0"], "--top must be at least 1"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    run: tuple[Path, str], capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    home, run_id = run
    shutil.rmtree(home / "reports", ignore_errors=True)
    with pytest.raises(SystemExit) as exc:
        main(["--home", str(home), "errors", "synth", run_id, *args])
    out, err = capsys.readouterr()
    assert exc.value.code == 1 and out == ""
    assert err.strip().splitlines() == [err.strip()] and expected in err
    assert not (home / "reports").exists()


def test_an_unknown_run_is_one_line(
    run: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    home, _ = run
    with pytest.raises(SystemExit) as exc:
        main(["--home", str(home), "errors", "synth", "nope"])
    _, err = capsys.readouterr()
    assert exc.value.code == 1 and "no run 'nope'" in err and len(err.strip().splitlines()) == 1
    assert not (home / "reports" / "synth" / "errors" / "nope").exists()
