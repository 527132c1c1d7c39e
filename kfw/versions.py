"""The versions that shape a run's results: recorded with every run, compared across workers."""

from __future__ import annotations

import importlib.metadata
import platform

from kfw import __version__

LIBRARIES = (
    "numpy",
    "pandas",
    "polars",
    "scikit-learn",
    "lightgbm",
    "xgboost-cpu",
    "xgboost",
    "catboost",
    "optuna",
    "torch",
)


def library_versions() -> dict[str, str]:
    """The installed version of each of :data:`LIBRARIES` (those not installed are left out)."""
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def versions() -> dict[str, str]:
    """kfw's version (of the code this process runs), Python's (major.minor: what pickles
    depend on) and :func:`library_versions`."""
    python = ".".join(platform.python_version_tuple()[:2])
    return {"kfw": __version__, "python": python, **library_versions()}
