"""The bake-off: every layer becomes a run; a table and a chart land in the run store."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from kfw.cli.app import app
from tests.synth import make_competition


def test_bakeoff_runs_each_layer_and_writes_table_and_chart(home):
    make_competition(
        home, task="regression", models=("ridge",), folds='scheme = "kfold"\nn_splits = 3\nseed = 2'
    )
    args = ["--home", str(home), "bakeoff", "synth", "--trials", "2", "-m", "lgbm", "-m", "ridge"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (folder,) = (home / "runs" / "synth" / "bakeoffs").iterdir()
    data = json.loads((folder / "bakeoff.json").read_text())
    variants = [r["variant"] for r in data["rows"]]
    assert variants == [
        "lgbm (defaults)",
        "lgbm (tuned, 2 trials)",
        "ridge (defaults)",
        "ridge (tuned, 2 trials)",
        "blend of the tuned runs",
        "hill climbing of the tuned runs",
        "level-2 ridge of the tuned runs",
    ]
    runs = {p.parent.name for p in (home / "runs" / "synth").glob("*/run.json")}
    assert {r["run"] for r in data["rows"]} <= runs  # each row is a run in the store
    assert (folder / "bakeoff.png").stat().st_size > 5_000
    assert "are optimistic; the nested estimate" in (folder / "bakeoff.md").read_text()
    assert "| lgbm (defaults) |" in result.output
