"""One competition end to end through the pipeline, for every task kind."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kfw.core.config import load_competition
from kfw.ensemble.roster import run_competition
from kfw.kaggle.submit import validate_submission
from kfw.pipeline.context import prepare
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
        validate_submission(
            ctx.spec,
            sub,
            ctx.dataset.sample,
            np.array(record["classes"]) if record["classes"] else None,
        )
    if task == "multiclass":
        proba = ctx.store.frame(records[0]["id"], "test.parquet").filter(like="pred_")
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    if task != "regression":
        assert set(pd.read_csv(home / "data" / "synth" / "train.csv")["target"]) >= set(
            sub["target"]
        )


def test_a_run_holds_blas_to_its_thread_count(home, monkeypatch):
    """KFW_THREADS=1 must mean one thread for the NumPy products inside a fit, too."""
    from threadpoolctl import threadpool_info

    from kfw.core.config import ModelSpec
    from kfw.core.registry import make_estimator
    from kfw.pipeline.runs import run_model

    make_competition(home, task="regression", models=("ridge",))
    ctx = prepare(load_competition("synth", home), home)
    cls = type(make_estimator("ridge", "regression", {}))
    seen: list[int] = []
    real_fit = cls.fit

    def probe_fit(self, *args, **kwargs):  # every fold's clone is of this class
        seen.extend(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(cls, "fit", probe_fit)
    run_model(ctx, ModelSpec("ridge"), threads=1)
    assert len(seen) >= ctx.folds.n_fits and set(seen) == {1}  # each BLAS library loaded
