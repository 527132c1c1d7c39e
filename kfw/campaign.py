"""A live competition's campaign: where it stands, and which two runs to submit at the end.

:func:`status` gathers one screen: days to the deadline, submissions left today, the best
runs by CV not yet submitted, the CV-versus-public table with its rank correlation, and the
warning that the public leaderboard is being chased. :func:`select_finals` recommends the
two final submissions by CV alone — the best run, and a hedge: among the runs whose CV is
within one fold-standard-deviation of the best, the one whose out-of-fold predictions are
least correlated with the best's (when the private split favours another kind of model,
this one is the most likely to hold up) — never by public score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from kfw.config import Competition
from kfw.errors import KfwError
from kfw.leaderboard import SubmissionStore, chasing_warning, correlations, now_utc, submitted_on
from kfw.track import RunStore, best_first, frame_prediction


@dataclass
class Status:
    """One screen of a campaign."""

    deadline: str
    days_left: float | None
    daily_limit: int
    used_today: int
    unsubmitted: list[dict[str, Any]]
    entries: list[dict[str, Any]]
    correlation_lines: list[str] = field(default_factory=list)
    warning: str | None = None

    @property
    def left_today(self) -> int:
        return max(0, self.daily_limit - self.used_today)


def _current(records: list[dict[str, Any]], data_hash: str | None) -> list[dict[str, Any]]:
    if data_hash is None:
        return records
    return [r for r in records if r["data"]["hash"] == data_hash]


def status(
    spec: Competition,
    kfw_home: Path,
    data_hash: str | None = None,
    top: int = 5,
    now: datetime | None = None,
) -> Status:
    """Gather the campaign screen of ``spec`` (runs on ``data_hash`` only, when given)."""
    now = now or now_utc()
    entries = SubmissionStore(kfw_home, spec.slug).entries()
    submitted = {e["run"] for e in entries}
    runs = best_first(_current(RunStore(kfw_home, spec.slug).records(), data_hash))
    days = None
    if spec.deadline:
        end = datetime.fromisoformat(spec.deadline)
        end = end.replace(tzinfo=UTC) if end.tzinfo is None else end
        days = (end - now).total_seconds() / 86_400
    source = "kaggle" if any(e["source"] == "kaggle" for e in entries) else "local"
    return Status(
        deadline=spec.deadline,
        days_left=days,
        daily_limit=spec.daily_submissions,
        used_today=submitted_on(entries, now, source),
        unsubmitted=[r for r in runs if r["id"] not in submitted][:top],
        entries=entries,
        correlation_lines=correlations(entries),
        warning=chasing_warning(entries),
    )


@dataclass
class Pick:
    """A recommended final submission and why."""

    run: dict[str, Any]
    reason: str


def select_finals(spec: Competition, kfw_home: Path, data_hash: str | None = None) -> list[Pick]:
    """The two final submissions, chosen by CV (see the module docstring)."""
    store = RunStore(kfw_home, spec.slug)
    runs = [
        r for r in best_first(_current(store.records(), data_hash)) if r.get("score") is not None
    ]
    if not runs:
        raise KfwError(f"no runs for {spec.slug}: run `kfw cv {spec.slug}` first")
    best = runs[0]
    fold_hash = best["folds"]["hash"]
    picks = [
        Pick(
            best,
            f"the best CV: {best['metric']} {best['score']:.5f} (± {best['std']:.5f} over folds)",
        )
    ]
    sign = 1.0 if best["greater_is_better"] else -1.0
    near = [
        r
        for r in runs[1:]
        if r["folds"]["hash"] == fold_hash and sign * (best["score"] - r["score"]) <= best["std"]
    ]
    if not near:
        if len(runs) > 1:
            picks.append(
                Pick(
                    runs[1],
                    f"the second-best CV ({runs[1]['score']:.5f}); no other run is within one fold-std of the best",
                )
            )
        return picks
    ref = frame_prediction(store.frame(best["id"], "oof.parquet")).reshape(-1)
    scored = []
    for r in near:
        other = frame_prediction(store.frame(r["id"], "oof.parquet")).reshape(-1)
        ok = np.isfinite(ref) & np.isfinite(other)
        corr = float(np.corrcoef(ref[ok], other[ok])[0, 1]) if ok.sum() > 2 else 1.0
        scored.append((corr, r))
    corr, hedge = min(scored, key=lambda x: x[0])
    picks.append(
        Pick(
            hedge,
            f"CV {hedge['score']:.5f}, within one fold-std ({best['std']:.5f}) of the best, and the least "
            f"correlated with it of {len(near)} such runs (out-of-fold correlation {corr:.3f}): a hedge "
            "if the private split favours another kind of model",
        )
    )
    return picks
