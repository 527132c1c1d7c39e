"""The campaign screen and the choice of the two final submissions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from typer.testing import CliRunner

from kfw.cli.app import app
from kfw.core.config import load_competition
from kfw.core.runstore import RunStore
from kfw.kaggle.campaign import select_finals, status
from kfw.kaggle.leaderboard import SubmissionStore
from tests.synth import make_competition

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _runs(home):
    make_competition(
        home,
        models=("lgbm", "logreg", "rf"),
        extra_toml='deadline = "2026-12-07"\ndaily_submissions = 3\n',
    )
    result = CliRunner().invoke(app, ["--home", str(home), "cv", "synth", "--no-blend"])
    assert result.exit_code == 0, result.output
    return load_competition("synth", home), RunStore(home, "synth").records()


def _entry(run, day, public):
    return {
        "ref": None, "run": run["id"], "file": "x.csv", "message": "", "submitted_at": day.isoformat(),
        "cv": run["score"], "metric": run["metric"], "greater_is_better": True, "public": public,
        "private": None, "status": "complete", "source": "kaggle",
    }  # fmt: skip


def test_status_counts_days_submissions_and_lists_unsubmitted_runs(home):
    spec, runs = _runs(home)
    SubmissionStore(home, "synth").save(
        [
            _entry(runs[0], NOW - timedelta(days=1), 0.7),
            _entry(runs[1], NOW - timedelta(hours=1), 0.71),
        ]
    )
    s = status(spec, home, now=NOW)
    assert round(s.days_left, 2) == 9.5
    assert (s.daily_limit, s.used_today, s.left_today) == (3, 1, 2)
    assert [r["id"] for r in s.unsubmitted] == [runs[2]["id"]]
    assert s.warning is None


def test_chasing_the_public_board_is_warned(home):
    spec, runs = _runs(home)
    # public keeps rising while CV falls
    entries = [_entry(runs[i % 3], NOW - timedelta(days=5 - i), 0.70 + 0.01 * i) for i in range(4)]
    for i, e in enumerate(entries):
        e["cv"] = 0.80 - 0.01 * i
    SubmissionStore(home, "synth").save(entries)
    assert "trust CV" in status(spec, home, now=NOW).warning


def test_select_picks_the_default_choice_and_a_less_correlated_near_best(home):
    from kfw.core.noise import choose_from_store

    spec, records = _runs(home)
    picks = select_finals(spec, home)
    store = RunStore(home, "synth")
    choice = choose_from_store(
        store, records, records[0]["data"]["hash"], records[0]["folds"]["hash"]
    )
    assert picks[0].run["id"] == choice.run["id"] and choice.reason in picks[0].reason
    assert len(picks) == 2 and picks[1].run["id"] != picks[0].run["id"]
    assert "CV" in picks[1].reason


def test_cli_campaign_and_select(home):
    _runs(home)
    runner = CliRunner()
    out = runner.invoke(app, ["--home", str(home), "campaign", "synth"]).output
    assert "submissions left today" in out and "no submissions yet" in out
    out = runner.invoke(app, ["--home", str(home), "select", "synth"]).output
    assert out.startswith("1. ") and "\n2. " in out and "chosen by CV alone" in out
