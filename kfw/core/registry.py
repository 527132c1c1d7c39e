"""The model registry: names -> estimator classes, imported lazily.

A roster names models (``lgbm``, ``ridge``, ``scratch-gbm`` ...); :func:`make_estimator` builds
the task's estimator with the roster's parameters, the run's seed and thread count. Unknown
names and unknown parameters are refused with the list of what exists.

kfw owns the mechanism; the ``models`` package fills it (``models/registry.py``) and is loaded
by name on first use, so the code dependency points one way (models -> kfw) and ``kfw --help``
imports no model library.
"""

from __future__ import annotations

import importlib
import inspect
import os
from dataclasses import dataclass
from typing import Any

from kfw.errors import ConfigError


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: where its classes live and which tasks it serves.

    ``regressor`` / ``classifier`` are ``"module:Class"`` paths; either may be None.
    """

    name: str
    description: str
    regressor: str | None = None
    classifier: str | None = None
    space: str | None = None  # "module:function(trial, task) -> params" for kfw tune
    # how much freedom the model has to fit noise, for choosing among runs that CV cannot tell
    # apart (kfw.core.noise): 1 linear, 2 neighbours / kernels / one tree, 3 bagged trees,
    # 4 boosted trees, 5 networks
    complexity: int = 4

    @property
    def tasks(self) -> tuple[str, ...]:
        tasks = ("regression",) if self.regressor else ()
        return tasks + (("binary", "multiclass") if self.classifier else ())


REGISTRY: dict[str, ModelEntry] = {}
PLUGINS = ("models",)
_loaded = False
# kfw's own parameters of any classifier: resampling and class weights of the training part,
# applied by a wrapper ("module:Class", set by the plugin, see models/_resample.py)
RESAMPLE_PARAMS = {"resample": "method", "resample_ratio": "ratio", "class_weight": "class_weight"}
_resampler: list[str] = []
# kfw's own parameter of any regressor: fit on a transform of the target, predict in its units
# (a wrapper "module:Class", set by the plugin, see models/_target.py)
TARGET_PARAM = "target_transform"
_target_wrapper: list[str] = []


def _load_plugins() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for name in PLUGINS:
            importlib.import_module(name)


def entries() -> list[ModelEntry]:
    """Every registered model, by name."""
    _load_plugins()
    return [REGISTRY[k] for k in sorted(REGISTRY)]


def register(entry: ModelEntry) -> None:
    """Add a model (scratch models and torch networks register themselves this way)."""
    REGISTRY[entry.name] = entry


def register_resampler(path: str) -> None:
    """The wrapper class (``"module:Class"``) that ``resample`` / ``class_weight`` build."""
    _resampler[:] = [path]


def register_target_wrapper(path: str) -> None:
    """The wrapper class (``"module:Class"``) that ``target_transform`` builds."""
    _target_wrapper[:] = [path]


def get_entry(name: str) -> ModelEntry:
    _load_plugins()
    if name not in REGISTRY:
        raise ConfigError(f"unknown model {name!r} (registered: {', '.join(sorted(REGISTRY))})")
    return REGISTRY[name]


def complexity(name: str) -> int:
    """The registered complexity rank of model ``name`` (4, boosted trees, when unknown)."""
    _load_plugins()
    entry = REGISTRY.get(name)
    return entry.complexity if entry is not None else 4


def estimator_class(name: str, task: str) -> Any:
    """The class of model ``name`` for ``task`` (or its factory), imported on first use.

    A factory is called as ``factory(params, random_state=..., n_jobs=...)`` and checks its
    own parameters.
    """
    entry = get_entry(name)
    path = entry.regressor if task == "regression" else entry.classifier
    if path is None:
        raise ConfigError(
            f"model {name!r} does not fit a {task} task (it serves: {', '.join(entry.tasks)})"
        )
    module, cls = path.split(":")
    return getattr(importlib.import_module(module), cls)


def passive_openmp() -> None:
    """Ask OpenMP to sleep, not spin, while it waits (unless the user chose otherwise).

    LightGBM and XGBoost fit with OpenMP threads that by default spin while waiting for
    each other; beside any other busy process on a small machine that turns a 2-thread fit
    into a 7x slower one (measured: 15.8 s against 2.3 s on 2 cores with one busy process).
    It only takes effect before the OpenMP runtime is loaded, hence here, before any model
    library is imported. The torch-only commands (``kfw lm``, ``kfw rl``, ``kfw repro``) skip
    it (``kfw.cli.TORCH_ONLY``): their small kernels pay for every wake-up of a sleeping thread.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def make_estimator(
    name: str,
    task: str,
    params: dict[str, Any] | None = None,
    random_state: int = 0,
    n_jobs: int = 1,
) -> Any:
    """Build the estimator of ``name`` for ``task``.

    ``random_state`` and ``n_jobs`` are set when the class takes them, unless ``params`` sets
    them itself. ``resample`` ("under", "over", "smote"), ``resample_ratio`` and
    ``class_weight`` ("balanced"), on any classifier, are kfw's: the built estimator is wrapped
    in the resampler (``models._resample.Resampled``), which touches the training rows of
    each fit only. ``target_transform`` ("log1p", "boxcox", "yeo-johnson"), on any
    regressor, wraps it in ``models._target.TransformedTarget``: fitted on the transformed
    target of each fit's training rows, predicting in the target's own units.

    Raises
    ------
    ConfigError
        Unknown model, a task it does not serve, or a parameter it does not take.
    """
    passive_openmp()
    cls = estimator_class(name, task)
    given = dict(params or {})
    wrap = {RESAMPLE_PARAMS[k]: given.pop(k) for k in list(given) if k in RESAMPLE_PARAMS}
    if wrap and task == "regression":
        raise ConfigError(
            f"model {name!r}: {', '.join(k for k in RESAMPLE_PARAMS if k in params)}: resampling "
            "and class weights are for classification, and this task is regression"
        )
    transform = given.pop(TARGET_PARAM, None)
    if transform is not None and task != "regression":
        raise ConfigError(
            f"model {name!r}: {TARGET_PARAM} transforms a regression target, and this task is {task}"
        )
    estimator = _build(name, cls, given, random_state, n_jobs)
    if wrap:
        estimator = _wrapped(name, _resampler, estimator, random_state=random_state, **wrap)
    if transform is not None:
        estimator = _wrapped(name, _target_wrapper, estimator, method=transform)
    return estimator


def _wrapped(name: str, path: list[str], estimator: Any, **options: Any) -> Any:
    """``estimator`` inside the wrapper class registered at ``path``, its settings checked."""
    _load_plugins()
    module, cls = path[0].split(":")
    wrapper = getattr(importlib.import_module(module), cls)(estimator, **options)
    try:
        wrapper.check()
    except ValueError as exc:
        raise ConfigError(f"model {name!r}: {exc}") from None
    return wrapper


def _build(name: str, cls: Any, given: dict[str, Any], random_state: int, n_jobs: int) -> Any:
    if not isinstance(cls, type):  # a factory (e.g. a scratch model behind kfw's design matrix)
        estimator = cls(dict(given), random_state=random_state, n_jobs=n_jobs)
    else:
        accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
        unknown = sorted(set(given) - accepted)
        if unknown:
            raise ConfigError(
                f"model {name!r} has no parameter {unknown[0]!r} (it takes: {', '.join(sorted(accepted))})"
            )
        params = dict(given)
        for key, value in (("random_state", random_state), ("n_jobs", n_jobs)):
            if key in accepted:
                params.setdefault(key, value)
        estimator = cls(**params)
    check_param_types(name, estimator, set(given))
    return estimator


# parameter types, checked when the estimator is built (before any data is read)


def check_param_types(name: str, estimator: Any, keys: set[str]) -> None:
    """Refuse a parameter in ``keys`` whose value does not fit its declared type.

    Checked on the estimator and the estimators nested in it (a wrapper's ``estimator``):
    scikit-learn's own constraints where the class has them (``_parameter_constraints``),
    else the annotation of the class's ``__init__`` argument (``int``, ``float | None``,
    ``tuple[int, ...]``, ``Literal[...]`` ...). An argument without a usable annotation is
    not checked: the library says what it thinks at fit time.
    """
    for obj in _nested(estimator):
        values = obj.get_params(deep=False)
        own = keys & set(values)
        if not own:
            continue
        if getattr(obj, "_parameter_constraints", None) and hasattr(obj, "_validate_params"):
            try:
                obj._validate_params()
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"model {name!r}: {str(exc).splitlines()[0]}") from None
            continue
        hints = _init_hints(type(obj))
        for key in sorted(own):
            hint, value = hints.get(key), values[key]
            if hint is not None and not _fits(value, hint):
                raise ConfigError(
                    f"model {name!r}: parameter {key!r} takes {_describe(hint)}, got {value!r}"
                )


def _nested(estimator: Any) -> list[Any]:
    out, todo = [], [estimator]
    while todo:
        obj = todo.pop()
        if not hasattr(obj, "get_params"):
            continue
        out.append(obj)
        todo += [v for v in obj.get_params(deep=False).values() if hasattr(v, "get_params")]
    return out


def _init_hints(cls: type) -> dict[str, Any]:
    import typing

    try:
        return typing.get_type_hints(cls.__init__)
    except Exception:  # an annotation that does not resolve is not checked
        return {}


def _fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` is an instance of the annotation ``hint`` (unknown forms pass)."""
    import types
    import typing

    if hint is Any:
        return True
    if hint is None or hint is type(None):
        return value is None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, h) for h in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:  # an int is a float too (TOML's 1 for 1.0)
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin in (tuple, list) or hint in (tuple, list):
        return isinstance(value, (tuple, list))  # TOML arrays arrive as lists
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True  # a callable, a protocol, a string annotation: not checked here


def _describe(hint: Any) -> str:
    import types
    import typing

    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(h) for h in typing.get_args(hint))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if hint is None or hint is type(None):
        return "None"
    word = origin.__name__ if origin is not None else getattr(hint, "__name__", str(hint))
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def search_space(name: str) -> Any:
    """The Optuna search-space function registered next to model ``name``."""
    entry = get_entry(name)
    if entry.space is None:
        raise ConfigError(f"model {name!r} has no search space to tune")
    module, fn = entry.space.split(":")
    return getattr(importlib.import_module(module), fn)
