"""One competition end to end through the pipeline, for every task kind."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kfw.config import load_competition
from kfw.pipeline import prepare, run_competition
from kfw.submit import validate_submission
from tests.synth import make_competition


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_roster_and_blend_for_every_task(home, task):
    linear = "ridge" if task == "regression" else "logreg"
    make_competition(home, task=task, models=("lgbm", linear))
    ctx = prepare(load_competition("synth", home), home)
    records = run_competition(ctx)
    assert [r["kind"] for r in records] == ["model", "model", "ensemble"]
    for record in records:
        oof = ctx.store.frame(record["id"], "oof.parquet")
        preds = [c for c in oof.columns if c.startswith("pred")]
        assert len(preds) == (3 if task == "multiclass" else 1)
        assert not oof[preds].isna().any().any()
        sub = ctx.store.frame(record["id"], "submission.csv")
        validate_submission(ctx.spec, sub, ctx.dataset.sample, np.array(record["classes"]) if record["classes"] else None)
    if task == "multiclass":
        proba = ctx.store.frame(records[0]["id"], "test.parquet").filter(like="pred_")
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    if task != "regression":
        assert set(pd.read_csv(home / "data" / "synth" / "train.csv")["target"]) >= set(sub["target"])
