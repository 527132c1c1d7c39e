"""``kfw writeup``: the public write-up of a competition, generated from its run records."""

from __future__ import annotations

from typing import Annotated

import typer

from kfw.cli.common import Comp, RichProgress, Threads, competition, console, kfw_home


def writeup(
    ctx: typer.Context,
    comp: Comp,
    no_adversarial: Annotated[
        bool,
        typer.Option("--no-adversarial", help="Skip adversarial validation (train vs test)."),
    ] = False,
    threads: Threads = None,
) -> None:
    """Write reports/COMP/writeup.md (charts beside it) and a self-contained writeup.html."""
    spec = competition(ctx, comp)
    from kfw.report.writeup import write_writeup

    result = write_writeup(
        spec,
        kfw_home(ctx),
        adversarial=not no_adversarial,
        threads=threads,
        callback=RichProgress(),
    )
    console().print(f"{result.markdown}\n{result.html}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command()(writeup)
