"""Moving code must not move results: today's runs against runs made before the layout change.

``tests/data/reference_runs/`` was written by ``tests/data/reference_runs/make.py`` with the
code as it stood before kfw's modules moved into packages (commit e2f40ed). The same commands
today must give the same out-of-fold and test predictions to the last bit, the same
submission files byte for byte, and the same scores, parameters, folds and rounds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.data.reference_runs.make import CASES, HERE, kept, run_case


@pytest.mark.parametrize("task", sorted(CASES))
def test_runs_are_identical_to_those_made_before_the_move(task: str, tmp_path: Path) -> None:
    runs = run_case(task, tmp_path / "home")
    expected = sorted(p.name for p in (HERE / task).iterdir())
    assert sorted(runs) == expected
    for label, run in runs.items():
        reference = HERE / task / label
        assert kept(run["record"]) == json.loads((reference / "record.json").read_text()), label
        for name in ("oof", "test"):
            now = pd.read_parquet(run["folder"] / f"{name}.parquet")
            then = pd.read_csv(reference / f"{name}.csv")
            assert list(now.columns) == list(then.columns)
            for column in now.columns:
                np.testing.assert_array_equal(now[column].to_numpy(), then[column].to_numpy())
        assert (run["folder"] / "submission.csv").read_bytes() == (
            reference / "submission.csv"
        ).read_bytes()
