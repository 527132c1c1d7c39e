"""``kfw errors``: where a run goes wrong, from its out-of-fold predictions."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from kfw.cli.common import Comp, competition, console, kfw_home


def errors(
    ctx: typer.Context,
    comp: Comp,
    run_id: Annotated[
        str, typer.Argument(help="The run (kfw runs lists them).", show_default=False)
    ],
    top: Annotated[int, typer.Option(help="How many of the worst rows to show.")] = 10,
    neighbours: Annotated[int, typer.Option(help="Nearest training rows per worst row.")] = 3,
    by: Annotated[
        list[str] | None,
        typer.Option(
            help="Score per segment of this train column; repeatable.", show_default=False
        ),
    ] = None,
    bins: Annotated[int, typer.Option(help="Quantile bins of a numeric --by column.")] = 5,
    min_count: Annotated[
        int, typer.Option(help="Rows a value needs to keep its own segment.")
    ] = 20,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap intervals.")] = 0,
) -> None:
    """The worst rows with their nearest training rows, scores per segment, residuals.

    Writes reports/COMP/errors/RUN/: worst.csv, segments-<col>.csv, residuals.png (regression)
    and errors.md.
    """
    spec = competition(ctx, comp)
    from kfw.study.errors import analyse_errors, write_errors

    home = kfw_home(ctx)
    report = analyse_errors(
        spec, home, run_id, by, top, neighbours, bins, min_count, seed=seed
    )  # raises before anything is written
    folder = home / "reports" / spec.slug / "errors" / run_id
    write_errors(report, folder, seed=seed)
    _render(report)
    console().print(str(folder), highlight=False, soft_wrap=True)


def _render(report: Any) -> None:
    from rich.table import Table

    from kfw.study.errors import cell

    shown = [c for c in report.worst.columns if not c.endswith("_distance")]
    table = Table(
        *shown, title=f"worst rows of {report.run_id} ({report.metric} {report.score:.5g})"
    )
    for row in report.worst[shown].itertuples(index=False):
        table.add_row(*(cell(v) for v in row))
    console().print(table)
    for col, seg in report.segments.items():
        table = Table(*seg.columns, title=f"{report.metric} by {col} (95% bootstrap interval)")
        for row in seg.itertuples(index=False):
            table.add_row(*(cell(v) for v in row))
        console().print(table)


def register(app: typer.Typer) -> None:
    app.command()(errors)
