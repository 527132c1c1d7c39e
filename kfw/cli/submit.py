"""``kfw submit``: a run's submission file, validated against the sample submission."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kfw.cli.common import Comp, competition, console, fmt_score, kfw_home


def submit(
    ctx: typer.Context,
    comp: Comp,
    run: Annotated[
        str | None, typer.Option(help="Run id (default: the best run on the current data).")
    ] = None,
    output: Annotated[Path | None, typer.Option(help="Where to write the submission CSV.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate and write the file; do not send it.")
    ] = False,
) -> None:
    """Validate a run's submission against the sample submission and write it."""
    from kfw.data import load_dataset
    from kfw.errors import KfwError
    from kfw.submit import validate_submission, write_submission
    from kfw.track import RunStore, best_first

    if not dry_run:
        raise KfwError(
            "sending to Kaggle is not available yet: use --dry-run --output PATH and upload the file"
        )
    spec = competition(ctx, comp)
    home = kfw_home(ctx)
    dataset = load_dataset(spec, home)
    store = RunStore(home, comp)
    if run is None:
        current = [r for r in best_first(store.records()) if r["data"]["hash"] == dataset.hash]
        if not current:
            raise KfwError(f"no run of {comp} on the current data: run `kfw cv {comp}` first")
        run = current[0]["id"]
    record = store.record(run)
    sub = store.frame(run, "submission.csv")
    validate_submission(spec, sub, dataset.sample, record.get("classes"))
    path = write_submission(sub, output or home / "submissions" / comp / f"{run}.csv")
    console().print(
        f"{path}: {len(sub)} rows, valid · run {run} (CV {record['metric']} {fmt_score(record['score'])})"
    )


def register(app: typer.Typer) -> None:
    app.command()(submit)
