"""A live competition's campaign: where it stands, and which two runs to submit at the end.

:func:`status` gathers one screen: days to the deadline, submissions left today, the best
runs by CV not yet submitted, the CV-versus-public table with its rank correlation, and the
warning that the public leaderboard is being chased. :func:`select_finals` recommends the
two final submissions by CV alone, never by public score: first the run ``kfw submit``
chooses by default (:func:`kfw.core.noise.choose`: honest runs only; among those within noise of
the best CV, an ensemble, else the simplest), then a hedge: among the runs within noise of
the best, the one whose out-of-fold predictions are least correlated with the first pick's
(when the private split favours another kind of model, this one is the most likely to hold
up).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from kfw.core.config import Competition
from kfw.core.folds import stored_hash
from kfw.core.noise import choose_from_store
from kfw.core.runstore import RunStore, best_first, frame_prediction
from kfw.errors import KfwError
from kfw.kaggle.data import data_dir
from kfw.kaggle.leaderboard import (
    SubmissionStore,
    chasing_warning,
    correlations,
    now_utc,
    submitted_on,
)


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
    """The two final submissions, chosen by CV under noise (see the module docstring)."""

    store = RunStore(kfw_home, spec.slug)
    records = [r for r in store.records() if r.get("score") is not None]
    if not records:
        raise KfwError(f"no runs for {spec.slug}: run `kfw cv {spec.slug}` first")
    fold_hash = stored_hash(data_dir(kfw_home, spec.slug), spec.folds)
    newest = max(records, key=lambda r: r.get("finished") or "")
    choice = choose_from_store(
        store,
        records,
        data_hash or newest["data"]["hash"],
        fold_hash or newest["folds"]["hash"],
    )
    first = choice.run
    picks = [Pick(first, f"{first['metric']} {first['score']:.5f}: {choice.reason}")]
    near = [
        c.record for c in choice.compared if c.indistinguishable and c.record["id"] != first["id"]
    ]
    near = [r for r in near if not r.get("optimistic")]
    if not near:
        others = [c.record for c in choice.compared if c.record["id"] != first["id"]]
        if others:
            picks.append(
                Pick(
                    others[0],
                    f"the next-best CV ({others[0]['score']:.5f}); no other run is within noise "
                    "of the best",
                )
            )
        return picks
    ref = frame_prediction(store.frame(first["id"], "oof.parquet")).reshape(-1)
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
            f"CV {hedge['score']:.5f}, within noise of the best (95% paired interval), and the "
            f"least correlated with the first pick of {len(near)} such runs (out-of-fold "
            f"correlation {corr:.3f}): a hedge if the private split favours another kind of model",
        )
    )
    return picks
