"""The one place kfw talks to Kaggle, through the official ``kaggle`` client.

``import kaggle`` authenticates at import time (and exits the process when it cannot), so the
client is imported only inside the functions that need it, after :func:`find_credentials` has
established that credentials exist. Credentials are never printed or logged.
"""

from __future__ import annotations

import os
from pathlib import Path

from kfw.errors import DataError

HOW_TO_AUTHENTICATE = (
    "no Kaggle credentials: create an API token at https://www.kaggle.com/settings and either "
    "save kaggle.json to ~/.kaggle/ (chmod 600) or set KAGGLE_USERNAME and KAGGLE_KEY "
    "(or KAGGLE_API_TOKEN)"
)


def _config_dirs() -> list[Path]:
    if os.environ.get("KAGGLE_CONFIG_DIR"):
        return [Path(os.environ["KAGGLE_CONFIG_DIR"])]
    xdg = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return [Path.home() / ".kaggle", xdg / "kaggle"]


def find_credentials() -> str | None:
    """Where the Kaggle client will find credentials, or None: a description, never the secret."""
    if os.environ.get("KAGGLE_API_TOKEN"):
        return "the KAGGLE_API_TOKEN environment variable"
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return "the KAGGLE_USERNAME / KAGGLE_KEY environment variables"
    for name in ("access_token", "access_token.txt"):
        token = Path.home() / ".kaggle" / name
        if token.is_file() and token.read_text().strip():
            return str(token)
    for folder in _config_dirs():
        if (folder / "kaggle.json").is_file():
            return str(folder / "kaggle.json")
    return None


def _api():  # -> kaggle.api.kaggle_api_extended.KaggleApi
    if find_credentials() is None:
        raise DataError(HOW_TO_AUTHENTICATE)
    try:
        from kaggle.api.kaggle_api_extended import KaggleApi

        api = KaggleApi()
        api.authenticate()
    except SystemExit:  # the client exits the process on bad credentials
        raise DataError(
            "the Kaggle client refused the credentials; " + HOW_TO_AUTHENTICATE
        ) from None
    return api


def download_competition(kaggle_slug: str, dest: Path) -> Path:
    """Download a competition's files (one zip) into ``dest`` and return the zip's path.

    Raises
    ------
    DataError
        No credentials, rules not accepted, unknown competition or a network failure, in one
        line.
    """
    api = _api()
    dest.mkdir(parents=True, exist_ok=True)
    try:
        api.competition_download_files(kaggle_slug, path=str(dest), force=True, quiet=True)
    except Exception as exc:  # the client raises requests/HTTP errors of several kinds
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "403" in reason:
            reason += f" (accept the rules at https://www.kaggle.com/c/{kaggle_slug}/rules)"
        raise DataError(f"download of {kaggle_slug!r} failed: {reason}") from None
    zips = sorted(dest.glob("*.zip"))
    if not zips:
        raise DataError(f"download of {kaggle_slug!r} produced no zip in {dest}")
    return zips[0]
