"""Writing files so that a crash never leaves half of one: the one place kfw does it.

Every artefact kfw writes (run records, fold files, submissions, figures, checkpoints, tuning
results) goes to a temporary file beside its destination, named after the process so two
processes never share one, and is renamed into place; the temporary file is removed if the
write fails. A folder is published the same way: built in a staging folder, then renamed.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _temporary(path: Path, suffix: str = "") -> Path:
    # hidden, beside the destination (same file system: the rename is atomic), one per process
    return path.with_name(f".{path.name}.tmp-{os.getpid()}{suffix}")


def write_with(path: Path, write: Callable[[Path], Any], suffix: str = "") -> Path:
    """Call ``write(tmp)`` then rename ``tmp`` to ``path``; ``tmp`` never outlives a failure.

    ``suffix`` ends the temporary name, for writers that read the format from it
    (``savefig`` of a ``.png``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path, suffix)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return write_with(path, lambda tmp: tmp.write_bytes(data))


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_bytes(path, text.encode())


def json_default(obj: Any) -> Any:
    """What ``json.dumps`` cannot write by itself: NumPy scalars and arrays, paths."""
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps(obj: Any, indent: int | None = 2) -> str:
    """``obj`` as JSON text with kfw's conversions, ending in a newline."""
    return json.dumps(obj, indent=indent, default=json_default) + "\n"


def write_json(path: Path, obj: Any, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically."""
    return write_text(path, dumps(obj, indent))


def replace_dir(staging: Path, dest: Path) -> Path:
    """Publish the finished folder ``staging`` as ``dest``, replacing any folder there.

    ``os.replace`` cannot overwrite a non-empty folder, so an old ``dest`` is moved aside
    first, then deleted; if the final rename fails, the old folder is put back.
    """
    if not dest.exists():
        os.replace(staging, dest)
        return dest
    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
    os.replace(dest, old)
    try:
        os.replace(staging, dest)
    except BaseException:  # an interruption too: the old folder goes back
        os.replace(old, dest)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return dest


def write_dir(dest: Path, write: Callable[[Path], Any]) -> Path:
    """Write a whole folder: ``write(staging)`` fills a staging folder beside ``dest``, which is
    then published as ``dest`` (:func:`replace_dir`); an error or an interruption leaves
    ``dest`` as it was and no staging folder behind."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.with_name(f".staging-{dest.name}-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        write(staging)
        replace_dir(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest
