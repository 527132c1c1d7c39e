"""Kaggle credentials: found where the client looks, refused in one line, never printed.

No test here touches the network: without credentials kfw stops before importing the client.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kfw.config import load_competition
from kfw.data import download_data
from kfw.errors import DataError
from kfw.kaggle_client import HOW_TO_AUTHENTICATE, find_credentials
from tests.synth import make_competition

KFW = Path(sys.executable).with_name("kfw")
SECRET = "secret-key-123"
KAGGLE_VARS = ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN")


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
