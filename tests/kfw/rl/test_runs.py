"""``kfw rl``: a run in the store, resumed after an interruption to the same numbers, evaluated,
ablated; bad input is one line, exit 1 and nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kfw.cli import main
from kfw.progress import Callback
from kfw.rl.runs import resolve, train_rl

pytestmark = pytest.mark.slow
KFW = str(Path(sys.executable).with_name("kfw"))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("KFW_HOME", str(home))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.delenv("KFW_DEBUG", raising=False)
    return home


def _kfw(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def _files(home: Path) -> list[Path]:
    return sorted(p for p in home.rglob("*") if p.is_file()) if home.exists() else []


def test_train_saves_a_run_and_prints_the_return_and_id_last(home: Path, capsys) -> None:
    code, out, err = _kfw(capsys, "rl", "train", "ppo", "--env", "CartPole-v1", "--steps", "2048")
    assert code == 0, err
    last = out.strip().splitlines()[-1]
    run_id = last.rsplit("run ", 1)[1]
    assert last.startswith("mean return ")
    run = home / "runs" / "rl-cartpole-v1" / run_id
    record = json.loads((run / "run.json").read_text())
    assert record["kind"] == "rl" and record["algorithm"] == "ppo" and record["steps"] == 2048
    assert record["config"]["clip_coef"] == 0.2 and record["seed"] == 1
    lines = (run / "episodes.csv").read_text().splitlines()
    assert lines[0] == "step,return,length" and len(lines) - 1 == record["episodes"]
    iterations = (run / "iterations.csv").read_text().splitlines()
    assert {"approx_kl", "clipfrac", "explained_variance", "pg_loss", "v_loss", "entropy"} <= set(
        iterations[0].split(",")
    )
    assert len(iterations) - 1 == 2048 // 512
    # and the greedy policy evaluates, with a GIF of its first episode
    code, out, err = _kfw(
        capsys, "rl", "eval", run_id, "--episodes", "3", "--gif", str(home / "ep.gif")
    )
    assert code == 0, err
    assert "greedy return" in out and (home / "ep.gif").read_bytes()[:6] == b"GIF89a"


class _Stop(Callback):
    def __init__(self, at: int) -> None:
        self.at = at

    def log(self, metrics, step=None) -> None:
        if metrics["rl_step"] >= self.at:
            raise KeyboardInterrupt


@pytest.mark.parametrize("algorithm", ["ppo", "dqn"])
def test_an_interrupted_run_resumes_to_the_numbers_of_an_uninterrupted_one(
    home: Path, tmp_path: Path, algorithm: str
) -> None:
    steps = {"ppo": 4096, "dqn": 4000}[algorithm]
    extra = {"dqn": {"learning_starts": 500, "log_every": 500}}.get(algorithm, {})
    cfg = resolve(algorithm, "CartPole-v1", steps, extra)
    whole = train_rl(algorithm, "CartPole-v1", tmp_path / "whole", cfg, seed=2, wandb=False)
    with pytest.raises(KeyboardInterrupt):
        train_rl(
            algorithm,
            "CartPole-v1",
            home,
            cfg,
            seed=2,
            wandb=False,
            callback=_Stop(steps // 2),
            checkpoint_seconds=0,
        )
    assert list((home / "runs" / "rl-cartpole-v1" / ".partial").glob("*/checkpoint.pt"))
    resumed = train_rl(algorithm, "CartPole-v1", home, cfg, seed=2, wandb=False)
    assert resumed["resumed_from"] is not None and resumed["resumed_from"] < steps
    folder = lambda h, r: h / "runs" / "rl-cartpole-v1" / r["id"]  # noqa: E731
    assert (folder(home, resumed) / "episodes.csv").read_bytes() == (
        folder(tmp_path / "whole", whole) / "episodes.csv"
    ).read_bytes()
    assert resumed["score"] == whole["score"]
    assert not list((home / "runs" / "rl-cartpole-v1").glob(".partial/*"))


BAD = {
    "unknown environment": (["rl", "train", "ppo", "--env", "CartPole-v7"], "unknown environment 'CartPole-v7'; did you mean CartPole-v1"),
    "unknown algorithm": (["rl", "train", "a2c"], "unknown algorithm 'a2c': one of ppo, dqn"),
    "DQN on continuous actions": (["rl", "train", "dqn", "--env", "Pendulum-v1"], "use ppo for continuous actions"),
    "unknown setting": (["rl", "train", "ppo", "-p", "clip=0.1"], "clip"),
    "setting of the wrong type": (["rl", "train", "ppo", "-p", "n_envs='four'"], "n_envs"),
    "unknown switch": (["rl", "ablate", "ppo", "--toggle", "magic"], "unknown ppo switch 'magic'"),
    "unknown run": (["rl", "eval", "nope"], "no rl run 'nope'"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_and_writes_nothing(case: str, home: Path, capsys) -> None:
    args, says = BAD[case]
    code, _, err = _kfw(capsys, *args)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1, err
    assert lines[0].startswith("kfw: error: ") and says in lines[0], lines[0]
    assert _files(home) == []


def test_lunarlander_without_box2d_says_what_to_install(home: Path, tmp_path: Path) -> None:
    # a Box2D that fails to import, ahead of the real one on the path: what a machine without
    # the wheel sees
    fake = tmp_path / "nobox2d" / "Box2D"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named Box2D')\n")
    env = {**os.environ, "PYTHONPATH": str(fake.parent), "KFW_HOME": str(home)}
    done = subprocess.run(
        [KFW, "rl", "train", "ppo", "--env", "LunarLander-v3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert (
        "LunarLander-v3 needs a package that is not installed: pip install box2d pygame" in lines[0]
    )
    assert _files(home) == []


def test_ablate_writes_curves_and_a_paired_table_and_reuses_finished_runs(
    home: Path, capsys
) -> None:
    args = [
        "rl",
        "ablate",
        "dqn",
        "--toggle",
        "target",
        "--seeds",
        "2",
        "--steps",
        "1500",
        "-p",
        "learning_starts=300",
        "-p",
        "log_every=300",
    ]
    code, out, err = _kfw(capsys, *args)
    assert code == 0, err
    assert "| baseline |" in out and "| no-target |" in out and "[" in out
    assert "4 runs to train" in err
    png = next((home / "runs" / "rl-cartpole-v1" / "ablations").glob("*/curves.png"))
    assert png.read_bytes()[:4] == b"\x89PNG"
    code, out2, err = _kfw(capsys, *args)
    assert code == 0 and "0 runs to train, 4 found in the store" in err
    assert out2.splitlines()[:4] == out.splitlines()[:4]  # the same runs, the same table


def test_a_run_is_mirrored_to_wandb_with_its_episode_curve(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.kfw.pipeline.test_mirror import read_back

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    for key in ("WANDB_API_KEY", "WANDB_DIR", "WANDB_PROJECT", "WANDB_ENTITY"):
        monkeypatch.delenv(key, raising=False)
    cfg = resolve("ppo", "CartPole-v1", 1024, {})
    record = train_rl("ppo", "CartPole-v1", home, cfg, seed=1)
    logged = read_back(Path(record["wandb"]["dir"]))
    summary = logged.summary["summary"]
    assert summary["rl/mean_return"] == pytest.approx(record["score"])
    assert summary["rl/episodes"] == record["episodes"]
    assert logged.summary["config"]["config"]["clip_coef"] == 0.2
    assert "rl" in logged.summary["tags"]
    returns = [h["episode/return"] for h in logged.history if "episode/return" in h]
    episodes = (
        (home / "runs" / "rl-cartpole-v1" / record["id"] / "episodes.csv")
        .read_text()
        .splitlines()[1:]
    )
    assert returns == [float(line.split(",")[1]) for line in episodes]
    assert any("update/approx_kl" in h for h in logged.history)
