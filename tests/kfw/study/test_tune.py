"""Tuning: the objective is CV on the persisted folds; studies resume; workers share one study.

The distributed test starts a real PostgreSQL server on 127.0.0.1 (Debian's package, which
.ci/run installs) and runs two `kfw tune` worker processes against one study at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from kfw.cli.app import app
from kfw.core.config import load_competition
from kfw.pipeline.context import prepare
from kfw.progress import Callback
from kfw.study.tune import _open_study, _Pruning, _safe_url, check_storage, nested_estimate, tune
from tests.conftest import in_ci
from tests.postgres import PostgresUnavailable, postgres_server
from tests.synth import make_competition

KFW = str(Path(sys.executable).with_name("kfw"))


def _context(home: Path, models=("ridge",)):
    make_competition(
        home, task="regression", models=models, folds='scheme = "kfold"\nn_splits = 3\nseed = 1'
    )
    return prepare(load_competition("synth", home), home)


def test_study_resumes_and_best_params_feed_cv_tuned(home):
    ctx = _context(home)
    first = tune(ctx, "ridge", 3, seed=0)
    again = tune(ctx, "ridge", 2, seed=0)
    assert (first.n_trials, again.n_trials) == (3, 5)
    assert again.storage.startswith("sqlite:///") and str(home) in again.storage
    saved = json.loads(first.path.read_text())
    assert saved["fold_hash"] == ctx.folds.hash and saved["metric"] == "rmsle"
    assert set(saved["params"]) >= {"alpha"}
    result = CliRunner().invoke(
        app, ["--home", str(home), "cv", "synth", "--model", "ridge", "--tuned"]
    )
    assert result.exit_code == 0, result.output
    runs = [json.loads(p.read_text()) for p in (home / "runs" / "synth").glob("*/run.json")]
    (tuned,) = [r for r in runs if r["label"] == "ridge-tuned"]
    assert tuned["params"]["alpha"] == pytest.approx(
        json.loads(again.path.read_text())["params"]["alpha"]
    )
    # the study's best value is the CV the tuned run reproduces on the same folds, which is
    # why that run is labelled optimistic
    assert tuned["score"] == pytest.approx(again.best_value)
    assert tuned["optimistic"] == ["parameters tuned on these folds"]
    assert tuned["tuned_on"] == ctx.folds.hash
    # the nested estimate was not chosen on the fold it scores: never better than the best's
    assert saved["nested"] is not None and again.nested >= again.best_mean  # rmsle: lower wins


def test_tuning_on_another_fold_seed_scores_the_tuned_run_honestly(home):
    _context(home)
    args = ["--home", str(home)]
    result = CliRunner().invoke(
        app, [*args, "tune", "synth", "--model", "ridge", "--trials", "3", "--fold-seed", "99"]
    )
    assert result.exit_code == 0, result.output
    assert "study synth-ridge-kfold-k3-s99" in result.stdout and "nested estimate" in result.stdout
    saved = json.loads((home / "tune" / "synth" / "ridge.json").read_text())
    assert saved["folds"] == "kfold-k3-s99"
    result = CliRunner().invoke(app, [*args, "cv", "synth", "--model", "ridge", "--tuned"])
    assert result.exit_code == 0, result.output
    (run,) = [json.loads(p.read_text()) for p in (home / "runs" / "synth").glob("*/run.json")]
    assert run["folds"]["name"] == "kfold-k3-s1" and run["optimistic"] == []
    assert run["tuned_on"] == saved["fold_hash"] != run["folds"]["hash"]


def test_nested_estimate_scores_each_fold_with_the_trial_best_on_the_others():
    # trial 0 is best on folds 1 and 2 by luck on fold 0; trial 1 is steady
    scores = [[0.95, 0.70, 0.70], [0.80, 0.80, 0.80], [0.60, 0.75, 0.90]]
    estimate, picks = nested_estimate(scores, greater_is_better=True)
    # fold 0: others' means 0.70, 0.80, 0.825 -> trial 2 (0.60); fold 1: 0.825, 0.80, 0.75 ->
    # trial 0 (0.70); fold 2: 0.825, 0.80, 0.675 -> trial 0 (0.70)
    assert picks == [2, 0, 0]
    assert estimate == pytest.approx((0.60 + 0.70 + 0.70) / 3)
    assert nested_estimate(scores, greater_is_better=False)[1] == [0, 2, 2]


def test_cv_tuned_without_a_study_says_what_to_run(home):
    _context(home)
    result = CliRunner().invoke(
        app, ["--home", str(home), "cv", "synth", "--model", "ridge", "--tuned"]
    )
    assert result.exit_code != 0
    assert "kfw tune synth --model ridge" in str(result.exception)


def test_pruning_reports_the_running_mean_and_prunes():
    class Trial:
        def __init__(self):
            self.reported = []

        def report(self, value, step):
            self.reported.append((step, value))

        def should_prune(self):
            return len(self.reported) == 2

    class Fold:
        def __init__(self, score):
            self.score = score

    class Inner(Callback):
        def __init__(self):
            self.logs, self.folds = [], 0

        def log(self, metrics, step=None):
            self.logs.append((metrics, step))

        def fold_end(self, fold):
            self.folds += 1

    trial, inner = Trial(), Inner()
    pruning = _Pruning(trial, inner=inner)
    pruning.log({"epoch": 1, "train_loss": 0.5}, step=1)  # a network's epochs go on
    pruning.fold_end(Fold(1.0))
    with pytest.raises(optuna.TrialPruned):
        pruning.fold_end(Fold(3.0))
    assert trial.reported == [(0, 1.0), (1, 2.0)]
    assert inner.logs == [({"epoch": 1, "train_loss": 0.5}, 1)] and inner.folds == 2


def test_storage_urls_are_passed_on_as_the_user_wrote_them():
    # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, the driver kfw ships: no rewrite
    assert check_storage("postgresql://u@h:5/db") == "postgresql://u@h:5/db"
    assert check_storage("sqlite:///x.db") == "sqlite:///x.db"
    assert _safe_url("postgresql://user:secret@h:5/db") == "postgresql://user@h:5/db"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("not a url", "is not a database URL"),
        ("postgres://u@h/db", "SQLAlchemy says postgresql://; write that"),
        ("postgresql+pg8000://u:pw@h/db", "needs a driver that is not installed"),  # not installed
        ("nosuchdb://h/db", "nosuchdb"),
    ],
)
def test_a_bad_storage_url_fails_before_anything_is_written(home, url, says):
    _context(home)
    before = sorted(p.relative_to(home) for p in home.rglob("*"))
    env = {**os.environ, "KFW_HOME": str(home)}
    done = subprocess.run(
        [KFW, "tune", "synth", "--model", "ridge", "--trials", "1", "--storage", url],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kfw: error: --storage") and says in lines[0]
    assert "pw" not in done.stderr
    assert sorted(p.relative_to(home) for p in home.rglob("*")) == before  # no data, no folds


def test_unreachable_storage_is_one_clear_line(home):
    _context(home)
    env = {**os.environ, "KFW_HOME": str(home)}
    done = subprocess.run(
        [KFW, "tune", "synth", "--model", "ridge", "--trials", "1", "--storage", "postgresql://kfw:pw@127.0.0.1:9/none"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith(
        "kfw: error: cannot open the study storage postgresql://kfw@127.0.0.1:9/none"
    )
    assert "pw" not in done.stderr and "Traceback" not in done.stderr


@pytest.fixture
def postgres():
    try:
        with postgres_server() as url:
            yield url
    except PostgresUnavailable as exc:
        if in_ci():
            pytest.fail(f"PostgreSQL could not be started in CI: {exc}")
        pytest.skip(f"PostgreSQL unavailable here: {exc}")


@pytest.mark.service
def test_two_workers_share_one_study_over_postgresql(home, postgres):
    _context(home, models=("lgbm",))
    env = {**os.environ, "KFW_HOME": str(home), "KFW_THREADS": "1"}
    subprocess.run([KFW, "folds", "synth"], check=True, capture_output=True, env=env, timeout=120)
    command = [
        KFW,
        "tune",
        "synth",
        "--model",
        "lgbm",
        "--trials",
        "6",
        "--storage",
        postgres,
        "--study",
        "shared",
    ]
    workers = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=600) for w in workers]
    for w, (_, err) in zip(workers, outputs, strict=True):
        assert w.returncode == 0, err[-2000:]
    study = optuna.load_study(study_name="shared", storage=postgres)
    numbers = sorted(t.number for t in study.trials)
    assert numbers == list(range(12))  # the sum of both workers' trials, none lost or duplicated
    finished = {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    assert all(t.state in finished for t in study.trials)
    assert (
        len({json.dumps(t.params, sort_keys=True) for t in study.trials}) == 12
    )  # no trial run twice
    # the URL kfw was given is the URL Optuna's own CLI (and optuna-dashboard) takes
    listed = subprocess.run(
        [str(Path(sys.executable).parent / "optuna"), "studies", "--storage", postgres, "-f", "json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert [s["name"] for s in json.loads(listed.stdout)] == ["shared"]


_OPEN_AT = """
import sys, time
import optuna
from kfw.study.tune import _open_study
optuna.logging.set_verbosity(optuna.logging.WARNING)
start = float(sys.argv[2])
while time.time() < start:
    pass
_open_study(optuna, storage=sys.argv[1], study_name="together")
"""


def _open_together(url: str, workers: int, delay: float) -> None:
    """``workers`` processes open the study at ``url`` at the same instant; each must succeed."""
    start = f"{time.time() + delay:.3f}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _OPEN_AT, url, start],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(workers)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err[-2000:]
    summaries = optuna.get_all_study_summaries(storage=url)
    assert [s.study_name for s in summaries] == ["together"]


@pytest.mark.service
def test_workers_that_open_a_fresh_database_together_all_get_the_study(postgres):
    # On a fresh database every worker creates Optuna's schema; without the retry the losers
    # of PostgreSQL's catalog race die with a unique violation on pg_type (CI, stop 15).
    _open_together(postgres, workers=6, delay=4)


def test_workers_that_open_a_fresh_sqlite_file_together_all_get_the_study(tmp_path):
    # two `kfw tune` of one competition on the default SQLite storage, started together: the
    # loser died with "table alembic_version already exists" (found tuning house-prices)
    _open_together(f"sqlite:///{tmp_path / 'optuna.db'}", workers=4, delay=3)


def test_a_storage_error_that_is_no_race_is_raised_at_once(monkeypatch):
    calls = []

    class Failing:
        @staticmethod
        def create_study(**kwargs):
            calls.append(kwargs)
            raise ValueError("not a race")

    with pytest.raises(ValueError, match="not a race"):
        _open_study(Failing, storage="sqlite://", study_name="x")
    assert len(calls) == 1 and calls[0]["load_if_exists"] is True


def test_a_lost_schema_race_is_retried_and_a_persistent_one_raised():
    class Race(Exception):
        def __init__(self, code):
            self.orig = type("Orig", (), {"sqlstate": code})()  # as psycopg 3 reports it

    class Flaky:
        def __init__(self, failures):
            self.failures, self.calls = failures, 0

        def create_study(self, **kwargs):
            self.calls += 1
            if self.calls <= self.failures:
                raise Race("42710")
            return "study"

    flaky = Flaky(2)
    assert _open_study(flaky, storage="postgresql://x", study_name="s") == "study"
    assert flaky.calls == 3
    stuck = Flaky(99)
    with pytest.raises(Race):
        _open_study(stuck, attempts=3, storage="postgresql://x", study_name="s")
    assert stuck.calls == 3


@pytest.mark.service
def test_trials_run_as_tasks_of_a_dask_cluster_sharing_a_postgresql_study(home, postgres):
    # `kfw tune --executor dask://...`: each trial is a task; the workers share the study
    # through the PostgreSQL server, the way two `kfw tune` processes do
    from kfw.core.executor import DaskExecutor
    from tests.dask_cluster import local_cluster

    ctx = _context(home, models=("lgbm",))
    with (
        local_cluster() as cluster,
        DaskExecutor(cluster.scheduler_address, home / "work") as executor,
    ):  # fmt: skip
        result = tune(
            ctx, "lgbm", 6, storage=postgres, study_name="tasks", seed=0, executor=executor
        )
        workers = set(cluster.scheduler_info["workers"])
    assert (result.n_trials, result.study) == (6, "tasks")
    study = optuna.load_study(study_name="tasks", storage=postgres)
    assert sorted(t.number for t in study.trials) == list(range(6))
    assert len({json.dumps(t.params, sort_keys=True) for t in study.trials}) == 6
    assert all(len(t.user_attrs["fold_scores"]) == 3 for t in study.trials if t.user_attrs)
    assert len(workers) == 2
