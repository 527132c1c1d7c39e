"""Kaggle: credentials found where the client looks, refused in one line, never printed; then
download, submit and the leaderboard scores end to end, the real ``kaggle`` client speaking to
the fake Kaggle of :mod:`tests.kaggle_server` on http://localhost.

The end-to-end tests run ``kfw`` in subprocesses: the client reads its endpoint and config
folder once, when first imported, so each run needs a fresh interpreter with the fake's
environment. They share port 80: run pytest with ``--dist loadgroup`` (``make test`` does).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from kfw.cli.app import app
from kfw.core.config import load_competition
from kfw.errors import DataError
from kfw.kaggle.client import HOW_TO_AUTHENTICATE, find_credentials
from kfw.kaggle.data import download_data, import_data
from kfw.kaggle.leaderboard import KEYS
from tests.conftest import in_ci
from tests.kaggle_server import Competition as KaggleCompetition
from tests.kaggle_server import FakeKaggle
from tests.synth import frames, make_competition

KFW = Path(sys.executable).with_name("kfw")
SECRET = "secret-key-123"
KAGGLE_VARS = ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN")
RUN_ID = re.compile(r"\b\d{8}-\d{6}-[\w-]+\b")


@pytest.fixture
def fake_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME (and Kaggle config folders) without any credentials."""
    path = tmp_path / "user"
    path.mkdir()
    monkeypatch.setenv("HOME", str(path))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(path / "kaggle-config"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(path / ".config"))
    for var in KAGGLE_VARS:
        monkeypatch.delenv(var, raising=False)
    return path


def _kaggle_json(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "kaggle.json"
    path.write_text(f'{{"username": "someone", "key": "{SECRET}"}}')
    return path


def test_no_credentials_anywhere(fake_home: Path) -> None:
    assert find_credentials() is None


def test_a_key_without_a_username_is_not_credentials(
    fake_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAGGLE_KEY", SECRET)
    assert find_credentials() is None


def test_environment_credentials_are_described_not_shown(
    fake_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", SECRET)
    found = find_credentials()
    assert found == "the KAGGLE_USERNAME / KAGGLE_KEY environment variables"
    monkeypatch.setenv("KAGGLE_API_TOKEN", SECRET)
    assert find_credentials() == "the KAGGLE_API_TOKEN environment variable"


def test_kaggle_json_in_the_config_dir(fake_home: Path) -> None:
    path = _kaggle_json(fake_home / "kaggle-config")
    assert find_credentials() == str(path)


def test_kaggle_json_in_home_and_xdg(fake_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAGGLE_CONFIG_DIR")
    xdg = _kaggle_json(fake_home / ".config" / "kaggle")
    assert find_credentials() == str(xdg)
    dot = _kaggle_json(fake_home / ".kaggle")
    assert find_credentials() == str(dot)  # ~/.kaggle is looked at first


def test_an_access_token_file(fake_home: Path) -> None:
    token = fake_home / ".kaggle" / "access_token"
    token.parent.mkdir()
    token.write_text("   \n")
    assert find_credentials() is None  # an empty token file is no token
    token.write_text(SECRET)
    assert find_credentials() == str(token)


def test_download_without_credentials_is_one_clear_error(
    fake_home: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAGGLE_KEY", SECRET)
    # the client must not even be imported (it authenticates, and exits, at import)
    monkeypatch.setitem(sys.modules, "kaggle", None)
    make_competition(home, write_data=False)
    spec = load_competition("synth", home)
    with pytest.raises(DataError) as err:
        download_data(spec, home)
    message = str(err.value)
    assert message == HOW_TO_AUTHENTICATE
    assert message.startswith("no Kaggle credentials")
    assert "KAGGLE_USERNAME and KAGGLE_KEY" in message and "~/.kaggle/" in message
    assert SECRET not in message
    assert list((home / "data").iterdir()) == []  # the download folder went with the failure


def test_cli_download_without_credentials_never_prints_the_key(fake_home: Path, home: Path) -> None:
    make_competition(home, write_data=False)
    env = {k: v for k, v in os.environ.items() if k != "FORCE_COLOR"}
    env.update(KFW_HOME=str(home), KAGGLE_KEY=SECRET)
    proc = subprocess.run(
        [str(KFW), "data", "download", "synth"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert lines == [f"kfw: error: {HOW_TO_AUTHENTICATE}"]
    assert SECRET not in proc.stdout + proc.stderr


# ---------------------------------------------------------------------------------------------
# end to end: the real client against the fake Kaggle of tests/kaggle_server.py (port 80)

USER, KEY = "someone", "fake-key-7f3a9c21"
SLUG, KAGGLE_SLUG = "synth", "synthetic-synth"
GROUP = pytest.mark.xdist_group("kaggle-server")


@dataclass
class Trained:
    """A user's KFW_HOME with the synth competition imported and one run trained."""

    home: Path
    run: str
    files: dict[str, bytes]
    solution: pd.DataFrame


@dataclass
class World:
    """A fresh fake Kaggle holding the synth competition, and a fresh copy of the user's home."""

    server: FakeKaggle
    home: Path
    env: dict[str, str]
    solution: pd.DataFrame
    run: str


def _files(n_train: int = 240, n_test: int = 80) -> tuple[dict[str, bytes], pd.DataFrame]:
    """The competition's files, and the hidden solution (half Public, half Private)."""
    full, _ = frames("binary", n_train + n_test, 0)
    train, held = full.iloc[:n_train], full.iloc[n_train:].reset_index(drop=True)
    test = held.drop(columns="target")
    sample = pd.DataFrame({"Id": test["Id"], "target": 0})
    solution = held[["Id", "target"]].assign(
        Usage=np.where(np.arange(len(held)) % 2 == 0, "Public", "Private")
    )
    files = {
        name: frame.to_csv(index=False).encode()
        for name, frame in (
            ("train.csv", train),
            ("test.csv", test),
            ("sample_submission.csv", sample),
        )
    }
    return files, solution


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    root = tmp_path_factory.mktemp("kaggle")
    home = root / "home"
    files, solution = _files()
    make_competition(home, models=("logreg",), write_data=False)
    archive = root / "synth.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    import_data(load_competition(SLUG, home), home, archive)
    result = CliRunner().invoke(app, ["--home", str(home), "cv", SLUG, "--model", "logreg"])
    assert result.exit_code == 0, result.output
    return Trained(home, RUN_ID.findall(result.stdout)[-1], files, solution)


@pytest.fixture
def world(trained: Trained, tmp_path: Path) -> Iterator[World]:
    """One server per test: the port is held only while a test runs, so tests of the group that
    land on different xdist workers take turns (``--dist loadgroup`` keeps them on one worker,
    where pytest and xdist agree on node ids)."""
    home, user = tmp_path / "home", tmp_path / "user"
    shutil.copytree(trained.home, home)
    user.mkdir()
    server = FakeKaggle(USER, KEY)
    server.add(
        KaggleCompetition(
            KAGGLE_SLUG, trained.files, trained.solution, "Id", "target", roc_auc_score
        )
    )
    try:
        server.__enter__()
    except OSError as exc:  # port 80 needs root, and only one test can hold it
        if in_ci():
            raise
        pytest.skip(f"the fake Kaggle cannot listen on 127.0.0.1:80: {exc}")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("FORCE_COLOR", "KFW_DEBUG", "KAGGLE_API_TOKEN", "KFW_DAILY_SUBMISSIONS")
        and not k.lower().endswith("_proxy")
    }
    env.update(
        KFW_HOME=str(home),
        KFW_THREADS="1",
        HOME=str(user),
        KAGGLE_CONFIG_DIR=str(user / "kaggle-config"),
        XDG_CONFIG_HOME=str(user / ".config"),
        KAGGLE_API_ENVIRONMENT="LOCALHOST",
        KAGGLE_USERNAME=USER,
        KAGGLE_KEY=KEY,
        NO_PROXY="localhost,127.0.0.1",
    )
    try:
        yield World(server, home, env, trained.solution, trained.run)
    finally:
        server.__exit__(None, None, None)


def _kfw(world: World, *args: str, **env: str | None) -> subprocess.CompletedProcess[str]:
    full = {**world.env, **env}
    full = {k: v for k, v in full.items() if v is not None}
    proc = subprocess.run([str(KFW), *args], capture_output=True, text=True, env=full, timeout=120)
    assert KEY not in proc.stdout + proc.stderr
    return proc


def _entries(world: World) -> list[dict]:
    path = world.home / "submissions" / SLUG / "submissions.json"
    return json.loads(path.read_text()) if path.is_file() else []


def _never_written(world: World) -> None:
    for path in world.home.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def _expected(world: World, sub: pd.DataFrame, usage: str) -> float:
    part = world.solution[world.solution["Usage"] == usage].merge(sub, on="Id")
    return float(roc_auc_score(part["target_x"], part["target_y"]))


@GROUP
def test_download_imports_the_zip(world: World) -> None:
    proc = _kfw(world, "data", "download", SLUG)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("downloaded: 240 train rows, 80 test rows")
    folder = world.home / "data" / SLUG
    assert json.loads((folder / ".source").read_text())["source"] == "kaggle"
    served = world.server.competitions[KAGGLE_SLUG].files
    assert (folder / "train.csv").read_bytes() == served["train.csv"]
    assert world.server.calls == [
        "POST DownloadDataFiles",
        f"GET /storage/{KAGGLE_SLUG}/{KAGGLE_SLUG}.zip",
    ]
    _never_written(world)


@GROUP
def test_submit_records_and_submissions_fetches_the_scores(world: World) -> None:
    proc = _kfw(world, "submit", SLUG, "-m", "first try")
    assert proc.returncode == 0, proc.stderr
    assert world.server.calls[:3] == [
        "POST StartSubmissionUpload",
        "PUT /upload",
        "POST CreateSubmission",
    ]
    (entry,) = _entries(world)
    assert list(entry) == list(KEYS)
    run = json.loads((world.home / "runs" / SLUG / world.run / "run.json").read_text())
    assert entry["run"] == world.run and entry["source"] == "kaggle"
    assert entry["cv"] == run["score"] and entry["metric"] == "roc_auc"
    assert entry["message"] == f"kfw run {world.run} · CV roc_auc {run['score']:.5f} · first try"
    # what Kaggle received is the recorded file, described with the run id and the CV
    stored = world.home / entry["file"]
    assert stored == world.home / "submissions" / SLUG / f"{world.run}.csv"
    (submission,) = world.server.competitions[KAGGLE_SLUG].submissions
    assert str(submission["ref"]) == entry["ref"]
    assert submission["description"] == entry["message"]
    assert submission["fileName"] == stored.name
    assert list(world.server.uploads.values()) == [stored.read_bytes()]
    # scored at once by the fake and fetched right after submitting; private hidden until the end
    sub = pd.read_csv(stored)
    assert entry["status"] == "complete" and entry["private"] is None
    assert entry["public"] == pytest.approx(_expected(world, sub, "Public"), abs=1e-5)
    assert proc.stdout.splitlines()[-1] == (
        f"submitted to Kaggle ({entry['ref']}) · public roc_auc {entry['public']:.5f}"
    )

    world.server.competitions[KAGGLE_SLUG].ended = True
    # credentials from a kaggle.json that others can read: kfw warns once, the client not at all
    config = Path(world.env["KAGGLE_CONFIG_DIR"])
    config.mkdir(exist_ok=True)  # the client made it when first imported
    (config / "kaggle.json").write_text(json.dumps({"username": USER, "key": KEY}))
    (config / "kaggle.json").chmod(0o644)
    proc = _kfw(world, "submissions", SLUG, "--plot", KAGGLE_USERNAME=None, KAGGLE_KEY=None)
    (config / "kaggle.json").unlink()
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        f"warning: {config / 'kaggle.json'} is readable by other users (mode 644): "
        f"chmod 600 {config / 'kaggle.json'}"
    ]
    assert "Your Kaggle API key" not in proc.stdout  # the client's own print is kept quiet
    assert world.server.calls[-1] == "POST ListSubmissions"
    (entry,) = _entries(world)
    assert entry["private"] == pytest.approx(_expected(world, sub, "Private"), abs=1e-5)
    row = next(line for line in proc.stdout.splitlines() if entry["ref"] in line)
    assert f"{entry['public']:.5f}" in row and f"{entry['private']:.5f}" in row
    assert "first try" in row
    assert (world.home / "submissions" / SLUG / "cv_vs_lb.png").read_bytes()[:4] == b"\x89PNG"
    _never_written(world)


@GROUP
def test_a_failed_upload_records_nothing(world: World) -> None:
    world.server.fail_uploads = True
    proc = _kfw(world, "submit", SLUG, "-m", "doomed")
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"kfw: error: upload of {world.run}.csv to '{KAGGLE_SLUG}' failed; nothing was submitted"
    ]
    assert world.server.calls == ["POST StartSubmissionUpload", "PUT /upload"]
    assert _entries(world) == []


@GROUP
def test_wrong_credentials_are_one_line_without_the_key(world: World) -> None:
    wrong = "wrong-key-0b1d2e"
    proc = _kfw(world, "submit", SLUG, KAGGLE_KEY=wrong)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"kfw: error: submission of {world.run}.csv to '{KAGGLE_SLUG}' failed: Unauthenticated"
    ]
    assert wrong not in proc.stderr
    assert _entries(world) == []
