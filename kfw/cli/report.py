"""``kfw report``: one classification run's evaluation, its curves and tables."""

from __future__ import annotations

from typing import Annotated

import typer

from kfw.cli.common import Comp, competition, console, kfw_home


def report(
    ctx: typer.Context,
    comp: Comp,
    run: Annotated[str, typer.Argument(help="A run id (see `kfw runs COMP`).")],
) -> None:
    """Write reports/COMP/evaluation/RUN/: ROC, PR, confusion, reliability, score distributions."""
    spec = competition(ctx, comp)
    from kfw.report.evaluation import write_evaluation

    folder = write_evaluation(spec, kfw_home(ctx), run)
    console().print(f"{folder / 'evaluation.md'}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command()(report)
