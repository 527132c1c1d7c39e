"""``kfw runs``: the table with leaderboard scores, ``kfw runs diff A B``, ``--plot``."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kfw.cli.app import app
from kfw.errors import KfwError
from tests.synth import make_competition

RUN_ID = re.compile(r"\b\d{8}-\d{6}-[\w-]+\b")
PNG = b"\x89PNG\r\n\x1a\n"
runner = CliRunner()


@dataclass
class Store:
    home: Path
    runs: dict[str, dict[str, Any]]  # synth's runs by label: logreg, lgbm, blend
    other: dict[str, Any]  # the one run of a second competition (regression, other folds)


def _invoke(home: Path, *args: str):
    return runner.invoke(
        app, ["--home", str(home), *args], env={"KFW_THREADS": "1", "WANDB_MODE": "disabled"}
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    home = tmp_path_factory.mktemp("runs") / "home"
    make_competition(home, models=("logreg", "lgbm"))
    make_competition(home, slug="other", task="regression", models=("ridge",))
    for comp in ("synth", "other"):
        result = _invoke(home, "cv", comp)
        assert result.exit_code == 0, result.output

    def records(comp: str) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in (home / "runs" / comp).glob("*/run.json")]

    return Store(home, {r["label"]: r for r in records("synth")}, records("other")[0])


def _submissions(home: Path, entries: list[dict[str, Any]] | str) -> Path:
    path = home / "submissions" / "synth" / "submissions.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(entries if isinstance(entries, str) else json.dumps(entries))
    return path


@pytest.fixture
def submitted(store: Store):
    """Two scored submissions of lgbm (strings, as the Kaggle API reports), one pending."""
    lgbm, blend = store.runs["lgbm"]["id"], store.runs["blend"]["id"]
    path = _submissions(
        store.home,
        [
            {"run": lgbm, "public": "0.70100", "private": None, "submitted_at": "2025-01-01T10:00:00"},
            {"run": lgbm, "public": 0.75, "private": 0.74, "submitted_at": "2025-01-02T10:00:00"},
            {"run": blend, "public": None, "private": None, "submitted_at": "2025-01-03T10:00:00"},
        ],
    )  # fmt: skip
    yield path
    path.unlink()


def _rows(stdout: str) -> dict[str, list[str]]:
    """Table cells by run id."""
    rows = {}
    for line in stdout.splitlines():
        match = RUN_ID.search(line)
        if match:
            rows[match.group()] = [c.strip() for c in line.strip("│ \n").split("│")]
    return rows


# ---------------------------------------------------------------------------------------------
# the table


def test_runs_shows_each_run_best_first_with_model_time_hash_and_lb(
    store: Store, submitted: Path
) -> None:
    result = _invoke(store.home, "runs", "synth")
    assert result.exit_code == 0, result.output
    header = next(line for line in result.stdout.splitlines() if "vs best" in line)
    for column in ("run", "model", "roc_auc ± SE", "folds mean ± std", "time", "LB public", "W&B"):
        assert column in header
    rows = _rows(result.stdout)
    assert list(rows) == sorted(rows, key=lambda i: -next(r["score"] for r in store.runs.values() if r["id"] == i))  # fmt: skip
    lgbm, logreg, blend = (store.runs[k] for k in ("lgbm", "logreg", "blend"))
    cells = rows[lgbm["id"]]
    assert cells[1] == "lgbm"
    assert cells[2] == f"{lgbm['score']:.5f} ± {lgbm['se']:.5f}"
    assert cells[5] == f"{lgbm['mean']:.5f} ± {lgbm['std']:.5f}"
    assert cells[6] == f"{lgbm['seconds']:.1f} s"
    assert cells[7] == "0.75000"  # the best public score of its two submissions
    assert cells[8] == "-"  # W&B was disabled
    assert rows[logreg["id"]][7] == "-"  # never submitted
    assert rows[blend["id"]][7] == "-"  # submitted, not scored yet
    assert rows[blend["id"]][1] == "blend of 2"


def test_a_damaged_submissions_file_is_named(store: Store) -> None:
    path = _submissions(store.home, "{not json")
    try:
        result = _invoke(store.home, "runs", "synth")
    finally:
        path.unlink()
    assert isinstance(result.exception, KfwError)
    assert str(result.exception).startswith(f"{path}: not valid JSON")


def test_runs_refuses_stray_arguments(store: Store) -> None:
    result = _invoke(store.home, "runs", "synth", "extra")
    assert result.exit_code == 2
    assert "did you mean `kfw runs diff`?" in result.output


# ---------------------------------------------------------------------------------------------
# diff


def test_diff_shows_parameters_and_paired_fold_scores(store: Store, submitted: Path) -> None:
    a, b = store.runs["logreg"], store.runs["lgbm"]
    # unique parts of the ids are enough
    result = _invoke(store.home, "runs", "diff", f"logreg-{a['id'].rsplit('-', 1)[1]}", "lgbm")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert a["id"] in out and b["id"] in out
    rows = {
        line.strip("│ ").split("│")[0].strip(): [c.strip() for c in line.strip("│ \n").split("│")]
        for line in out.splitlines()
        if line.startswith("│")
    }
    assert rows["model"][1:3] == ["logreg", "lgbm"]
    assert rows["params.C"][1:3] == ["1.0", "-"]
    assert rows["params.num_leaves"][1:3] == ["-", "7"]
    assert "folds.hash" not in rows and "data.hash" not in rows  # equal: not shown
    assert rows["CV"][1:] == [f"{a['score']:.5f}", f"{b['score']:.5f}", f"{b['score'] - a['score']:+.5f}"]  # fmt: skip
    for fa, fb in zip(a["fold_scores"], b["fold_scores"], strict=True):
        assert rows[f"fold r0 f{fa['fold']}"][3] == f"{fb['score'] - fa['score']:+.5f}"
    assert rows["LB public"][1:3] == ["-", "0.75000"]
    wins = sum(fb["score"] > fa["score"] for fa, fb in zip(a["fold_scores"], b["fold_scores"], strict=True))  # fmt: skip
    better = "B" if b["score"] > a["score"] else "A"
    assert out.strip().splitlines()[-1] == (
        f"{better} is better on the CV roc_auc; B beats A on {wins} of 4 folds "
        f"(same fold file {a['folds']['hash']})"
    )


def test_diff_across_competitions_does_not_pair_folds(store: Store) -> None:
    a, b = store.runs["lgbm"], store.other
    result = _invoke(store.home, "runs", "diff", a["id"], b["id"])
    assert result.exit_code == 0, result.output
    assert "fold r0 f0" not in result.stdout
    assert "competition" in result.stdout and "folds.hash" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == (
        "the runs use different metrics (roc_auc, rmsle): scores do not compare"
    )


def test_diff_of_identical_configs_says_so(store: Store) -> None:
    a = store.runs["lgbm"]
    result = _invoke(store.home, "runs", "diff", a["id"], a["id"])
    assert result.exit_code == 0, result.output
    assert re.search(r"parameters\s*│\s*identical\s*│\s*identical", result.stdout)
    assert result.stdout.strip().endswith(
        f"same CV roc_auc; B beats A on 0 of 4 folds (same fold file {a['folds']['hash']})"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "lgbm"], "no run matches 'nope' under "),
        (["-", "lgbm"], "'-' matches 4 runs: "),
    ],
)
def test_diff_names_a_missing_or_ambiguous_run(store: Store, args: list[str], message: str) -> None:
    result = _invoke(store.home, "runs", "diff", *args)
    assert isinstance(result.exception, KfwError), result.output
    assert message in str(result.exception)


def test_diff_takes_two_runs(store: Store) -> None:
    result = _invoke(store.home, "runs", "diff", "lgbm")
    assert result.exit_code == 2
    assert "`kfw runs diff` takes two run ids, got 1" in result.output


# ---------------------------------------------------------------------------------------------
# the chart


def test_plot_writes_the_chart_and_prints_its_path(store: Store, submitted: Path) -> None:
    result = _invoke(store.home, "runs", "synth", "--plot")
    assert result.exit_code == 0, result.output
    path = store.home / "runs" / "synth" / "runs.png"
    assert result.stdout.strip().splitlines()[-1] == str(path)
    assert path.read_bytes()[:8] == PNG
    assert path.stat().st_size > 10_000
    assert not list(path.parent.glob(".runs.png.tmp-*"))
    # the chart is not mistaken for a run
    assert len(_rows(_invoke(store.home, "runs", "synth").stdout)) == 3
