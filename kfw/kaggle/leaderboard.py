"""Submissions and their leaderboard scores, beside the CV of the run that made them.

The record store
----------------
``$KFW_HOME/submissions/<slug>/submissions.json`` is a JSON list of entries, oldest first,
rewritten whole on every change (a temporary file renamed into place). Each entry has exactly
these keys:

======================= ============== =============================================================
key                     type           meaning
======================= ============== =============================================================
``ref``                 str or null    Kaggle's submission id as a string (``"41234567"``), or
                                       ``"local-<n>"`` on the local leaderboard; null while Kaggle
                                       has not told it (``kfw submissions`` fills it in)
``run``                 str            the run id the submission came from
``file``                str            the submitted CSV, relative to ``$KFW_HOME`` when inside it
                                       (``submissions/<slug>/<run>.csv``), else absolute
``message``             str            the description sent: ``kfw run <run> · CV <metric> <cv>``,
                                       then `` · <the user's -m text>`` when given
``submitted_at``        str            ISO 8601 in UTC, ``2024-06-01T12:00:00+00:00``
``cv``                  float          the CV score of the submission (the run's, or ``--cv``)
``metric``              str            the metric (:mod:`kfw.core.metrics`) of cv, public and private
``greater_is_better``   bool           the metric's direction
``public``              float or null  the public leaderboard score; null until scored
``private``             float or null  the private score: Kaggle shows it once the competition
                                       has ended; the local leaderboard computes it at once and
                                       shows it with ``kfw lb --reveal``
``status``              str            ``pending``, ``complete`` or ``error``
``source``              str            ``kaggle`` (sent through the Kaggle API) or ``local``
======================= ============== =============================================================

The local leaderboard
---------------------
When a competition's data is the embedded open copy (:mod:`kfw.kaggle.opendata`), a submission is
scored like Kaggle scores it (:func:`kfw.kaggle.submit.score_submission`), against the held-out
labels in ``data/<slug>/.open/solution.csv``: the competition metric on the rows marked
``Public`` (shown at once) and on those marked ``Private`` (stored, shown by ``kfw lb
--reveal``), with a daily limit of submissions per UTC day (``KFW_DAILY_SUBMISSIONS``,
default 5).

CV versus leaderboard
---------------------
:func:`spearman` is the rank correlation of CV and leaderboard scores (ties averaged), and
:func:`chasing_warning` says when the leaderboard keeps improving while CV does not.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kfw import files
from kfw.core.config import Competition
from kfw.errors import ConfigError, DataError, KfwError
from kfw.kaggle.client import list_submissions

if TYPE_CHECKING:
    pass

SUBMISSIONS_FILE = "submissions.json"
DAILY_LIMIT_ENV = "KFW_DAILY_SUBMISSIONS"
DEFAULT_DAILY_LIMIT = 5
# the chasing warning looks at this many of the latest scored submissions (at least 3)
CHASE_WINDOW = 5
KEYS = (
    "ref",
    "run",
    "file",
    "message",
    "submitted_at",
    "cv",
    "metric",
    "greater_is_better",
    "public",
    "private",
    "status",
    "source",
)
_RUN_IN_MESSAGE = re.compile(r"kfw run (\S+)")


def submissions_dir(kfw_home: Path, slug: str) -> Path:
    return kfw_home / "submissions" / slug


def now_utc() -> datetime:
    return datetime.now(UTC)


def iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="seconds")


class SubmissionStore:
    """The submissions of one competition: ``submissions/<slug>/submissions.json``."""

    def __init__(self, kfw_home: Path, slug: str) -> None:
        self.home = kfw_home
        self.slug = slug
        self.path = submissions_dir(kfw_home, slug) / SUBMISSIONS_FILE

    def entries(self) -> list[dict[str, Any]]:
        """Every entry, oldest first (an absent file is no submissions)."""
        if not self.path.is_file():
            return []
        try:
            entries = json.loads(self.path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"{self.path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise DataError(f"{self.path}: expected a JSON list of submission entries")
        return entries

    def save(self, entries: list[dict[str, Any]]) -> None:
        """Rewrite the whole list atomically (temporary file, then rename)."""
        files.write_text(self.path, json.dumps(entries, indent=2, ensure_ascii=False) + "\n")

    def append(self, entry: dict[str, Any]) -> None:
        self.save([*self.entries(), entry])

    def relative(self, path: Path) -> str:
        """``path`` relative to ``$KFW_HOME`` when inside it, else absolute (POSIX form)."""
        path = Path(path).resolve()
        try:
            return path.relative_to(self.home.resolve()).as_posix()
        except ValueError:
            return path.as_posix()


def compose_message(run_id: str, metric: str, cv: float, text: str = "") -> str:
    """The description sent with a submission: the run id and CV, then the user's text."""
    message = f"kfw run {run_id} · CV {metric} {cv:.5f}"
    return f"{message} · {text}" if text else message


def run_in_message(message: str) -> str | None:
    match = _RUN_IN_MESSAGE.search(message or "")
    return match.group(1) if match else None


def user_text(message: str) -> str:
    """The user's part of a message that :func:`compose_message` wrote ('' if none)."""
    parts = (message or "").split(" · ", 2)
    return parts[2] if len(parts) == 3 and parts[0].startswith("kfw run ") else ""


def new_entry(
    *,
    ref: str | None,
    run: str,
    file: str,
    message: str,
    submitted_at: datetime,
    cv: float,
    metric: str,
    greater_is_better: bool,
    source: str,
    public: float | None = None,
    private: float | None = None,
    status: str = "pending",
) -> dict[str, Any]:
    """One entry of ``submissions.json``, keys in the documented order."""
    entry = {
        "ref": ref,
        "run": run,
        "file": file,
        "message": message,
        "submitted_at": iso(submitted_at),
        "cv": float(cv),
        "metric": metric,
        "greater_is_better": bool(greater_is_better),
        "public": None if public is None else float(public),
        "private": None if private is None else float(private),
        "status": status,
        "source": source,
    }
    assert tuple(entry) == KEYS
    return entry


# ---------------------------------------------------------------------------------------------
# the local leaderboard


def daily_limit() -> int:
    """Local submissions allowed per UTC day: ``KFW_DAILY_SUBMISSIONS``, default 5."""
    raw = os.environ.get(DAILY_LIMIT_ENV, "")
    if not raw:
        return DEFAULT_DAILY_LIMIT
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 1:
        raise ConfigError(f"{DAILY_LIMIT_ENV}={raw!r} is not a positive integer")
    return value


def submitted_on(entries: list[dict[str, Any]], day: datetime, source: str = "local") -> int:
    """How many ``source`` submissions were made on the UTC day of ``day``."""
    date = day.astimezone(UTC).date()
    return sum(
        1
        for e in entries
        if e["source"] == source
        and datetime.fromisoformat(e["submitted_at"]).astimezone(UTC).date() == date
    )


def check_daily_limit(entries: list[dict[str, Any]], slug: str, now: datetime, limit: int) -> int:
    """Raise :class:`KfwError` when the day's local submissions are used up; else the count."""
    done = submitted_on(entries, now)
    if done >= limit:
        raise KfwError(
            f"daily submission limit reached: {done} of {limit} local submissions of {slug} on "
            f"{now.astimezone(UTC).date()} (UTC); the next one is possible after 00:00 UTC "
            f"({DAILY_LIMIT_ENV} sets the limit)"
        )
    return done


def local_ref(entries: list[dict[str, Any]]) -> str:
    n = sum(1 for e in entries if e["source"] == "local")
    return f"local-{n + 1}"


# ---------------------------------------------------------------------------------------------
# Kaggle's scores


@dataclass
class Fetched:
    """What :func:`merge_kaggle` did: entries updated, Kaggle submissions kfw did not make."""

    updated: int
    unknown: int
    errors: dict[str, str]


def merge_kaggle(entries: list[dict[str, Any]], remote: list[dict[str, Any]]) -> Fetched:
    """Store Kaggle's scores in the matching entries (in place).

    A Kaggle submission matches the entry with its ref; else the oldest entry without a ref
    whose file name or run id (in the message) matches, which then takes the ref.
    """
    ours = [e for e in entries if e["source"] == "kaggle"]
    by_ref = {e["ref"]: e for e in ours if e["ref"]}
    waiting = [e for e in ours if not e["ref"]]
    updated, unknown, errors = 0, 0, {}
    for r in sorted(remote, key=lambda r: r["date"] or ""):
        entry = by_ref.get(r["ref"])
        if entry is None:
            entry = next(
                (
                    e
                    for e in waiting
                    if Path(e["file"]).name == r["file_name"]
                    or (run_in_message(r["description"]) or "") == e["run"]
                ),
                None,
            )
            if entry is None:
                unknown += 1
                continue
            waiting.remove(entry)
            entry["ref"] = r["ref"]
        entry.update(public=r["public"], private=r["private"], status=r["status"])
        if r["status"] == "error":
            errors[r["ref"]] = r["error"] or "no reason given"
        updated += 1
    return Fetched(updated, unknown, errors)


def fetch_kaggle_scores(spec: Competition, kfw_home: Path) -> Fetched:
    """List the competition's submissions on Kaggle and store their scores."""

    store = SubmissionStore(kfw_home, spec.slug)
    remote = list_submissions(spec.kaggle)
    entries = store.entries()  # read after the (slow) listing: the freshest copy is updated
    fetched = merge_kaggle(entries, remote)
    store.save(entries)
    return fetched


# ---------------------------------------------------------------------------------------------
# CV versus leaderboard


def _ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties given the mean of the ranks they span."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    first = np.r_[True, xs[1:] != xs[:-1]]
    starts = np.r_[np.flatnonzero(first), len(x)]  # (n_groups + 1,)
    mean_rank = (starts[:-1] + 1 + starts[1:]) / 2.0  # group s..e-1 holds ranks s+1..e
    ranks = np.empty(len(x))
    ranks[order] = mean_rank[np.cumsum(first) - 1]
    return ranks


def spearman(x: np.ndarray | list[float], y: np.ndarray | list[float]) -> float:
    """Spearman's rank correlation: Pearson's r of the average ranks (NaN when undefined)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) != len(y):
        raise ValueError(f"spearman: {len(x)} and {len(y)} values")
    if len(x) < 2:
        return float("nan")
    rx, ry = _ranks(x), _ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = np.sqrt((rx**2).sum() * (ry**2).sum())
    return float((rx * ry).sum() / denom) if denom > 0 else float("nan")


def scored(entries: list[dict[str, Any]], part: str = "public") -> list[dict[str, Any]]:
    """Entries with a CV and a ``part`` score, in time order."""
    done = [e for e in entries if e.get(part) is not None and e.get("cv") is not None]
    return sorted(done, key=lambda e: e["submitted_at"])


def chasing_warning(entries: list[dict[str, Any]], window: int = CHASE_WINDOW) -> str | None:
    """A warning when the public leaderboard keeps improving while CV does not.

    Over the last ``window`` submissions with a public score, in time order (at least 3), with
    scores signed so that larger is better: the public score improved in a strict majority of
    the steps between consecutive submissions and from the first to the last, while the CV of
    the last is no better than the CV of the first (worse or flat). Returns None otherwise.
    """
    recent = scored(entries)[-window:]
    if len(recent) < 3:
        return None
    sign = 1.0 if recent[-1]["greater_is_better"] else -1.0
    pub = sign * np.array([e["public"] for e in recent])
    cv = sign * np.array([e["cv"] for e in recent])
    ups = int((np.diff(pub) > 0).sum())
    steps = len(recent) - 1
    if ups * 2 > steps and pub[-1] > pub[0] and cv[-1] <= cv[0]:
        first, last = recent[0], recent[-1]
        return (
            f"the public leaderboard improved in {ups} of the last {steps} steps "
            f"({first['public']:.5f} -> {last['public']:.5f}) while CV did not "
            f"({first['cv']:.5f} -> {last['cv']:.5f}): the public split is being fitted, "
            "trust CV"
        )
    return None


def correlations(entries: list[dict[str, Any]]) -> list[str]:
    """One line per leaderboard part: the rank correlation of CV with its scores."""
    lines = []
    for part in ("public", "private"):
        both = scored(entries, part)
        if len(both) < 3:
            if part == "public":
                lines.append(f"CV vs public: {len(both)} scored submissions; ranks need 3")
            continue
        rho = spearman([e["cv"] for e in both], [e[part] for e in both])
        value = f"{rho:.3f}" if np.isfinite(rho) else "undefined (CV or score never changes)"
        lines.append(
            f"CV vs {part}: Spearman rank correlation {value} over {len(both)} submissions"
        )
    return lines


def best_cv(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The entry with the best CV (the earliest among equals)."""
    return _order(entries, "cv")[0]


@dataclass
class Standing:
    """One submission on the leaderboard: its ranks by public and by private score."""

    entry: dict[str, Any]
    public_rank: int
    private_rank: int | None


def _order(entries: list[dict[str, Any]], part: str) -> list[dict[str, Any]]:
    # best first; a tie goes to the earlier submission, as on Kaggle
    def key(e: dict[str, Any]) -> tuple[float, str]:
        sign = -1.0 if e["greater_is_better"] else 1.0
        return sign * e[part], e["submitted_at"]

    return sorted(entries, key=key)


def standings(entries: list[dict[str, Any]], source: str | None = "local") -> list[Standing]:
    """The scored submissions (of ``source``), best public first, with both ranks."""
    pool = [
        e for e in entries if e["public"] is not None and (source is None or e["source"] == source)
    ]
    public = _order(pool, "public")
    with_private = [e for e in pool if e["private"] is not None]
    private_rank = {id(e): i + 1 for i, e in enumerate(_order(with_private, "private"))}
    return [Standing(e, i + 1, private_rank.get(id(e))) for i, e in enumerate(public)]


def plot_cv_vs_lb(entries: list[dict[str, Any]], slug: str, path: Path) -> Path:
    """Scatter of CV (x) against public (and private, when known) scores; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    public, private = scored(entries, "public"), scored(entries, "private")
    if not public:
        raise KfwError(f"no scored submissions of {slug} to plot yet")

    def label(part: str, done: list[dict[str, Any]]) -> str:
        rho = spearman([e["cv"] for e in done], [e[part] for e in done])
        return f"{part} (Spearman ρ {rho:.2f})" if np.isfinite(rho) else f"{part} (ρ undefined)"

    fig, ax = plt.subplots(figsize=(6, 5))
    ax.scatter(
        [e["cv"] for e in public], [e["public"] for e in public], label=label("public", public)
    )
    for i, e in enumerate(public, 1):
        ax.annotate(str(i), (e["cv"], e["public"]), textcoords="offset points", xytext=(4, 4))
    if private:
        ax.scatter(
            [e["cv"] for e in private],
            [e["private"] for e in private],
            marker="x",
            label=label("private", private),
        )
    values = [
        e[k] for e in public + private for k in ("cv", "public", "private") if e[k] is not None
    ]
    lo, hi = min(values), max(values)
    ax.plot([lo, hi], [lo, hi], linestyle="--", color="grey", linewidth=1, label="y = x")
    metric = public[-1]["metric"]
    ax.set(
        xlabel=f"CV {metric}", ylabel=f"leaderboard {metric}", title=f"{slug}: CV vs leaderboard"
    )
    ax.legend()
    fig.tight_layout()
    try:
        return files.write_with(path, lambda tmp: fig.savefig(tmp, dpi=100), suffix=path.suffix)
    finally:
        plt.close(fig)
