"""``kfw curves``: learning and validation curves on the persisted folds, read out in words."""

from __future__ import annotations

from typing import Annotated

import typer

from kfw.cli.common import Comp, RichProgress, Threads, competition, console, kfw_home


def curves(
    ctx: typer.Context,
    comp: Comp,
    model: Annotated[str, typer.Option("--model", "-m", help="Registered model or roster label.")],
    sizes: Annotated[
        str | None,
        typer.Option(
            help="Fractions of each fold's training part, comma-separated "
            "(default 0.1,0.2,0.4,0.7,1.0): the learning curve.",
            show_default=False,
        ),
    ] = None,
    param: Annotated[
        str | None,
        typer.Option(
            "--param",
            help="One parameter and its values, name=v1,v2,... (TOML values): the validation "
            "curve, on the full training parts.",
            show_default=False,
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="Fix a parameter in every fit: key=value (TOML value)."),
    ] = None,
    threads: Threads = None,
) -> None:
    """Training and validation score against data size (or one parameter), with a verdict."""
    from kfw.core.config import parse_override
    from kfw.progress import Collect
    from kfw.study.curves import check, draw, plan

    spec = competition(ctx, comp)
    overrides = dict(parse_override(p) for p in set_ or [])
    chosen = plan(spec, model, sizes=sizes, param=param, overrides=overrides)
    from kfw.pipeline.context import prepare

    progress, held = RichProgress(), Collect()
    context = prepare(spec, kfw_home(ctx), held, wandb=False)
    check(context, chosen)  # a size that empties a class: one line, before any fit or file
    for message in held.infos:
        progress.info(message)
    for message in held.warnings:
        progress.warning(message)
    result = draw(context, chosen, threads=threads, callback=progress)
    _table(result.data)
    console().print(f"JSON, CSV and chart in {result.folder}", highlight=False)
    console().print(result.verdict, highlight=False)


def _table(data: dict) -> None:
    from rich.table import Table

    metric = data["metric"]
    table = Table(
        data["param"] or "size", "rows fitted", f"train {metric}", f"valid {metric}", "reading"
    )
    for p in data["points"]:
        table.add_row(
            str(p["x"]),
            f"{p['n_train']:.0f}",
            f"{p['train_mean']:.4f} ± {p['train_std']:.4f}",
            f"{p['valid_mean']:.4f} ± {p['valid_std']:.4f}",
            p["reading"],
        )
    console().print(table)


def register(app: typer.Typer) -> None:
    app.command()(curves)
