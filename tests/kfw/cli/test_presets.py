"""``[presets.NAME]``: a second roster, chosen with ``--preset`` or, for a preset marked
``when = "no-cuda"``, by default on a machine without a CUDA GPU, said in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kfw.cli import main
from kfw.core.config import load_competition
from kfw.errors import ConfigError
from tests.synth import make_competition

PRESET = """
[presets.cpu]
description = "a shallow booster"
when = "no-cuda"

[[presets.cpu.models]]
name = "lgbm"
alias = "lgbm-cpu"
params = { n_estimators = 20, early_stopping_rounds = 5 }
"""


@pytest.fixture
def comp(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    make_competition(home, models=("logreg",))
    toml = home / "competitions" / "synth" / "competition.toml"
    toml.write_text(toml.read_text() + PRESET)
    monkeypatch.setenv("KFW_THREADS", "1")
    monkeypatch.setenv("WANDB_MODE", "disabled")
    return home


def _cv(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """``kfw cv synth --no-blend ARGS``: exit code and stderr."""
    with pytest.raises(SystemExit) as exc:
        main(["cv", "synth", "--no-blend", *args])
    _, err = capsys.readouterr()
    return exc.value.code, err


def _labels(home: Path) -> list[str]:
    return sorted(
        json.loads(p.read_text())["label"] for p in (home / "runs" / "synth").glob("*/run.json")
    )


def _cuda(monkeypatch: pytest.MonkeyPatch, present: bool) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: present)


def test_the_spec_reads_presets_and_switches_rosters(comp: Path) -> None:
    spec = load_competition("synth", comp)
    assert [m.label for m in spec.models] == ["logreg"]
    cpu = spec.with_preset("cpu")
    assert [m.label for m in cpu.models] == ["lgbm-cpu"]
    assert cpu.models[0].params == {"n_estimators": 20, "early_stopping_rounds": 5}
    assert spec.with_preset("default") == spec
    assert spec.model("lgbm-cpu") == cpu.models[0]  # a preset's label resolves from any roster
    with pytest.raises(ConfigError, match=r"^synth has no preset 'gpu' \(it has: default, cpu\)$"):
        spec.with_preset("gpu")


def test_without_cuda_the_cpu_preset_runs_and_says_so(
    comp: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _cuda(monkeypatch, False)
    code, err = _cv(capsys)
    assert code == 0, err
    said = [line for line in err.splitlines() if line.startswith("preset cpu:")]
    assert said == [
        "preset cpu: no CUDA GPU here, so the CPU roster (a shallow booster); "
        "`--preset default` runs the GPU roster anyway"
    ]
    assert _labels(comp) == ["lgbm-cpu"]


def test_with_cuda_the_default_roster_runs_silently(
    comp: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _cuda(monkeypatch, True)
    code, err = _cv(capsys)
    assert code == 0, err
    assert "preset" not in err
    assert _labels(comp) == ["logreg"]


def test_a_named_preset_wins_over_the_machine(
    comp: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _cuda(monkeypatch, False)
    code, err = _cv(capsys, "--preset", "default")
    assert code == 0, err
    assert "preset" not in err and _labels(comp) == ["logreg"]
    _cuda(monkeypatch, True)
    code, err = _cv(capsys, "--preset", "cpu")
    assert code == 0, err
    assert _labels(comp) == ["lgbm-cpu", "logreg"]


def test_without_data_the_only_line_is_the_error(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    make_competition(home, models=("logreg",), write_data=False)
    toml = home / "competitions" / "synth" / "competition.toml"
    toml.write_text(toml.read_text() + PRESET)
    _cuda(monkeypatch, False)
    code, err = _cv(capsys)
    assert code == 1
    assert err.strip().splitlines() == [err.strip()] and err.startswith("kfw: error: no data")


def test_an_unknown_preset_is_one_line_and_writes_nothing(
    comp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = sorted(comp.rglob("*"))
    code, err = _cv(capsys, "--preset", "gpu")
    assert code == 1
    assert err.strip() == "kfw: error: synth has no preset 'gpu' (it has: default, cpu)"
    assert sorted(comp.rglob("*")) == before


def test_a_preset_named_default_is_refused(home: Path) -> None:
    make_competition(home, models=("logreg",), write_data=False)
    toml = home / "competitions" / "synth" / "competition.toml"
    toml.write_text(toml.read_text() + PRESET.replace("presets.cpu", "presets.default"))
    with pytest.raises(
        ConfigError, match=r"\[presets.default\] is the \[\[models\]\] roster's name"
    ):
        load_competition("synth", home)
