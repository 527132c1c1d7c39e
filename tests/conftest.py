from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# OpenMP threads sleep while they wait (kfw sets this too): spinning threads of two test
# workers on two cores slow each other down many times over
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(autouse=True, scope="session")
def _no_wandb() -> Iterator[None]:
    # module-scoped fixtures are set up before the per-test _quiet_env: keep W&B off for them too
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "disabled")
        yield


@pytest.fixture(autouse=True)
def _quiet_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # one thread per fit: pytest-xdist runs one worker per core
    monkeypatch.setenv("KFW_THREADS", "1")
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.delenv("KFW_HOME", raising=False)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty KFW_HOME."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("KFW_HOME", str(path))
    return path


def shared_zip(name: str) -> Path:
    """A real Kaggle download from ../shared/kaggle, or skip the test when it is absent."""
    path = SHARED / "kaggle" / name
    if not path.is_file():
        pytest.skip(f"{path} is absent (the real Kaggle downloads live outside the repository)")
    return path


def in_ci() -> bool:
    return os.environ.get("CI", "") not in ("", "0", "false")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Name the tests that drove a real outside program (``@pytest.mark.service``) and passed:
    with ``-q`` a passing test is a dot, and CI's log should show that these ran, not skipped."""
    ran = sorted(
        r.nodeid
        for r in terminalreporter.stats.get("passed", [])
        if r.when == "call" and "service" in r.keywords
    )
    if ran:
        terminalreporter.write_sep("-", f"{len(ran)} tests drove a real browser or server")
        for nodeid in ran:
            terminalreporter.write_line(f"PASSED {nodeid}")
