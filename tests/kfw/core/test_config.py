"""Typed, strict configuration: unknown keys, wrong types and bad specs fail loudly, by name."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import pytest

from kfw.core.config import (
    Competition,
    ModelSpec,
    from_dict,
    load_competition,
    parse_override,
    to_dict,
)
from kfw.core.folds import FoldScheme
from kfw.errors import ConfigError
from tests.synth import make_competition


@dataclasses.dataclass(frozen=True)
class Inner:
    depth: int = 3
    rate: float = 0.1


@dataclasses.dataclass(frozen=True)
class Outer:
    name: str
    mode: Literal["fast", "slow"] = "fast"
    on: bool = False
    cols: tuple[str, ...] = ()
    limit: int | None = None
    inner: Inner = dataclasses.field(default_factory=Inner)


# ---------------------------------------------------------------------------------------------
# from_dict


def test_from_dict_builds_and_converts() -> None:
    got = from_dict(
        Outer, {"name": "a", "cols": ["x", "y"], "inner": {"rate": 1}, "limit": None}, "t"
    )
    assert got == Outer(name="a", cols=("x", "y"), inner=Inner(rate=1.0))
    assert isinstance(got.inner.rate, float)
    assert to_dict(got)["cols"] == ["x", "y"]


def test_from_dict_refuses_an_unknown_key_and_lists_the_known_ones() -> None:
    with pytest.raises(
        ConfigError,
        match=r"^Outer: unknown key 'nmae' \(known: cols, inner, limit, mode, name, on\)$",
    ):
        from_dict(Outer, {"nmae": "a"})
    with pytest.raises(
        ConfigError, match=r"^model\.inner: unknown key 'dpeth' \(known: depth, rate\)$"
    ):
        from_dict(Outer, {"name": "a", "inner": {"dpeth": 2}}, "model")


def test_from_dict_refuses_a_missing_required_key() -> None:
    with pytest.raises(ConfigError, match=r"^name: required key is missing$"):
        from_dict(Outer, {"mode": "slow"})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": 3}, r"^name: expected str, got 3$"),
        ({"name": "a", "on": "yes"}, r"^on: expected bool, got 'yes'$"),
        ({"name": "a", "mode": "medium"}, r"^mode: 'medium' is not one of 'fast' \| 'slow'$"),
        ({"name": "a", "cols": "x"}, r"^cols: expected a list, got 'x'$"),
        ({"name": "a", "cols": ["x", 1]}, r"^cols\[1\]: expected str, got 1$"),
        ({"name": "a", "limit": 2.5}, r"^limit: expected an integer, got 2\.5$"),
        ({"name": "a", "limit": True}, r"^limit: expected an integer, got True$"),
        ({"name": "a", "inner": 5}, r"^inner: expected a table, got 5$"),
        ({"name": "a", "inner": {"rate": "high"}}, r"^inner\.rate: expected a number, got 'high'$"),
        ({"name": "a", "inner": {"rate": False}}, r"^inner\.rate: expected a number, got False$"),
    ],
)
def test_from_dict_refuses_wrong_types(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_dict(Outer, data)


# ---------------------------------------------------------------------------------------------
# parse_override


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("lr=0.05", ("lr", 0.05)),
        ("n_estimators=200", ("n_estimators", 200)),
        ('name="x"', ("name", "x")),
        ("flag=true", ("flag", True)),
        ("flag=false", ("flag", False)),
        ("objective=huber", ("objective", "huber")),  # not TOML: a bare string
        (" depth = 4 ", ("depth", 4)),
        ("cols=[1, 2]", ("cols", [1, 2])),
        ("expr=a=b", ("expr", "a=b")),
    ],
)
def test_parse_override(text: str, expected: tuple) -> None:
    assert parse_override(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("lr", r"override 'lr' is not key=value"), ("=1", r"override '=1' has an empty key")],
)
def test_parse_override_refuses(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_override(text)


# ---------------------------------------------------------------------------------------------
# competition.toml


def _toml(home: Path, slug: str = "synth") -> Path:
    return home / "competitions" / slug / "competition.toml"


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_a_generated_competition_loads(home: Path) -> None:
    make_competition(home, models=("lgbm", "logreg"), write_data=False)
    spec = load_competition("synth", home)
    assert isinstance(spec, Competition)
    assert (spec.slug, spec.kaggle, spec.task, spec.metric) == (
        "synth",
        "synthetic-synth",
        "binary",
        "roc_auc",
    )
    assert spec.dir == home / "competitions" / "synth"
    assert spec.folds == FoldScheme("stratified", n_splits=4, seed=7)
    assert [m.name for m in spec.models] == ["lgbm", "logreg"]
    assert spec.submission.columns == ("Id", "target")
    assert spec.model("ridge") == ModelSpec("ridge")  # any registered model, bare


def test_an_unknown_competition_lists_the_known_ones(home: Path) -> None:
    make_competition(home, "alpha", write_data=False)
    make_competition(home, "beta", write_data=False)
    with pytest.raises(ConfigError, match=r"^unknown competition 'gamma' \(known: ") as err:
        load_competition("gamma", home)
    known = str(err.value).split("(known: ")[1].rstrip(")").split(", ")
    assert {"alpha", "beta"} <= set(known)
    assert known == sorted(known)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            'target = "target"',
            'tagret = "target"',
            r": (Competition: )?unknown key 'tagret' \(known: .*target",
        ),
        ("n_splits = 4", "n_split = 4", r": folds: unknown key 'n_split' \(known: .*n_splits"),
        ("n_splits = 4", 'n_splits = "four"', r": folds\.n_splits: expected an integer"),
        ("n_splits = 4", "n_splits = 1", r": folds\.n_splits must be at least 2, got 1"),
        ('task = "binary"', 'task = "ranking"', r": task: 'ranking' is not one of"),
        ('kaggle = "synthetic-synth"\n', "", r": kaggle: required key is missing"),
        ('format = "label"', 'format = "csv"', r": submission\.format: 'csv' is not one of"),
        ('title = "Synthetic binary"', "title = Synthetic", r": invalid TOML: "),
        ('metric = "roc_auc"', 'metric = "rmse"', r": metric 'rmse' does not fit task 'binary'"),
        ('metric = "roc_auc"', 'metric = "auc_roc"', r": .*'auc_roc'"),
        (
            'columns = ["Id", "target"]',
            'columns = ["target", "Id"]',
            r": submission\.columns must start with the id column 'Id'",
        ),
        ('format = "label"', 'format = "value"', r": a binary task submits format 'label' or"),
        ('name = "lgbm"', "name = 3", r": models\[0\]\.name: expected str, got 3"),
    ],
)
def test_a_bad_competition_toml_names_the_file(
    home: Path, old: str, new: str, message: str
) -> None:
    make_competition(home, write_data=False)
    path = _toml(home)
    _replace(path, old, new)
    with pytest.raises(ConfigError, match=f"^{path}{message}") as err:
        load_competition("synth", home)
    assert "\n" not in str(err.value)


def test_an_empty_roster_and_a_shared_label(home: Path) -> None:
    make_competition(home, models=("lgbm", "lgbm"), write_data=False)
    path = _toml(home)
    with pytest.raises(ConfigError, match=rf"^{path}: two members of \[\[models\]\] share a name"):
        load_competition("synth", home)
    text = path.read_text()
    path.write_text("models = []\n" + text[: text.index("[[models]]")])
    with pytest.raises(ConfigError, match=f"^{path}: the roster \\(\\[\\[models\\]\\]\\) is empty"):
        load_competition("synth", home)
