"""The parameters ``kfw tune`` found, kept where ``kfw cv --tuned`` finds them.

``$KFW_HOME/tune/<slug>/<model>.json`` holds the best trial's parameters with the folds it
was chosen on (``fold_hash``), so a run that uses them on those same folds can be labelled
optimistic; the Optuna study itself sits beside it (``optuna.db``) unless a storage URL says
otherwise.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kfw import files
from kfw.errors import KfwError


def tune_dir(kfw_home: Path, slug: str) -> Path:
    """Where a competition's studies and tuned parameters live."""
    return kfw_home / "tune" / slug


def best_params_path(kfw_home: Path, slug: str, model: str) -> Path:
    return tune_dir(kfw_home, slug) / f"{model}.json"


def save_tuned(kfw_home: Path, slug: str, model: str, payload: dict[str, Any]) -> Path:
    """Write what the search found (``params``, ``fold_hash``, ``nested`` ...) atomically."""
    return files.write_json(best_params_path(kfw_home, slug, model), payload)


def load_tuned(kfw_home: Path, slug: str, model: str) -> dict[str, Any]:
    """What ``kfw tune`` saved for ``model`` (``kfw cv --tuned``): ``params``, ``fold_hash``..."""
    path = best_params_path(kfw_home, slug, model)
    if not path.is_file():
        raise KfwError(
            f"no tuned parameters for {model} on {slug}: run `kfw tune {slug} --model {model}` first"
        )
    return json.loads(path.read_text())
