"""``kfw runs``: the run store."""

from __future__ import annotations

import typer

from kfw.cli.common import Comp, competition, console, fmt_score, kfw_home


def runs(ctx: typer.Context, comp: Comp) -> None:
    """The competition's runs as a table, best CV first."""
    from rich.table import Table

    from kfw.track import RunStore, best_first

    spec = competition(ctx, comp)
    records = best_first(RunStore(kfw_home(ctx), comp).records())
    if not records:
        console().print(f"no runs for {comp} yet: `kfw cv {comp}`")
        return
    table = Table("run", "kind", spec.metric, "folds mean ± std", "time", "fold hash", "data")
    for r in records:
        spread = f"{r['mean']:.5f} ± {r['std']:.5f}"
        table.add_row(
            r["id"],
            r["kind"],
            fmt_score(r["score"]),
            spread,
            f"{r['seconds']:.1f} s",
            r["folds"]["hash"],
            r["data"]["source"],
        )
    console().print(table)


def register(app: typer.Typer) -> None:
    app.command()(runs)
