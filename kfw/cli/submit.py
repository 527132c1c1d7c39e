"""``kfw submit``, ``kfw submissions``, ``kfw lb``: submissions, their scores, the leaderboard."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kfw.cli.common import Comp, RichProgress, competition, console, fmt_score, kfw_home

if TYPE_CHECKING:
    from rich.table import Table


def submit(
    ctx: typer.Context,
    comp: Comp,
    run: Annotated[
        str | None, typer.Option(help="Run id (default: the best run on the current data).")
    ] = None,
    message: Annotated[
        str, typer.Option("--message", "-m", help="Text added to the submission's description.")
    ] = "",
    file: Annotated[
        Path | None,
        typer.Option(help="Send this CSV (made from --run, e.g. edited) instead of the run's."),
    ] = None,
    cv: Annotated[
        float | None, typer.Option(help="The CV to record for --file (default: the run's).")
    ] = None,
    output: Annotated[Path | None, typer.Option(help="Where to write the submission CSV.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate and write the file; do not send it.")
    ] = False,
) -> None:
    """Validate a run's submission and send it: to Kaggle, or to the local leaderboard of an
    open copy. The submission is recorded beside the run's CV."""
    from kfw.kaggle.submit import submit_run

    progress = RichProgress()
    done = submit_run(
        competition(ctx, comp),
        kfw_home(ctx),
        run,
        message=message,
        file=file,
        cv=cv,
        dry_run=dry_run,
        output=output,
        report=progress,
    )
    r = done.run
    if done.choice is not None:
        _explain(done.choice)
    console().print(
        f"{done.path}: {done.rows} rows, valid · run {r['id']} (CV {r['metric']} {fmt_score(r['score'])})",
        highlight=False,
    )
    e = done.entry
    if e is None:
        return
    if e["source"] == "local":
        console().print(
            f"local leaderboard: public {e['metric']} {fmt_score(e['public'])} · {e['ref']} "
            f"({done.today} of {done.limit} today); the private score stays hidden until "
            f"`kfw lb {comp} --reveal`",
            highlight=False,
        )
        return
    ref = e["ref"] or "ref not known yet"
    score = (
        f"public {e['metric']} {fmt_score(e['public'])}"
        if e["public"] is not None
        else f"{e['status']}: `kfw submissions {comp}` fetches the score"
    )
    console().print(f"submitted to Kaggle ({ref}) · {score}", highlight=False)


def _explain(choice: Any) -> None:
    """Why the default run was chosen, and which runs CV could not tell apart (kfw.core.noise)."""
    from kfw.core.noise import LEVEL

    pick, best = choice.run, choice.best
    console().print(f"chose {pick['id']}: {choice.reason}", highlight=False)
    if pick is not best:
        console().print(
            f"  best CV: {best['id']} ({best['metric']} {fmt_score(best['score'])})",
            highlight=False,
        )
    near = [c for c in choice.compared[1:] if c.indistinguishable]
    if near:
        shown = ", ".join(
            f"{c.record['label']} {c.difference.mean:+.5f} [{c.difference.low:+.5f}, {c.difference.high:+.5f}]"
            for c in near
        )
        console().print(
            f"  within noise of the best ({LEVEL:.0%} paired intervals of the difference): {shown}",
            highlight=False,
        )
    optimistic = [r for r, why in choice.skipped if why.startswith("optimistic")]
    if optimistic:
        console().print(
            f"  left out, optimistic CV: {', '.join(r['id'] for r in optimistic)}", highlight=False
        )


def _when(entry: dict[str, Any]) -> str:
    return entry["submitted_at"][:16].replace("T", " ")


def _table(entries: list[dict[str, Any]]) -> Table:
    from rich.table import Table

    from kfw.kaggle.leaderboard import user_text

    metric = entries[-1]["metric"]
    table = Table(
        "ref", "run", "submitted (UTC)", "source", f"CV {metric}", "public", "private", "status",
        "note",
    )  # fmt: skip
    for e in entries:
        table.add_row(
            e["ref"] or "-",
            e["run"],
            _when(e),
            e["source"],
            fmt_score(e["cv"]),
            fmt_score(e["public"]),
            fmt_score(e["private"]),
            e["status"],
            user_text(e["message"]),
        )
    return table


def submissions(
    ctx: typer.Context,
    comp: Comp,
    plot: Annotated[
        bool, typer.Option("--plot", help="Write submissions/COMP/cv_vs_lb.png (CV vs LB).")
    ] = False,
    offline: Annotated[
        bool, typer.Option("--offline", help="Show the stored scores; do not ask Kaggle.")
    ] = False,
) -> None:
    """The competition's submissions with CV beside the leaderboard scores (fetched from Kaggle),
    their rank correlation, and a warning when the leaderboard is being chased."""
    from kfw.kaggle.leaderboard import (
        SubmissionStore,
        chasing_warning,
        correlations,
        fetch_kaggle_scores,
        plot_cv_vs_lb,
        submissions_dir,
    )
    from kfw.kaggle.submit import check_kaggle_credentials

    spec, home, progress = competition(ctx, comp), kfw_home(ctx), RichProgress()
    store = SubmissionStore(home, comp)
    if not offline and any(e["source"] == "kaggle" for e in store.entries()):
        check_kaggle_credentials(progress, f"or `kfw submissions {comp} --offline`")
        fetched = fetch_kaggle_scores(spec, home)
        for ref, reason in fetched.errors.items():
            progress.warning(f"Kaggle could not score submission {ref}: {reason}")
        if fetched.unknown:
            progress.info(f"{fetched.unknown} submissions on Kaggle were not made by kfw")
    entries = store.entries()
    if not entries:
        console().print(f"no submissions of {comp} yet: `kfw submit {comp}`")
        return
    console().print(_table(entries))
    for line in correlations(entries):
        console().print(line, highlight=False)
    warning = chasing_warning(entries)
    if warning:
        progress.warning(warning)
    if plot:
        path = plot_cv_vs_lb(entries, comp, submissions_dir(home, comp) / "cv_vs_lb.png")
        console().print(f"plot: {path}", highlight=False)


def lb(
    ctx: typer.Context,
    comp: Comp,
    reveal: Annotated[
        bool, typer.Option("--reveal", help="Show the private scores and the shake-up.")
    ] = False,
) -> None:
    """The local leaderboard of the open copy: your submissions, best public score first."""
    from rich.table import Table

    from kfw.kaggle.leaderboard import (
        SubmissionStore,
        best_cv,
        chasing_warning,
        standings,
        user_text,
    )

    competition(ctx, comp)
    rows = standings(SubmissionStore(kfw_home(ctx), comp).entries())
    if not rows:
        console().print(
            f"no local submissions of {comp}: `kfw submit {comp}` on the open copy scores "
            "against its held-out labels"
        )
        return
    metric = rows[0].entry["metric"]
    extra = ["private", "private #", "shake-up"] if reveal else []
    table = Table("#", "ref", "run", f"CV {metric}", "public", *extra, "submitted (UTC)", "note")
    for s in rows:
        e, move = s.entry, s.public_rank - (s.private_rank or 0)
        shown = [fmt_score(e["private"]), str(s.private_rank), f"{move:+d}" if move else "0"]
        table.add_row(
            str(s.public_rank), e["ref"], e["run"], fmt_score(e["cv"]), fmt_score(e["public"]),
            *(shown if reveal else []), _when(e), user_text(e["message"]),
        )  # fmt: skip
    console().print(table)
    if reveal:
        picks = (("best public", rows[0].entry), ("best CV", best_cv([s.entry for s in rows])))
        for what, e in picks:
            console().print(
                f"{what}: {e['ref']} · CV {fmt_score(e['cv'])} · public {fmt_score(e['public'])} "
                f"· private {fmt_score(e['private'])}",
                highlight=False,
            )
    warning = chasing_warning([s.entry for s in rows])
    if warning:
        RichProgress().warning(warning)


def register(app: typer.Typer) -> None:
    app.command()(submit)
    app.command()(submissions)
    app.command()(lb)
