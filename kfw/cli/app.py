"""The root command: global options, and the command groups registered from their modules."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kfw.cli import (
    ablate,
    campaign,
    curves,
    cv,
    data,
    errors,
    lm,
    new,
    report,
    repro,
    rl,
    runs,
    submit,
    writeup,
)
from kfw.cli.common import console, kfw_home

app = typer.Typer(
    name="kfw",
    help="A Kaggle competition workbench: persisted folds, a leak-safe fold loop, runs you can trust.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: the rich renderer costs ~130 ms of start-up
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def root(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(envvar="KFW_HOME", help="Where data/, runs/, submissions/ live (default: .)."),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    """Global options."""
    ctx.obj = {"home": home, "debug": debug}


@app.command("list")
def list_competitions(ctx: typer.Context) -> None:
    """The competitions kfw knows, where their data comes from, and their best CV."""
    from rich.table import Table

    from kfw.core.config import competition_dirs, load_competition
    from kfw.core.runstore import RunStore
    from kfw.kaggle.data import data_dir, has_data, read_source

    home = kfw_home(ctx)
    table = Table("competition", "kaggle", "task", "metric", "data", "runs")
    for slug in competition_dirs(home):
        spec = load_competition(slug, home)
        source = read_source(data_dir(home, slug)) if has_data(spec, home) else "-"
        table.add_row(
            slug,
            spec.kaggle,
            spec.task,
            spec.metric,
            source,
            str(len(RunStore(home, slug).records())),
        )
    console().print(table)


@app.command("models")
def list_models() -> None:
    """The registered models (names usable in --model and in a roster)."""
    from rich.table import Table

    from kfw.core.registry import entries

    table = Table("model", "tasks", "description")
    for entry in entries():
        table.add_row(entry.name, ", ".join(entry.tasks), entry.description)
    console().print(table)


app.add_typer(data.app, name="data")
app.add_typer(repro.app, name="repro")
app.add_typer(lm.app, name="lm")
app.add_typer(rl.app, name="rl")
new.register(app)
cv.register(app)
runs.register(app)
submit.register(app)
campaign.register(app)
writeup.register(app)
report.register(app)
ablate.register(app)
errors.register(app)
curves.register(app)
