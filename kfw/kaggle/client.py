"""The one place kfw talks to Kaggle, through the official ``kaggle`` client.

``import kaggle`` authenticates at import time (and exits the process when it cannot), so the
client is imported only inside the functions that need it, after :func:`find_credentials` has
established that credentials exist. Credentials are never printed or logged: the client's own
prints are captured (it prints warnings and upload errors to stdout), and any text of the
client that reaches a kfw message passes through :func:`scrub` first.

The client reads its environment once, when ``kaggle`` is first imported: the config folder
(``KAGGLE_CONFIG_DIR``) and the endpoint (``KAGGLE_API_ENVIRONMENT=LOCALHOST`` sends every call
to ``http://localhost``, which is how the tests run it against a fake server).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kfw.errors import DataError, KfwError

HOW_TO_AUTHENTICATE = (
    "no Kaggle credentials: create an API token at https://www.kaggle.com/settings and either "
    "save kaggle.json to ~/.kaggle/ (chmod 600) or set KAGGLE_USERNAME and KAGGLE_KEY "
    "(or KAGGLE_API_TOKEN)"
)
# the most submissions one listing reads (Kaggle's pages hold up to 100)
_PAGE_SIZE = 100
_MAX_PAGES = 50


def _config_dirs() -> list[Path]:
    if os.environ.get("KAGGLE_CONFIG_DIR"):
        return [Path(os.environ["KAGGLE_CONFIG_DIR"])]
    xdg = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return [Path.home() / ".kaggle", xdg / "kaggle"]


def _kaggle_json() -> Path | None:
    for folder in _config_dirs():
        if (folder / "kaggle.json").is_file():
            return folder / "kaggle.json"
    return None


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
    path = _kaggle_json()
    return str(path) if path else None


def permissions_warning() -> str | None:
    """A one-line warning when ``kaggle.json`` is readable by the group or by everyone.

    Only the file the client will read is checked, and only when it is the credentials in use
    (environment variables take precedence).
    """
    path = _kaggle_json()
    if path is None or find_credentials() != str(path):
        return None
    mode = stat.S_IMODE(path.stat().st_mode)
    if os.name == "nt" or not mode & 0o044:
        return None
    return f"{path} is readable by other users (mode {mode:03o}): chmod 600 {path}"


def _secrets() -> list[str]:
    """Every credential value the client might use, raw and as HTTP basic auth sends it."""
    found = [os.environ.get(v, "") for v in ("KAGGLE_KEY", "KAGGLE_API_TOKEN")]
    user = os.environ.get("KAGGLE_USERNAME", "")
    path = _kaggle_json()
    if path is not None:
        try:
            data = json.loads(path.read_text())
            found.append(str(data.get("key", "")))
            user = user or str(data.get("username", ""))
        except (OSError, ValueError, AttributeError):
            pass  # unreadable or not a JSON object: nothing in it can leak through kfw
    for name in ("access_token", "access_token.txt"):
        token = Path.home() / ".kaggle" / name
        if token.is_file():
            found.append(token.read_text().strip())
    secrets = [s for s in found if len(s) >= 4]
    secrets += [base64.b64encode(f"{user}:{s}".encode()).decode() for s in secrets]
    return sorted(set(secrets), key=len, reverse=True)


def scrub(text: str) -> str:
    """``text`` with every credential value replaced by ``***``."""
    for secret in _secrets():
        text = text.replace(secret, "***")
    return text


def _reason(exc: BaseException, captured: str = "") -> str:
    """The first line of an exception (or of what the client printed), scrubbed."""
    text = str(exc).strip() or captured.strip() or type(exc).__name__
    return scrub(text.splitlines()[0])


@contextlib.contextmanager
def _quiet() -> Iterator[io.StringIO]:
    """Capture what the client prints: kfw's library code never prints, and neither does it."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        yield buffer


def _api():  # -> kaggle.api.kaggle_api_extended.KaggleApi
    if find_credentials() is None:
        raise DataError(HOW_TO_AUTHENTICATE)
    try:
        with _quiet():  # the client prints a permissions warning of its own; kfw reports one
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
        with _quiet():
            api.competition_download_files(kaggle_slug, path=str(dest), force=True, quiet=True)
    except Exception as exc:  # the client raises requests/HTTP errors of several kinds
        reason = _reason(exc)
        if "403" in reason:
            reason += f" (accept the rules at https://www.kaggle.com/c/{kaggle_slug}/rules)"
        raise DataError(f"download of {kaggle_slug!r} failed: {reason}") from None
    zips = sorted(dest.glob("*.zip"))
    if not zips:
        raise DataError(f"download of {kaggle_slug!r} produced no zip in {dest}")
    return zips[0]


def submit_file(kaggle_slug: str, path: Path, message: str) -> str | None:
    """Upload ``path`` and create a submission; return Kaggle's submission ref (or None).

    The client uploads to the URL that ``StartSubmissionUpload`` hands out, then calls
    ``CreateSubmission`` with the upload's token. Kaggle scores asynchronously: the score comes
    later, from :func:`list_submissions`.

    Raises
    ------
    KfwError
        No credentials, a failed upload (nothing was submitted), or a refusal by Kaggle (rules
        not accepted, daily limit reached, unknown competition), in one line.
    """
    api = _api()
    with _quiet() as printed:
        try:
            response = api.competition_submit(str(path), message, kaggle_slug, quiet=True)
        except Exception as exc:  # requests' HTTP and connection errors, the client's own
            reason = _reason(exc)
            if "403" in reason:
                reason += f" (accept the rules at https://www.kaggle.com/c/{kaggle_slug}/rules)"
            raise KfwError(
                f"submission of {path.name} to {kaggle_slug!r} failed: {reason}"
            ) from None
    if response.message == api.COMPETITION_SUBMIT_UPLOAD_FAILED_MESSAGE:
        detail = scrub(printed.getvalue().strip().splitlines()[-1]) if printed.getvalue() else ""
        raise KfwError(
            f"upload of {path.name} to {kaggle_slug!r} failed; nothing was submitted"
            + (f": {detail}" if detail else "")
        )
    return str(response.ref) if response.ref else None


def _score(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _submission(s: Any) -> dict[str, Any]:
    date = s.date.isoformat(timespec="seconds") + "+00:00" if s.date else None
    return {
        "ref": str(s.ref),
        "date": date,  # Kaggle's dates are UTC
        "description": s.description or "",
        "file_name": s.file_name or "",
        "public": _score(s.public_score),
        "private": _score(s.private_score),
        "status": getattr(s.status, "name", str(s.status)).lower(),
        "error": s.error_description or None,
    }


def list_submissions(kaggle_slug: str) -> list[dict[str, Any]]:
    """The user's submissions to a competition, newest first, as plain dicts.

    Each has ``ref`` (str), ``date`` (ISO, UTC), ``description``, ``file_name``, ``public`` and
    ``private`` (float or None: Kaggle shows the private score only after the competition
    ends), ``status`` (``pending`` / ``complete`` / ``error``) and ``error``.
    """
    api = _api()
    found: list[dict[str, Any]] = []
    try:
        with _quiet():
            for page in range(1, _MAX_PAGES + 1):
                batch = api.competition_submissions(
                    kaggle_slug, page_number=page, page_size=_PAGE_SIZE
                )
                batch = [s for s in batch or [] if s is not None]
                found += [_submission(s) for s in batch]
                if len(batch) < _PAGE_SIZE:
                    break
    except Exception as exc:  # requests' HTTP and connection errors, the client's own
        raise KfwError(
            f"listing the submissions to {kaggle_slug!r} failed: {_reason(exc)}"
        ) from None
    return found


# Kaggle's evaluation-metric names (as the competition list reports them) -> kfw's
KAGGLE_METRICS = {
    "auc": "roc_auc",
    "roc auc": "roc_auc",
    "area under receiver operating characteristic curve": "roc_auc",
    "logloss": "log_loss",
    "log loss": "log_loss",
    "multiclass loss": "log_loss",
    "categorization accuracy": "accuracy",
    "accuracy": "accuracy",
    "accuracy score": "accuracy",
    "f1 score": "f1",
    "meanfscore": "f1",
    "root mean squared error": "rmse",
    "rmse": "rmse",
    "root mean squared logarithmic error": "rmsle",
    "rmsle": "rmsle",
    "mean absolute error": "mae",
    "mae": "mae",
    "r2 score": "r2",
    "quadratic weighted kappa": "qwk",
    "map@3": "map@3",
    "mean average precision @ 3": "map@3",
}


def competition_metric(kaggle_slug: str) -> str | None:
    """kfw's name of a competition's evaluation metric, from the Kaggle API (None if unknown)."""
    api = _api()
    try:
        with _quiet():
            response = api.competitions_list(search=kaggle_slug)
    except Exception as exc:  # the client raises requests/HTTP errors of several kinds
        raise DataError(f"cannot read the metadata of {kaggle_slug!r}: {_reason(exc)}") from None
    for competition in getattr(response, "competitions", None) or []:
        ref = str(getattr(competition, "ref", "")).rstrip("/").rsplit("/", 1)[-1]
        if ref == kaggle_slug:
            name = str(getattr(competition, "evaluation_metric", "") or "").strip().lower()
            return KAGGLE_METRICS.get(name)
    return None
