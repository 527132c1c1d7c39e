"""``kfw ablate``: switch a model's components off, one at a time, and measure what each buys."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from kfw.cli.common import Comp, NoWandb, RichProgress, Threads, competition, console, kfw_home


def ablate(
    ctx: typer.Context,
    comp: Comp,
    model: Annotated[
        str, typer.Option("--model", "-m", help="Registered model or roster label (the base).")
    ],
    toggle: Annotated[
        str,
        typer.Option(help="Boolean parameters to switch, comma-separated: augment,batchnorm."),
    ],
    seeds: Annotated[int, typer.Option(min=1, help="Seeds per variant.")] = 3,
    folds: Annotated[
        int | None,
        typer.Option(
            min=1, help="Use only the first K folds of the fold file.", show_default=False
        ),
    ] = None,
    factorial: Annotated[
        bool, typer.Option("--factorial", help="Every combination of the toggles.")
    ] = False,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param", "-p", help="Set a parameter in every variant: key=value (TOML value)."
        ),
    ] = None,
    params: Annotated[
        str | None,
        typer.Option(
            "--params", help='Parameters as one JSON object: {"epochs": 5}.', show_default=False
        ),
    ] = None,
    threads: Threads = None,
    no_wandb: NoWandb = False,
) -> None:
    """Base vs each toggle switched, same folds, several seeds: a table with paired 95% CIs."""
    from kfw.core.config import parse_override

    spec = competition(ctx, comp)
    overrides = {**_json_object(params), **dict(parse_override(p) for p in param or [])}
    toggles = [t.strip() for t in toggle.split(",") if t.strip()]
    from kfw.study.ablate import ablate as run_ablation
    from kfw.study.ablate import resolve, table

    resolve(spec, model, toggles, overrides)  # a bad toggle fails before the data is read
    from kfw.pipeline.context import prepare

    progress = RichProgress()
    context = prepare(spec, kfw_home(ctx), progress, wandb=not no_wandb)
    result = run_ablation(
        context, model, toggles, seeds=seeds, folds=folds, factorial=factorial,
        overrides=overrides, threads=threads, callback=progress,
    )  # fmt: skip
    console().print(table(result.data), highlight=False)
    console().print(f"table, JSON and chart in {result.folder}", highlight=False)


def _json_object(text: str | None) -> dict[str, Any]:
    import json

    from kfw.errors import ConfigError

    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--params is not JSON ({exc.msg}): {text!r}") from None
    if not isinstance(value, dict):
        raise ConfigError(f'--params must be a JSON object like {{"epochs": 5}}, got {text!r}')
    return value


def register(app: typer.Typer) -> None:
    app.command()(ablate)
