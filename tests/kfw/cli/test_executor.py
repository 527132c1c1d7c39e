"""``--executor`` from the command line: the same runs wherever they ran, and bad clusters refused.

A roster run with ``--executor local:2`` (two worker processes) and one on a real Dask
``LocalCluster`` (two worker processes on 127.0.0.1) write the very out-of-fold, test and
submission files the sequential run writes; the record says where each fold ran. A scheduler
that does not answer costs one line within the stated timeout, and nothing is written.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest

from kfw.cli import main
from tests.dask_cluster import local_cluster

pytestmark = pytest.mark.slow

MODELS = ["-m", "lgbm", "-m", "logreg"]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("KFW_HOME", str(home))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.delenv("KFW_DEBUG", raising=False)
    return home


def _kfw(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    return exc.value.code, out.out + out.err


def _runs(home: Path) -> dict[str, Path]:
    return {
        json.loads((p / "run.json").read_text())["label"]: p
        for p in sorted((home / "runs" / "titanic").glob("*-*"))
        if (p / "run.json").is_file()
    }


def _files(run: Path) -> dict[str, bytes]:
    frames = {name: pd.read_parquet(run / name) for name in ("oof.parquet", "test.parquet")}
    return {
        **{name: frame.to_numpy().tobytes() for name, frame in frames.items()},
        "submission.csv": (run / "submission.csv").read_bytes(),
    }


@pytest.fixture(scope="module")
def cluster():
    with local_cluster() as local:
        yield local


def test_the_roster_on_two_processes_and_on_a_dask_cluster_writes_the_sequential_files(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, cluster
) -> None:
    code, out = _kfw(capsys, "cv", "titanic", *MODELS, "--no-blend")
    assert code == 0, out
    sequential = {label: _files(run) for label, run in _runs(home).items()}
    assert set(sequential) == {"lgbm", "logreg"}
    address = cluster.scheduler_address.removeprefix("tcp://")
    for n, executor in enumerate(["local:2", f"dask://{address}"]):
        other = tmp_path / f"home{n}"
        monkeypatch.setenv("KFW_HOME", str(other))
        code, out = _kfw(capsys, "cv", "titanic", *MODELS, "--no-blend", "--executor", executor)
        assert code == 0, out
        for label, run in _runs(other).items():
            assert _files(run) == sequential[label], (executor, label)
            record = json.loads((run / "run.json").read_text())
            assert record["executor"] == executor and record["threads"] == 1
            folds = record["fold_scores"]
            assert all(f["worker"] and f["queued_seconds"] >= 0 for f in folds)
        if executor.startswith("dask"):
            workers = {
                f["worker"]
                for r in _runs(other).values()
                for f in json.loads((r / "run.json").read_text())["fold_scores"]
            }
            assert workers <= set(cluster.scheduler_info["workers"])
        assert not any((other / "work").iterdir())  # the package is gone once the run is saved


def test_tune_trials_run_as_tasks_sharing_one_study(home: Path, capsys) -> None:
    import optuna

    code, out = _kfw(
        capsys, "tune", "titanic", "--model", "logreg", "--trials", "4", "--executor", "local:2"
    )
    assert code == 0, out
    study = optuna.load_study(
        study_name="titanic-logreg", storage=f"sqlite:///{home}/tune/titanic/optuna.db"
    )
    assert len(study.trials) == 4
    assert all(len(t.user_attrs["fold_scores"]) == 25 for t in study.trials)  # 5 x 5 folds
    assert out.count("finished on") == 4
    assert "4 trials, 4 complete" in out


def test_a_scheduler_that_does_not_answer_is_one_line_and_writes_nothing(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import socket

    import dask

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT", "3s")
    dask.config.refresh()
    started = time.time()
    code, out = _kfw(capsys, "cv", "titanic", "--executor", f"dask://127.0.0.1:{port}")
    assert time.time() - started < 20
    lines = out.strip().splitlines()
    assert code == 1 and len(lines) == 1, out
    assert f"no Dask scheduler answered at tcp://127.0.0.1:{port} within 3s" in lines[0]
    assert "dask scheduler" in lines[0]
    assert not home.exists() or not any(home.rglob("*"))
    monkeypatch.delenv("DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT")
    dask.config.refresh()
