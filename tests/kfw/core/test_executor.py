"""Where the folds run does not change what they give: local processes and a real Dask cluster.

The clusters are real: a ``distributed.LocalCluster`` with two worker processes, or a
scheduler and ``dask worker`` processes started the way the README starts them, all on
127.0.0.1, stopped by the tests. A worker killed mid-fold (SIGKILL to its process) must cost
nothing but time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kfw.core.cv import CVResult, cross_validate
from kfw.core.executor import (
    DaskExecutor,
    Executor,
    ExecutorError,
    ProcessExecutor,
    check_versions,
    open_executor,
    parse,
)
from kfw.core.folds import Folds, FoldScheme, assign_folds
from kfw.core.metrics import get_metric
from kfw.core.registry import make_estimator
from kfw.core.runstore import PartialFolds
from kfw.errors import ConfigError
from tests.dask_cluster import local_cluster

pytestmark = pytest.mark.slow


def _problem(n: int = 1500, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(size=n),
            "c": pd.Categorical(rng.choice(list("xyz"), n)),
        }
    )
    y = (X["a"] + 0.5 * rng.normal(size=n) + (X["c"] == "x") > 0).astype(int).to_numpy()
    scheme = FoldScheme("stratified", n_splits=4, seed=0)
    assignment, _ = assign_folds(scheme, n, y, task="binary")
    return X, y, Folds(scheme, np.arange(n), assignment, None, "h")


def _cv(executor: Executor | None = None, rounds: int = 60, **kwargs) -> CVResult:
    X, y, folds = _problem()
    estimator = make_estimator(
        "lgbm", "binary", {"n_estimators": rounds, "num_leaves": 15}, random_state=0, n_jobs=1
    )
    return cross_validate(
        estimator, X, y, folds, metric=get_metric("roc_auc"), task="binary",
        X_test=X.head(300), executor=executor, **kwargs,
    )  # fmt: skip


def _same_bytes(a: CVResult, b: CVResult) -> None:
    assert a.oof.tobytes() == b.oof.tobytes()
    assert a.test.tobytes() == b.test.tobytes()
    assert [f.score for f in a.folds] == [f.score for f in b.folds]
    assert a.score == b.score


@pytest.fixture(scope="module")
def sequential() -> CVResult:
    return _cv()


def test_executor_urls_parse_and_bad_ones_say_what_is_expected() -> None:
    assert parse("local") == ("local", None)
    assert parse("local:3") == ("local", 3)
    assert parse("dask://127.0.0.1:8786") == ("dask", ("tcp://127.0.0.1:8786", False))
    assert parse("dask://h:1?data=scatter") == ("dask", ("tcp://h:1", True))
    for bad, said in [
        ("ray://x:1", "expected local, local:N or dask://HOST:PORT"),
        ("local:0", "positive number"),
        ("local:two", "positive number"),
        ("dask://nohost", "dask://HOST:PORT"),
        ("dask://h:1?data=nfs", "?data=scatter"),
    ]:
        with pytest.raises(ConfigError, match=None) as info:
            parse(bad)
        assert said in str(info.value)


def test_local_processes_give_the_sequential_bytes_and_record_where(
    sequential: CVResult, tmp_path: Path
) -> None:
    with open_executor("local:2", tmp_path) as executor:
        assert isinstance(executor, ProcessExecutor) and executor.slots == 2
        result = _cv(executor)
        assert list((tmp_path / "work").iterdir())  # the package the workers read
    _same_bytes(sequential, result)
    workers = {f.worker for f in result.folds}
    assert all(w and "pid" in w for w in workers) and str(os.getpid()) not in " ".join(workers)
    assert all(f.queued_seconds is not None and f.queued_seconds >= 0 for f in result.folds)
    assert not list((tmp_path / "work").iterdir())  # removed on close
    assert all(f.worker is None for f in sequential.folds)  # the local loop records nothing


def test_a_parallel_run_resumes_from_the_folds_it_checkpointed(
    sequential: CVResult, tmp_path: Path
) -> None:
    store = PartialFolds(tmp_path / "partial")
    folds = _problem()[2]
    first = next(folds.splits())
    store.save(sequential.folds[0], sequential.oof[first.valid], None, None)
    with ProcessExecutor(2, tmp_path / "work") as executor:
        result = _cv(executor, store=store)
    assert result.folds[0].restored and not any(f.restored for f in result.folds[1:])
    assert result.oof.tobytes() == sequential.oof.tobytes()
    assert len(list(store.folder.iterdir())) == folds.n_fits  # every new fold was saved


def _loky_workers() -> list[int]:
    import psutil

    return [
        p.pid for p in psutil.Process().children(recursive=True) if "loky" in " ".join(p.cmdline())
    ]


def test_a_local_worker_killed_mid_fold_is_replaced(tmp_path: Path) -> None:
    slow = _cv(rounds=1500)
    with ProcessExecutor(2, tmp_path / "work") as executor:
        done: dict[str, CVResult] = {}
        thread = threading.Thread(target=lambda: done.update(r=_cv(executor, rounds=1500)))
        thread.start()
        deadline = time.time() + 60
        while not _loky_workers() and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # the workers have their first folds
        os.kill(_loky_workers()[0], signal.SIGKILL)
        thread.join(timeout=300)
    _same_bytes(slow, done["r"])


# -- Dask ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster():
    with local_cluster() as local:
        yield local


@pytest.mark.parametrize("scatter", [False, True], ids=["data-path", "scattered"])
def test_a_dask_local_cluster_gives_the_sequential_bytes(
    sequential: CVResult, cluster, tmp_path: Path, scatter: bool
) -> None:
    address = cluster.scheduler_address
    with DaskExecutor(address, tmp_path / "work", scatter=scatter) as executor:
        assert executor.slots == 2
        result = _cv(executor)
    _same_bytes(sequential, result)
    assert {f.worker for f in result.folds} <= set(cluster.scheduler_info["workers"])
    assert all(f.queued_seconds is not None for f in result.folds)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dask(
    *args: str,
    env: dict[str, str] | None = None,
    prefix: list[str] | None = None,
    cwd: str | None = None,
):
    """``dask ARGS`` (the CLI the README shows) as a child process."""
    command = [*(prefix or []), sys.executable, "-m", "distributed.cli.dask_worker"]
    if args[0] == "scheduler":
        command = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    return subprocess.Popen(
        [*command, *args[1:]],
        env={**os.environ, **(env or {})},
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@contextmanager
def scheduler(workers: int = 0, **worker_kwargs):
    """A ``dask scheduler`` and ``workers`` ``dask worker --no-nanny`` processes on loopback."""
    from distributed import Client

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [
        _dask("scheduler", "--host", "127.0.0.1", "--port", str(port), "--dashboard-address", ":0")
    ]
    try:
        for _ in range(workers):
            procs.append(worker(address, **worker_kwargs))
        with Client(address, timeout="30s") as client:
            if workers:
                client.wait_for_workers(workers, timeout=60)
        yield address, procs
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=30)


def worker(address: str, **kwargs) -> subprocess.Popen:
    return _dask(
        "worker", address, "--nthreads", "1", "--no-nanny", "--host", "127.0.0.1",
        "--no-dashboard", **kwargs,
    )  # fmt: skip


def test_a_dask_worker_killed_mid_fold_leaves_the_result_unchanged(tmp_path: Path) -> None:
    from distributed import Client

    slow = _cv(rounds=1500)
    with scheduler(workers=2) as (address, _), Client(address) as watcher:
        pids = watcher.run(os.getpid)  # worker address -> its process
        with DaskExecutor(address, tmp_path / "work") as executor:
            done: dict[str, CVResult] = {}
            thread = threading.Thread(target=lambda: done.update(r=_cv(executor, rounds=1500)))
            thread.start()
            busy: list[str] = []
            deadline = time.time() + 60
            while not busy and time.time() < deadline:
                busy = [w for w, keys in watcher.processing().items() if keys]
                time.sleep(0.05)
            time.sleep(0.3)  # well inside its fold
            os.kill(pids[busy[0]], signal.SIGKILL)
            thread.join(timeout=300)
            survivor = next(w for w in pids if w != busy[0])
    _same_bytes(slow, done["r"])
    # the folds after the kill ran on the worker that was left
    assert done["r"].folds[-1].worker == survivor


def test_an_unreachable_scheduler_is_one_line_within_the_stated_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT", "2s")
    import dask

    dask.config.refresh()
    started = time.time()
    with pytest.raises(
        ExecutorError, match=r"no Dask scheduler answered at tcp://127\.0\.0\.1:\d+ within 2s"
    ):
        open_executor(f"dask://127.0.0.1:{_free_port()}", tmp_path)
    assert time.time() - started < 15
    monkeypatch.delenv("DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT")
    dask.config.refresh()


def test_a_worker_with_another_kfw_is_refused_naming_both_versions(tmp_path: Path) -> None:
    import shutil

    import kfw

    other = tmp_path / "other"
    shutil.copytree(
        Path(kfw.__file__).parent, other / "kfw", ignore=shutil.ignore_patterns("__pycache__")
    )
    init = other / "kfw" / "__init__.py"
    init.write_text(
        init.read_text().replace(
            f'__version__ = "{kfw.__version__}"', '__version__ = "0.0.1-other"'
        )
    )
    with (
        # run from `other`: python -m puts the working folder ahead of PYTHONPATH
        scheduler(workers=1, env={"PYTHONPATH": str(other)}, cwd=str(other)) as (address, _),
        pytest.raises(ExecutorError) as info,
    ):
        DaskExecutor(address, tmp_path / "work")
    message = str(info.value)
    assert f"kfw 0.0.1-other (driver {kfw.__version__})" in message
    assert "\n" not in message


def test_version_check_names_every_difference() -> None:
    check_versions({"kfw": "1", "numpy": "2"}, {"tcp://a:1": {"kfw": "1", "numpy": "2"}})
    with pytest.raises(ExecutorError, match=r"numpy 1\.0 \(driver 2\), lightgbm not installed"):
        check_versions(
            {"kfw": "1", "numpy": "2", "lightgbm": "4"}, {"tcp://a:1": {"kfw": "1", "numpy": "1.0"}}
        )


def _can_unshare() -> bool:
    try:
        return (
            subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=10).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(
    not _can_unshare(), reason="unprivileged mount namespaces (unshare -rm) are not allowed here"
)
def test_a_worker_that_cannot_see_the_data_path_fails_before_any_fit(tmp_path: Path) -> None:
    # the worker runs in its own mount namespace, where an empty tmpfs hides the driver's
    # work folder: the same path, another machine's view of it
    work = tmp_path / "work"
    work.mkdir()
    hide = ["unshare", "-rm", "sh", "-c", f'mount -t tmpfs none "{work}" && exec "$0" "$@"']
    with scheduler() as (address, procs):
        procs.append(
            _dask(
                "worker",
                address,
                "--nthreads",
                "1",
                "--no-nanny",
                "--host",
                "127.0.0.1",
                "--no-dashboard",
                prefix=hide,
            )
        )
        from distributed import Client

        with Client(address) as client:
            client.wait_for_workers(1, timeout=60)
        with DaskExecutor(address, work) as executor, pytest.raises(ExecutorError) as info:
            _cv(executor)
    assert "cannot see the data path" in str(info.value)
    assert "?data=scatter" in str(info.value)
