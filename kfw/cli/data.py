"""``kfw data``: get a competition's files in (import, download, open copy) and show them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kfw.cli.common import Comp, competition, console, kfw_home

app = typer.Typer(
    help="Get a competition's files: Kaggle download, a zip or folder, or the open copy.",
    no_args_is_help=True,
)


def _done(ctx: typer.Context, slug: str, what: str) -> None:
    from kfw.kaggle.data import data_dir, read_dataset

    ds = read_dataset(competition(ctx, slug), data_dir(kfw_home(ctx), slug))
    console().print(
        f"{what}: {len(ds.train)} train rows, {len(ds.test)} test rows in {ds.dir} (hash {ds.hash})"
    )


@app.command("import")
def import_(
    ctx: typer.Context,
    comp: Comp,
    path: Annotated[
        Path, typer.Argument(help="A Kaggle zip or a folder of its files.", show_default=False)
    ],
) -> None:
    """Import a Kaggle download (zip or folder) after checking its files and columns."""
    from kfw.kaggle.data import import_data

    import_data(competition(ctx, comp), kfw_home(ctx), path)
    _done(ctx, comp, "imported")


@app.command()
def download(ctx: typer.Context, comp: Comp) -> None:
    """Download through the official Kaggle client (needs your API credentials)."""
    from kfw.cli.common import console_err
    from kfw.kaggle.client import permissions_warning
    from kfw.kaggle.data import download_data

    warning = permissions_warning()
    if warning:
        console_err().print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    download_data(competition(ctx, comp), kfw_home(ctx))
    _done(ctx, comp, "downloaded")


@app.command("open")
def open_(ctx: typer.Context, comp: Comp) -> None:
    """Build the embedded open copy (offline; test labels held out for a local leaderboard)."""
    from kfw.kaggle.data import open_data

    open_data(competition(ctx, comp), kfw_home(ctx))
    _done(ctx, comp, "open copy built")


@app.command()
def show(ctx: typer.Context, comp: Comp) -> None:
    """Where the data came from, its size and hash."""
    from kfw.kaggle.data import data_dir, has_data, read_dataset

    spec = competition(ctx, comp)
    if not has_data(spec, kfw_home(ctx)):
        console().print(
            f"no data for {comp}: `kfw data download`, `kfw data import` or `kfw data open`"
        )
        raise typer.Exit(1)
    ds = read_dataset(spec, data_dir(kfw_home(ctx), comp))
    console().print(
        f"{comp}: source {ds.source}, {len(ds.train)} train x {ds.train.shape[1]} columns, "
        f"{len(ds.test)} test rows, hash {ds.hash}, in {ds.dir}"
    )
