"""``kfw repro ppo``: the write-up is generated from the runs, which a second call reuses."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from kfw.cli import main

pytestmark = pytest.mark.slow


def test_the_write_up_reads_its_numbers_from_the_runs_and_a_second_call_trains_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    home, docs = tmp_path / "home", tmp_path / "docs"
    monkeypatch.setenv("KFW_HOME", str(home))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    args = [
        "repro",
        "ppo",
        "--env",
        "CartPole-v1",
        "--seeds",
        "2",
        "--steps",
        "1024",
        "--docs",
        str(docs),
    ]
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 0, capsys.readouterr().err
    first = capsys.readouterr().err
    text = (docs / "repro-ppo.md").read_text()
    for heading in ("## Table 1, on classic control", "## DQN without replay", "## Our question"):
        assert heading in text
    for image in re.findall(r"\]\((img/[^)]+)\)", text):
        assert (docs / image).read_bytes()[:4] == b"\x89PNG"
    html = (docs / "repro-ppo.html").read_text()
    assert "data:image/png;base64," in html and "<table>" in html
    # the clipping (0.2) row's CartPole return is the mean of those runs' scores
    scores = []
    for run in (home / "runs" / "rl-cartpole-v1").glob("*-ppo-*/run.json"):
        record = json.loads(run.read_text())
        cfg = record["config"]
        default = cfg["advnorm"] and cfg["gae"] and cfg["n_envs"] == 4  # not the paper's settings
        if cfg["objective"] == "clip" and cfg["clip_coef"] == 0.2 and default:
            scores.append(record["score"])
    assert len(scores) == 2
    row = next(
        line for line in text.splitlines() if line.startswith("| clipping, eps = 0.2 |")
    )  # the first table
    assert f"| {np.mean(scores):.1f} ± " in row
    assert "| random policy | 0 | 0 |" in text
    # 6 objectives, 4 DQN variants, 3 more PPO variants for the question (its first row is the
    # clipping 0.2 baseline): all trained once, all reused by the second call
    assert "6 variants x 2 seeds; 12 runs to train" in first
    with pytest.raises(SystemExit) as exc:
        main(args)
    again = capsys.readouterr().err
    assert exc.value.code == 0
    assert "runs to train" in again and not re.search(r"; [1-9]\d* runs to train", again)
