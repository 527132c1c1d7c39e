"""The local leaderboard of open copies, the submission records, CV against leaderboard.

Scores are checked against scikit-learn on the Public and Private rows; the rank correlation
against scipy; the chasing warning on constructed histories. The local flow runs on a
generated competition marked as an open copy (``.source`` open, ``.open/solution.csv``).
"""

from __future__ import annotations

import json
import shutil
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import accuracy_score, log_loss, mean_squared_log_error, roc_auc_score
from typer.testing import CliRunner

from kfw.cli.app import app
from kfw.core.config import Competition, FilesSpec, SubmissionSpec, load_competition
from kfw.errors import DataError, KfwError
from kfw.kaggle.client import HOW_TO_AUTHENTICATE, permissions_warning
from kfw.kaggle.leaderboard import (
    KEYS,
    SubmissionStore,
    chasing_warning,
    compose_message,
    correlations,
    merge_kaggle,
    new_entry,
    run_in_message,
    spearman,
    standings,
    user_text,
)
from kfw.kaggle.submit import score_submission, submit_run
from tests.synth import frames, make_competition, write_files

runner = CliRunner()
SLUG = "synth"
T0 = datetime(2024, 6, 1, 9, 0, tzinfo=UTC)


# ---------------------------------------------------------------------------------------------
# scoring like Kaggle: the metric on the Public rows and on the Private rows


def _spec(task: str, metric: str, columns: tuple[str, ...], fmt: str) -> Competition:
    return Competition(
        slug="t",
        kaggle="t",
        title="t",
        task=task,  # type: ignore[arg-type]
        metric=metric,
        id="Id",
        target="y",
        features="features.py",
        files=FilesSpec(),
        submission=SubmissionSpec(columns, fmt),  # type: ignore[arg-type]
        folds=None,
        models=(),
    )


def _case(kind: str, rng: np.random.Generator, n: int = 60):
    """(spec, submission, solution, classes, sklearn scorer on the part's rows)."""
    ids = np.arange(100, 100 + n)
    usage = rng.permutation(np.where(np.arange(n) < n // 2, "Public", "Private"))
    if kind == "binary-label-names":
        classes = np.array(["no", "yes"])
        truth, pred = rng.choice(classes, n), rng.choice(classes, n)
        spec = _spec("binary", "accuracy", ("Id", "y"), "label")
        sub = pd.DataFrame({"Id": ids, "y": pred})
        return spec, sub, truth, usage, classes, lambda t, s: accuracy_score(t, s["y"])
    if kind == "binary-label-auc":
        classes = np.array([0, 1])
        truth, pred = rng.integers(0, 2, n), rng.integers(0, 2, n)
        spec = _spec("binary", "roc_auc", ("Id", "y"), "label")
        sub = pd.DataFrame({"Id": ids, "y": pred})
        return spec, sub, truth, usage, classes, lambda t, s: roc_auc_score(t, s["y"])
    if kind == "binary-proba":
        classes = np.array([0, 1])
        truth, pred = rng.integers(0, 2, n), rng.random(n)
        spec = _spec("binary", "log_loss", ("Id", "y"), "proba")
        sub = pd.DataFrame({"Id": ids, "y": pred})
        return spec, sub, truth, usage, classes, lambda t, s: log_loss(t, s["y"], labels=[0, 1])
    if kind == "multiclass-label":
        classes = np.array(["a", "b", "c"])
        truth, pred = rng.choice(classes, n), rng.choice(classes, n)
        spec = _spec("multiclass", "accuracy", ("Id", "y"), "label")
        sub = pd.DataFrame({"Id": ids, "y": pred})
        return spec, sub, truth, usage, classes, lambda t, s: accuracy_score(t, s["y"])
    if kind == "multiclass-proba":
        classes = np.array(["a", "b", "c"])
        truth = rng.choice(classes, n)
        proba = rng.dirichlet(np.ones(3), n)
        spec = _spec("multiclass", "log_loss", ("Id", "c", "a", "b"), "proba")
        sub = pd.DataFrame({"Id": ids, "c": proba[:, 2], "a": proba[:, 0], "b": proba[:, 1]})
        return (
            spec,
            sub,
            truth,
            usage,
            classes,
            lambda t, s: log_loss(t, s[["a", "b", "c"]], labels=["a", "b", "c"]),
        )
    assert kind == "regression"
    truth, pred = rng.uniform(10, 100, n), rng.uniform(10, 100, n)
    spec = _spec("regression", "rmsle", ("Id", "y"), "value")
    sub = pd.DataFrame({"Id": ids, "y": pred})
    return (
        spec,
        sub,
        truth,
        usage,
        None,
        lambda t, s: np.sqrt(mean_squared_log_error(t, s["y"])),
    )


KINDS = [
    "binary-label-names",
    "binary-label-auc",
    "binary-proba",
    "multiclass-label",
    "multiclass-proba",
    "regression",
]


@pytest.mark.parametrize("kind", KINDS)
def test_scores_match_scikit_learn_on_each_part(kind: str) -> None:
    spec, sub, truth, usage, classes, oracle = _case(kind, np.random.default_rng(KINDS.index(kind)))
    solution = pd.DataFrame({"Id": sub["Id"], "y": truth, "Usage": usage})
    # the submission's rows in another order than the solution's: matched by id
    shuffled = sub.sample(frac=1, random_state=0).reset_index(drop=True)
    scores = score_submission(spec, shuffled, solution, classes)
    for part in ("Public", "Private"):
        rows = usage == part
        expected = oracle(truth[rows], sub[rows])
        assert scores[part.lower()] == pytest.approx(expected, rel=1e-12), part


def test_a_solution_without_private_rows_scores_none_there() -> None:
    spec, sub, truth, _, classes, _ = _case("binary-label-auc", np.random.default_rng(0))
    solution = pd.DataFrame({"Id": sub["Id"], "y": truth, "Usage": "Public"})
    assert score_submission(spec, sub, solution, classes)["private"] is None


# ---------------------------------------------------------------------------------------------
# the local leaderboard through the CLI, on a generated competition marked as an open copy


def _open_copy(home: Path) -> pd.DataFrame:
    make_competition(home, models=("logreg",), write_data=False)
    full, _ = frames("binary", 320, 0)
    train, held = full.iloc[:240], full.iloc[240:].reset_index(drop=True)
    folder = home / "data" / SLUG
    write_files(folder, train, held.drop(columns="target"))
    usage = np.random.default_rng(3).permutation(np.repeat(["Public", "Private"], 40))
    solution = held[["Id", "target"]].assign(Usage=usage)
    (folder / ".open").mkdir()
    solution.to_csv(folder / ".open" / "solution.csv", index=False)
    (folder / ".source").write_text(json.dumps({"source": "open"}))
    return solution


@pytest.fixture(scope="module")
def trained_open(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("open") / "home"
    _open_copy(home)
    result = runner.invoke(app, ["--home", str(home), "cv", SLUG, "--model", "logreg"])
    assert result.exit_code == 0, result.output
    return home


@pytest.fixture
def open_home(trained_open: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh copy of the trained open competition, and no Kaggle credentials anywhere."""
    home = tmp_path / "home"
    shutil.copytree(trained_open, home)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "user" / "kaggle"))
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KFW_DAILY_SUBMISSIONS"):
        monkeypatch.delenv(var, raising=False)
    return home


def _invoke(home: Path, *args: str):
    return runner.invoke(app, ["--home", str(home), *args])


def _entries(home: Path) -> list[dict]:
    return SubmissionStore(home, SLUG).entries()


def _solution(home: Path) -> pd.DataFrame:
    return pd.read_csv(home / "data" / SLUG / ".open" / "solution.csv")


def _auc(home: Path, file: str, part: str) -> float:
    sub = pd.read_csv(home / file)
    rows = _solution(home).query("Usage == @part").merge(sub, on="Id")
    return float(roc_auc_score(rows["target_x"], rows["target_y"]))


def _run_id(home: Path) -> str:
    return next((home / "runs" / SLUG).glob("2*")).name


def test_submit_scores_public_at_once_and_keeps_private_hidden(open_home: Path) -> None:
    result = _invoke(open_home, "submit", SLUG, "-m", "baseline")
    assert result.exit_code == 0, result.output
    (entry,) = _entries(open_home)
    assert list(entry) == list(KEYS)
    assert entry["ref"] == "local-1" and entry["source"] == "local"
    assert entry["status"] == "complete" and entry["run"] == _run_id(open_home)
    assert entry["public"] == pytest.approx(_auc(open_home, entry["file"], "Public"), rel=1e-12)
    assert entry["private"] == pytest.approx(_auc(open_home, entry["file"], "Private"), rel=1e-12)
    assert entry["message"].startswith(f"kfw run {entry['run']} · CV roc_auc ")
    assert entry["message"].endswith(" · baseline")
    last = result.stdout.splitlines()[-1]
    assert last.startswith(f"local leaderboard: public roc_auc {entry['public']:.5f} · local-1 ")
    assert "(1 of 5 today)" in last
    assert f"{entry['private']:.5f}" not in result.stdout  # hidden until --reveal


def test_the_daily_limit_refuses_in_one_line_and_records_nothing(
    open_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KFW_DAILY_SUBMISSIONS", "2")
    for _ in range(2):
        assert _invoke(open_home, "submit", SLUG).exit_code == 0
    before = sorted((open_home / "submissions" / SLUG).iterdir())
    result = _invoke(open_home, "submit", SLUG)
    assert result.exit_code == 1
    assert isinstance(result.exception, KfwError)
    message = str(result.exception)
    assert message.startswith(f"daily submission limit reached: 2 of 2 local submissions of {SLUG}")
    assert "\n" not in message
    assert len(_entries(open_home)) == 2
    assert sorted((open_home / "submissions" / SLUG).iterdir()) == before
    # the next UTC day has a fresh allowance
    spec = load_competition(SLUG, open_home)
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    done = submit_run(spec, open_home, now=tomorrow)
    assert done.entry is not None and done.entry["ref"] == "local-3" and done.today == 1


def test_a_bad_daily_limit_is_one_line(open_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KFW_DAILY_SUBMISSIONS", "many")
    result = _invoke(open_home, "submit", SLUG)
    assert result.exit_code == 1
    assert str(result.exception) == "KFW_DAILY_SUBMISSIONS='many' is not a positive integer"
    assert _entries(open_home) == []


def _edited(home: Path, flip: int, seed: int) -> Path:
    """The run's submission with ``flip`` labels flipped (a hand-edited file)."""
    sub = pd.read_csv(home / "runs" / SLUG / _run_id(home) / "submission.csv")
    rows = np.random.default_rng(seed).choice(len(sub), flip, replace=False)
    sub.loc[rows, "target"] = 1 - sub.loc[rows, "target"]
    path = home / f"edited-{seed}.csv"
    sub.to_csv(path, index=False)
    return path


def test_lb_ranks_by_public_and_reveal_shows_the_shake_up(open_home: Path) -> None:
    run = _run_id(open_home)
    assert _invoke(open_home, "submit", SLUG).exit_code == 0
    for seed, cv in ((1, 0.7), (2, 0.6)):
        file = _edited(open_home, 12, seed)
        args = ("submit", SLUG, "--run", run, "--file", str(file), "--cv", str(cv))
        result = _invoke(open_home, *args)
        assert result.exit_code == 0, result.output
    entries = _entries(open_home)
    assert [e["cv"] for e in entries][1:] == [0.7, 0.6]
    assert len({e["file"] for e in entries}) == 3  # each edit kept in its own file
    by_public = sorted(entries, key=lambda e: (-e["public"], e["submitted_at"]))
    by_private = sorted(entries, key=lambda e: (-e["private"], e["submitted_at"]))

    hidden = _invoke(open_home, "lb", SLUG)
    assert hidden.exit_code == 0, hidden.output
    shown = [line for line in hidden.stdout.splitlines() if "│ local-" in line]
    assert [line.split()[3] for line in shown] == [e["ref"] for e in by_public]
    assert "private" not in hidden.stdout

    revealed = _invoke(open_home, "lb", SLUG, "--reveal")
    assert revealed.exit_code == 0, revealed.output
    rows = [line.split("│") for line in revealed.stdout.splitlines() if "│ local-" in line]
    for cells, e in zip(rows, by_public, strict=True):
        cells = [c.strip() for c in cells if c.strip()]
        assert cells[1] == e["ref"] and cells[5] == f"{e['private']:.5f}"
        private_rank = by_private.index(e) + 1
        move = by_public.index(e) + 1 - private_rank
        assert cells[6] == str(private_rank)
        assert cells[7] == (f"{move:+d}" if move else "0")
    best_cv = max(entries, key=lambda e: e["cv"])
    assert f"best CV: {best_cv['ref']} · CV {best_cv['cv']:.5f}" in revealed.stdout
    assert f"best public: {by_public[0]['ref']}" in revealed.stdout


def test_file_needs_the_run_it_came_from(open_home: Path) -> None:
    result = _invoke(open_home, "submit", SLUG, "--file", str(_edited(open_home, 1, 1)))
    assert result.exit_code == 1
    assert str(result.exception) == "--file needs --run RUN_ID: the run the file was made from"
    assert _entries(open_home) == []


def test_lb_without_local_submissions_says_how(open_home: Path) -> None:
    result = _invoke(open_home, "lb", SLUG)
    assert result.exit_code == 0
    assert result.stdout.startswith(f"no local submissions of {SLUG}: `kfw submit {SLUG}`")


# ---------------------------------------------------------------------------------------------
# CV versus leaderboard: rank correlation, the chasing warning, the table and the plot


@pytest.mark.parametrize("seed", range(6))
def test_spearman_matches_scipy_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 40))
    x = rng.integers(0, 5, n).astype(float)  # many ties
    y = x + rng.normal(0, 2, n).round(0)
    assert spearman(x, y) == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)
    z = rng.normal(size=n)
    assert spearman(z, y) == pytest.approx(spearmanr(z, y).statistic, abs=1e-12)


def test_spearman_is_nan_when_a_side_is_constant() -> None:
    assert np.isnan(spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
    assert np.isnan(spearman([1.0], [2.0]))


def _history(cv: list[float], public: list[float], gib: bool = True) -> list[dict]:
    return [
        new_entry(
            ref=f"local-{i + 1}",
            run=f"run-{i}",
            file=f"submissions/{SLUG}/run-{i}.csv",
            message=f"kfw run run-{i}",
            submitted_at=T0 + timedelta(hours=i),
            cv=c,
            metric="accuracy" if gib else "rmse",
            greater_is_better=gib,
            source="local",
            public=p,
            private=None if p is None else p - 0.01,
            status="complete",
        )
        for i, (c, p) in enumerate(zip(cv, public, strict=True))
    ]


CHASES = {
    # public up in every step, CV down: chasing
    "public up, CV down": ([0.83, 0.82, 0.82, 0.81], [0.77, 0.78, 0.79, 0.80], True, True),
    # CV flat counts as not improving
    "public up, CV flat": ([0.83, 0.83, 0.83], [0.77, 0.78, 0.79], True, True),
    # public up in 2 of 3 steps (a strict majority), net up; CV net down
    "mostly up": ([0.83, 0.84, 0.82, 0.82], [0.77, 0.79, 0.78, 0.80], True, True),
    # public and CV improve together: fine
    "both improve": ([0.80, 0.81, 0.82, 0.83], [0.77, 0.78, 0.79, 0.80], True, False),
    # public up in only half the steps: no majority
    "half the steps": ([0.83, 0.82, 0.82, 0.81, 0.80], [0.77, 0.80, 0.79, 0.81, 0.80], True, False),
    # two submissions are too few to call a trend
    "too few": ([0.83, 0.82], [0.77, 0.79], True, False),
    # lower is better: public falls (improves) while CV rises (worsens)
    "rmse chased": ([0.10, 0.11, 0.12], [0.15, 0.14, 0.13], False, True),
    "rmse both improve": ([0.12, 0.11, 0.10], [0.15, 0.14, 0.13], False, False),
}


@pytest.mark.parametrize("case", list(CHASES))
def test_the_chasing_warning(case: str) -> None:
    cv, public, gib, fires = CHASES[case]
    warning = chasing_warning(_history(cv, public, gib))
    assert (warning is not None) == fires, warning
    if fires:
        assert warning.startswith("the public leaderboard improved in ")
        assert "while CV did not" in warning and "\n" not in warning


def test_the_warning_looks_at_the_latest_window_only() -> None:
    # an old chase followed by five submissions where CV and public improve together
    cv = [0.83, 0.82, 0.81, 0.80, 0.81, 0.82, 0.83, 0.84]
    public = [0.70, 0.72, 0.74, 0.75, 0.76, 0.77, 0.78, 0.79]
    assert chasing_warning(_history(cv[:4], public[:4])) is not None
    assert chasing_warning(_history(cv, public)) is None


def test_correlation_lines_say_when_there_is_nothing_to_rank() -> None:
    flat = _history([0.8, 0.8, 0.8], [0.70, 0.71, 0.72])
    undefined = "Spearman rank correlation undefined (CV or score never changes) over 3"
    assert [line.split(": ", 1)[1] for line in correlations(flat)] == [
        f"{undefined} submissions",
        f"{undefined} submissions",
    ]
    assert correlations(flat[:2]) == ["CV vs public: 2 scored submissions; ranks need 3"]


def test_the_message_carries_the_run_the_cv_and_the_user_text() -> None:
    message = compose_message("20240601-120000-lgbm-1a2b3c4d", "rmse", 0.123456, "a · b")
    assert message == "kfw run 20240601-120000-lgbm-1a2b3c4d · CV rmse 0.12346 · a · b"
    assert run_in_message(message) == "20240601-120000-lgbm-1a2b3c4d"
    assert user_text(message) == "a · b"
    assert user_text(compose_message("r", "rmse", 0.1)) == ""
    assert user_text("made on the website") == ""


def test_standings_break_ties_by_time_and_rank_private() -> None:
    entries = _history([0.8, 0.8, 0.8], [0.75, 0.78, 0.75])
    entries[0]["private"], entries[1]["private"], entries[2]["private"] = 0.70, 0.69, 0.74
    ranks = [(s.entry["ref"], s.public_rank, s.private_rank) for s in standings(entries)]
    assert ranks == [("local-2", 1, 3), ("local-1", 2, 2), ("local-3", 3, 1)]


def test_submissions_shows_cv_beside_lb_the_correlation_and_the_warning(home: Path) -> None:
    make_competition(home, write_data=False)
    cv = [0.83, 0.82, 0.82, 0.81]
    public = [0.77, 0.78, 0.79, 0.80]
    SubmissionStore(home, SLUG).save(_history(cv, public))
    result = _invoke(home, "submissions", SLUG, "--plot")
    assert result.exit_code == 0, result.output
    rho = spearmanr(cv, public).statistic
    assert f"CV vs public: Spearman rank correlation {rho:.3f} over 4 submissions" in result.stdout
    assert "warning: the public leaderboard improved in 3 of the last 3 steps" in result.stderr
    png = home / "submissions" / SLUG / "cv_vs_lb.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in png.parent.iterdir() if p.name.startswith(".")] == []


# ---------------------------------------------------------------------------------------------
# the record store and Kaggle's scores


def test_the_store_is_written_atomically_and_read_back(tmp_path: Path) -> None:
    store = SubmissionStore(tmp_path, SLUG)
    assert store.entries() == []
    entries = _history([0.8, 0.81], [0.7, 0.71])
    store.save(entries)
    assert store.entries() == entries
    assert [p.name for p in store.path.parent.iterdir()] == ["submissions.json"]
    store.path.write_text("[{")
    with pytest.raises(DataError, match=r"submissions\.json: not valid JSON"):
        store.entries()


def _remote(ref: str, file_name: str, description: str, public: float | None) -> dict:
    return {
        "ref": ref,
        "date": "2024-06-01T10:00:00+00:00",
        "description": description,
        "file_name": file_name,
        "public": public,
        "private": None,
        "status": "complete" if public is not None else "pending",
        "error": None,
    }


def test_kaggle_scores_match_by_ref_then_file_then_run() -> None:
    entries = _history([0.8, 0.81, 0.82], [None, None, None])
    for e in entries:
        e.update(source="kaggle", status="pending", private=None)
    entries[1]["ref"], entries[2]["ref"] = None, None
    remote = [
        _remote("local-1", "x.csv", "", 0.70),  # by ref
        _remote("900", "run-1.csv", "", 0.71),  # by file name
        _remote("901", "other.csv", "kfw run run-2 · CV accuracy 0.82000", 0.72),  # by run id
        _remote("902", "mine.csv", "made on the website", 0.5),  # not kfw's
    ]
    fetched = merge_kaggle(entries, remote)
    assert (fetched.updated, fetched.unknown) == (3, 1)
    assert [e["ref"] for e in entries] == ["local-1", "900", "901"]
    assert [e["public"] for e in entries] == [0.70, 0.71, 0.72]
    assert all(e["status"] == "complete" for e in entries)


# ---------------------------------------------------------------------------------------------
# credentials


def test_a_world_readable_kaggle_json_is_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "do-not-print-5e1"
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "cfg"))
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    path = tmp_path / "cfg" / "kaggle.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"username": "u", "key": secret}))
    path.chmod(0o600)
    assert permissions_warning() is None
    for mode in (0o644, 0o640, 0o604):
        path.chmod(mode)
        warning = permissions_warning()
        assert warning == f"{path} is readable by other users (mode {mode:03o}): chmod 600 {path}"
        assert secret not in warning
    # environment credentials win: the file is not what the client uses
    monkeypatch.setenv("KAGGLE_USERNAME", "u")
    monkeypatch.setenv("KAGGLE_KEY", secret)
    assert permissions_warning() is None


def test_submissions_of_kaggle_without_credentials_is_one_line_offline_works(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "user" / "kaggle"))
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setitem(sys.modules, "kaggle", None)  # never imported without credentials
    make_competition(home, write_data=False)
    entries = _history([0.8, 0.81], [0.7, 0.71])
    for e in entries:
        e["source"] = "kaggle"
    SubmissionStore(home, SLUG).save(entries)
    result = _invoke(home, "submissions", SLUG)
    assert result.exit_code == 1
    assert str(result.exception) == f"{HOW_TO_AUTHENTICATE}; or `kfw submissions {SLUG} --offline`"
    offline = _invoke(home, "submissions", SLUG, "--offline")
    assert offline.exit_code == 0, offline.output
    assert "local-1" in offline.stdout and "0.71000" in offline.stdout
