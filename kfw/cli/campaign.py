"""``kfw campaign`` and ``kfw select``: a live competition at a glance, and the final two."""

from __future__ import annotations

import typer

from kfw.cli.common import Comp, competition, console, fmt_score, kfw_home


def _data_hash(ctx: typer.Context, comp: str) -> str | None:
    from kfw.kaggle.data import data_dir, has_data, read_dataset

    spec = competition(ctx, comp)
    if not has_data(spec, kfw_home(ctx)):
        return None
    return read_dataset(spec, data_dir(kfw_home(ctx), comp)).hash


def campaign(ctx: typer.Context, comp: Comp) -> None:
    """Days left, submissions left today, unsubmitted best runs, CV against the leaderboard."""
    from rich.table import Table

    from kfw.kaggle.campaign import status

    spec = competition(ctx, comp)
    s = status(spec, kfw_home(ctx), _data_hash(ctx, comp))
    when = (
        f"{s.days_left:.1f} days left (deadline {s.deadline})"
        if s.days_left is not None
        else 'no deadline set (deadline = "YYYY-MM-DD" in competition.toml)'
    )
    console().print(
        f"{comp}: {when}; {s.left_today} of {s.daily_limit} submissions left today (UTC)",
        highlight=False,
    )
    table = Table("best runs not yet submitted", spec.metric, "folds mean ± std", title=None)
    for r in s.unsubmitted:
        table.add_row(r["id"], fmt_score(r["score"]), f"{r['mean']:.5f} ± {r['std']:.5f}")
    console().print(table)
    lb = Table("submitted", "run", "CV", "public", "private")
    for e in s.entries:
        lb.add_row(
            e["submitted_at"][:16],
            e["run"],
            fmt_score(e.get("cv")),
            fmt_score(e.get("public")),
            fmt_score(e.get("private")),
        )
    console().print(lb if s.entries else "no submissions yet")
    for line in s.correlation_lines:
        console().print(line, highlight=False)
    if s.warning:
        console().print(f"[yellow]warning:[/] {s.warning}", highlight=False)


def select(ctx: typer.Context, comp: Comp) -> None:
    """Recommend the two final submissions by CV (the best, and the least correlated near-best)."""
    from kfw.kaggle.campaign import select_finals

    spec = competition(ctx, comp)
    for i, pick in enumerate(select_finals(spec, kfw_home(ctx), _data_hash(ctx, comp)), 1):
        console().print(
            f"{i}. {pick.run['id']} ({pick.run['label']}): {pick.reason}", highlight=False
        )
    console().print(
        "chosen by CV alone: the public leaderboard is a sample of the test set, not its verdict",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command()(campaign)
    app.command()(select)
