"""``kfw new``: any tabular competition from its download."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kfw.cli.common import RichProgress, console, kfw_home


def new(
    ctx: typer.Context,
    slug: Annotated[
        str,
        typer.Argument(help="A name for the competition (lowercase, hyphens).", show_default=False),
    ],
    source: Annotated[
        Path | None, typer.Option("--from", help="The competition's zip or a folder of its files.")
    ] = None,
    download: Annotated[
        bool, typer.Option("--download", help="Download SLUG through the Kaggle API first.")
    ] = False,
    metric: Annotated[
        str | None, typer.Option(help="The competition metric (roc_auc, rmse, ...).")
    ] = None,
    target: Annotated[str | None, typer.Option(help="Target column(s), comma-separated.")] = None,
    id_column: Annotated[str | None, typer.Option("--id", help="The id column.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing spec.")] = False,
) -> None:
    """Infer a competition's spec from its files; write competition.toml and features.py."""
    import tempfile

    from kfw.errors import ConfigError
    from kfw.kaggle.new import create_competition

    if (source is None) == (not download):
        raise ConfigError("give the files with --from ZIP_OR_DIR, or --download to fetch them")
    if metric is not None:
        from kfw.core.metrics import get_metric

        get_metric(metric)  # an unknown name fails before anything is downloaded or written
    home = kfw_home(ctx)
    progress = RichProgress()
    if download:
        from kfw.kaggle.client import competition_metric, download_competition

        metric = metric or competition_metric(slug)
        with tempfile.TemporaryDirectory() as tmp:
            archive = download_competition(slug, Path(tmp))
            dest = create_competition(
                slug,
                archive,
                home,
                metric=metric,
                target=target,
                id_column=id_column,
                kaggle=slug,
                force=force,
                report=progress,
            )
    else:
        dest = create_competition(
            slug,
            source,
            home,
            metric=metric,
            target=target,
            id_column=id_column,
            force=force,
            report=progress,
        )
    console().print(f"competition {slug} ready in {dest}: next, `kfw cv {slug}`", highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(new)
