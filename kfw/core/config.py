"""Typed, strict configuration: dataclasses built from TOML, unknown keys refused.

Each component owns a dataclass of defaults (``FoldScheme`` in :mod:`kfw.core.folds`, the model
parameters in ``models/``); a competition composes them in ``competition.toml`` and
:func:`from_dict` checks every key and type on the way in, so a typo fails loudly instead of
silently falling back to a default.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from kfw.core.folds import FoldScheme
from kfw.core.metrics import check_metric_task, get_metric, uses_threshold
from kfw.errors import ConfigError

T = TypeVar("T")

# ---------------------------------------------------------------------------------------------
# generic dataclass <- dict conversion


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert containers (list -> tuple)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(
            errors[0] if len(errors) == 1 else f"{where}: {value!r} fits none of {tp}"
        )
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{where}: {value!r} is not one of {_type_name(tp)}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        return from_dict(tp, value, where)
    if origin is tuple:
        args = get_args(tp)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = args[0]
        return tuple(_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        args = get_args(tp)
        if args and dataclasses.is_dataclass(args[1]):  # dict[str, SomeTable]
            return {str(k): _coerce(v, args[1], f"{where}.{k}") for k, v in value.items()}
        return dict(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp in (str, bool):
        if not isinstance(value, tp):
            raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
        return value
    raise TypeError(f"unsupported annotation {tp!r} at {where}")  # a bug in a dataclass, not input


def coerce(value: Any, tp: Any, where: str) -> Any:
    """``value`` checked against the annotation ``tp`` as a toml value is (``where`` names it)."""
    return _coerce(value, tp, where)


def from_dict(cls: type[T], data: Mapping[str, Any], where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, refusing unknown keys and wrong types.

    Parameters
    ----------
    cls : type
        A dataclass whose fields are annotated with str, int, float, bool, Literal, tuple[...],
        dict, nested dataclasses, or ``X | None``.
    data : mapping
        Parsed TOML (or overrides).
    where : str
        Dotted prefix naming the place in the file, used in error messages.

    Raises
    ------
    ConfigError
        On an unknown key, a missing required key or a value of the wrong type.
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        known = ", ".join(sorted(fields))
        raise ConfigError(f"{where or cls.__name__}: unknown key {unknown[0]!r} (known: {known})")
    kwargs = {}
    for name, f in fields.items():
        key = f"{where}.{name}" if where else name
        if name in data:
            kwargs[name] = _coerce(data[name], hints[name], key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{key}: required key is missing")
    return cls(**kwargs)


def to_dict(obj: Any) -> Any:
    """A JSON-ready dict of a (nested) dataclass; tuples become lists, paths strings."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``key=value`` with the value read as TOML (``lr=0.05``, ``name="x"``, ``on=true``).

    A value that is not valid TOML is taken as a bare string.
    """
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not key=value")
    key, raw = (s.strip() for s in text.split("=", 1))
    if not key:
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``30m``, ``2h`` or ``1h30m``."""
    import re

    parts = re.fullmatch(
        r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text
    )
    if not text.strip() or parts is None or not any(parts.groups()):
        raise ConfigError(f"duration {text!r} is not like 30m, 2h, 1h30m or 900s")
    h, m, sec = (float(g) if g else 0.0 for g in parts.groups())
    return h * 3600 + m * 60 + sec


# ---------------------------------------------------------------------------------------------
# the competition spec

Task = Literal["binary", "multiclass", "regression"]


@dataclasses.dataclass(frozen=True)
class FilesSpec:
    """The competition's files, as Kaggle names them."""

    train: str = "train.csv"
    test: str = "test.csv"
    sample_submission: str = "sample_submission.csv"
    extra: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class SubmissionSpec:
    """What Kaggle expects back: the columns and how predictions are written.

    ``format``: ``label`` writes the predicted class (binary / multiclass), ``proba`` the
    probability of the positive class (binary) or one column per class (multiclass),
    ``value`` the regression prediction.
    """

    columns: tuple[str, ...]
    format: Literal["label", "proba", "value"] = "value"


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One member of the roster: a registered model name and its parameters."""

    name: str
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    # a label to run one model twice with different parameters ("lgbm-deep")
    alias: str | None = None

    @property
    def label(self) -> str:
        return self.alias or self.name


@dataclasses.dataclass(frozen=True)
class Preset:
    """A second roster (``[presets.<name>]``), run by ``kfw cv COMP --preset <name>``.

    ``when = "no-cuda"`` makes it the default on a machine without a CUDA GPU (the
    ``[[models]]`` roster stays the default where CUDA is present, and ``--preset default``
    runs it anywhere); ``"asked"``: only when named.
    """

    models: tuple[ModelSpec, ...]
    description: str = ""
    when: Literal["asked", "no-cuda"] = "asked"


DEFAULT_PRESET = "default"  # the name of the [[models]] roster


@dataclasses.dataclass(frozen=True)
class EnsembleSpec:
    """How the roster's predictions become the submission (see :mod:`kfw.ensemble.stack`).

    ``blend``: non-negative weights summing to one fitted on out-of-fold predictions;
    ``hillclimb``: Caruana's ensemble selection; ``rank``: mean rank (binary ROC-AUC);
    ``level2``: the ``level2`` model trained on the members' predictions; ``best``: no
    ensemble, the best single run. Every ensemble's CV is fitted inside the folds.
    """

    method: Literal["blend", "hillclimb", "rank", "level2", "best"] = "blend"
    level2: Literal["ridge", "logreg", "lgbm"] = "ridge"


@dataclasses.dataclass(frozen=True)
class Refusal:
    """Files a competition must never take in (``[[refuse]]`` in ``competition.toml``).

    Digit Recognizer's test images are MNIST digits, so MNIST's own labelled files would leak
    its answers: its spec lists their names (``file_pattern``, a regular expression searched
    in each file's name) and SHA-256 digests (of a file, or of its gunzipped content, mapped
    to what the file is). Every way data enters the competition (``kfw data import``,
    ``kfw cv --extra-train``) is checked against them first (:mod:`kfw.kaggle.guard`).
    """

    name: str
    why: str
    file_pattern: str = ""
    pattern_means: str = ""  # "an MNIST IDX file": what a file matching the pattern is
    hint: str = ""  # what to do instead, ending the refusal
    sha256: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class EarlyStopping:
    """Where a model that stops early (boosting rounds, a network's epochs) chooses its length.

    ``inner`` (the default): on an inner split of each fold's training part, ``fraction`` of
    it, cut the way the folds were (:meth:`kfw.core.folds.Folds.inner_split`); with ``refit`` the
    model is then fitted again on the whole training part for the rounds chosen. The scored
    fold is never seen before it is scored. ``scored-fold``: on the scored fold itself, the
    common shortcut; its score is optimistic, the run says so, and it never drives a default.
    ``off``: every round the parameters ask for.
    """

    mode: Literal["inner", "scored-fold", "off"] = "inner"
    fraction: float = 0.2
    refit: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.fraction <= 0.5:
            raise ConfigError(f"early_stopping.fraction must lie in (0, 0.5], got {self.fraction}")


# the fold scheme is owned by kfw.core.folds; imported late to keep this module light
def _fold_scheme_type() -> type:

    return FoldScheme


@dataclasses.dataclass(frozen=True)
class Competition:
    """A competition declared by ``competitions/<slug>/competition.toml``.

    Attributes
    ----------
    slug : str
        kfw's name for it (the folder name), e.g. ``house-prices``.
    kaggle : str
        The Kaggle competition slug, e.g. ``house-prices-advanced-regression-techniques``.
    task, metric : str
        ``binary`` / ``multiclass`` / ``regression`` and a name from :mod:`kfw.core.metrics`.
    id : str
        The id column (train, test and submission).
    row_ids : bool
        The id is no column of train or test: each file's rows are numbered 1, 2, ... in file
        order (Digit Recognizer's ``ImageId``); kfw adds the column when it reads them.
    target : str or list of str
        The training target; several for a multi-target competition (each binary or each
        regression, fitted one at a time on the same folds, scored by the mean of the metric).
    positive_class : optional
        Binary: the class whose probability a ``proba`` submission holds (default: the last
        in sorted order, e.g. 1, True or "Yes").
    features : str
        A module of ``features/`` (``titanic``) or a ``.py`` file beside the toml.
    target_transform : str
        ``log1p`` fits models on ``log1p(y)`` and inverts their predictions.
    unseen_categories : str
        What a test category never seen in train gets: ``missing`` (a warning naming it) or
        ``error``.
    """

    slug: str
    kaggle: str
    title: str
    task: Task
    metric: str
    id: str
    target: str | tuple[str, ...]
    features: str
    files: FilesSpec
    submission: SubmissionSpec
    folds: Any  # kfw.core.folds.FoldScheme, checked in load_competition
    models: tuple[ModelSpec, ...]
    presets: dict[str, Preset] = dataclasses.field(default_factory=dict)
    # "tune": a binary task scored on labels chooses its decision threshold in every fold, on
    # an inner split of the training part (kfw.core.cv.fit_fold); "fixed": 0.5
    threshold: Literal["fixed", "tune"] = "fixed"
    # a calibrator fitted in every fold on an inner split of the training part
    # (kfw.core.calibration): "platt" (binary), "isotonic", "temperature"; "none" by default
    calibration: Literal["none", "platt", "isotonic", "temperature"] = "none"
    ensemble: EnsembleSpec = dataclasses.field(default_factory=EnsembleSpec)
    early_stopping: EarlyStopping = dataclasses.field(default_factory=EarlyStopping)
    refuse: tuple[Refusal, ...] = ()
    target_transform: Literal["none", "log1p"] = "none"
    row_ids: bool = False
    unseen_categories: Literal["missing", "error"] = "missing"
    seed: int = 42
    description: str = ""
    positive_class: Any = None
    deadline: str = ""  # the final submission deadline, ISO date (kfw campaign counts down)
    daily_submissions: int = 5  # Kaggle's limit of submissions per UTC day
    dir: Path = Path(".")

    @property
    def targets(self) -> tuple[str, ...]:
        """Every target column (one for most competitions)."""
        return (self.target,) if isinstance(self.target, str) else tuple(self.target)

    @property
    def multi_target(self) -> bool:
        return len(self.targets) > 1

    def with_preset(self, name: str) -> Competition:
        """This competition with preset ``name``'s roster (``default``: the ``[[models]]``)."""
        if name == DEFAULT_PRESET:
            return self
        if name not in self.presets:
            known = ", ".join([DEFAULT_PRESET, *self.presets])
            raise ConfigError(f"{self.slug} has no preset {name!r} (it has: {known})")
        return dataclasses.replace(self, models=self.presets[name].models)

    def model(self, label: str) -> ModelSpec:
        """The roster entry called ``label`` (this roster's, else a preset's), or a bare spec
        for any registered model."""
        for m in (*self.models, *(m for p in self.presets.values() for m in p.models)):
            if m.label == label:
                return m
        return ModelSpec(name=label)


def check_calibration(spec: Competition) -> None:
    """A calibrator maps class probabilities: a classification task, Platt's only binary."""
    if spec.calibration == "none":
        return
    if spec.task == "regression" or spec.multi_target:
        what = "multi-target" if spec.multi_target else "regression"
        raise ConfigError(f"calibration maps class probabilities; {spec.slug} is {what}")
    if spec.calibration == "platt" and spec.task != "binary":
        raise ConfigError(
            "platt scaling is binary: use temperature (or isotonic) for several classes"
        )


def check_threshold(spec: Competition) -> None:
    """``threshold = "tune"`` needs one binary target scored on labels (accuracy, F1 ...)."""
    if spec.threshold == "fixed":
        return
    if spec.task != "binary" or spec.multi_target:
        raise ConfigError(
            f'threshold = "tune" is for one binary target; {spec.slug} is '
            f"{'multi-target' if spec.multi_target else spec.task}"
        )
    metric = get_metric(spec.metric)
    if not uses_threshold(metric, spec.task):
        raise ConfigError(
            f'threshold = "tune" needs a metric scored on labels (accuracy, f1 ...); '
            f"{metric.name} reads the probabilities, so no threshold changes it"
        )


def builtin_competitions_dir() -> Path:
    """The ``competitions/`` folder shipped with kfw."""
    import competitions

    return Path(competitions.__file__).parent


def home(path: str | os.PathLike[str] | None = None) -> Path:
    """``KFW_HOME``: where ``data/``, ``runs/``, ``submissions/`` and ``reports/`` live."""
    return Path(path or os.environ.get("KFW_HOME") or ".").resolve()


def competition_dirs(kfw_home: Path) -> dict[str, Path]:
    """Every competition folder kfw knows: its own, then ``$KFW_HOME/competitions`` (wins)."""
    found: dict[str, Path] = {}
    for root in (builtin_competitions_dir(), kfw_home / "competitions"):
        if root.is_dir():
            for toml in sorted(root.glob("*/competition.toml")):
                found[toml.parent.name] = toml.parent
    return found


def load_competition(slug: str, kfw_home: Path) -> Competition:
    """Read and check ``competition.toml`` of ``slug``.

    Raises
    ------
    ConfigError
        Unknown competition (the message lists the known ones) or an invalid file.
    """
    dirs = competition_dirs(kfw_home)
    if slug not in dirs:
        known = ", ".join(sorted(dirs)) or "none"
        raise ConfigError(f"unknown competition {slug!r} (known: {known})")
    path = dirs[slug] / "competition.toml"
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    raw = dict(raw)
    raw.setdefault("slug", slug)
    try:
        raw["folds"] = from_dict(_fold_scheme_type(), raw.get("folds", {}), "folds")
        spec = from_dict(Competition, raw, "")
    except ConfigError as exc:  # name the file: "Competition: unknown key" alone says not where
        raise ConfigError(f"{path}: {exc}") from None
    spec = dataclasses.replace(spec, dir=dirs[slug])
    _check_competition(spec, path)
    return spec


def _check_competition(spec: Competition, path: Path) -> None:

    try:
        check_metric_task(get_metric(spec.metric), spec.task)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if spec.submission.columns[0] != spec.id:
        raise ConfigError(f"{path}: submission.columns must start with the id column {spec.id!r}")
    if spec.task == "regression" and spec.submission.format != "value":
        raise ConfigError(f"{path}: a regression submits format = 'value'")
    if spec.task != "regression" and spec.submission.format == "value":
        raise ConfigError(f"{path}: a {spec.task} task submits format 'label' or 'proba'")
    if spec.multi_target:
        if spec.task == "multiclass":
            raise ConfigError(
                f"{path}: several targets must each be binary or regression, not multiclass"
            )
        if tuple(spec.submission.columns[1:]) != spec.targets:
            raise ConfigError(
                f"{path}: submission.columns must be the id and then the targets {list(spec.targets)}"
            )
    try:
        check_threshold(spec)
        check_calibration(spec)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if not spec.models:
        raise ConfigError(f"{path}: the roster ([[models]]) is empty")
    for where, models in [("[[models]]", spec.models)] + [
        (f"[presets.{name}]", p.models) for name, p in spec.presets.items()
    ]:
        labels = [m.label for m in models]
        if not labels:
            raise ConfigError(f"{path}: the roster of {where} is empty")
        if len(set(labels)) != len(labels):
            raise ConfigError(f"{path}: two members of {where} share a name; give one an alias")
    if DEFAULT_PRESET in spec.presets:
        raise ConfigError(f"{path}: [presets.{DEFAULT_PRESET}] is the [[models]] roster's name")
