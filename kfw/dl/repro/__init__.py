"""Papers reproduced from their equations, one file per paper.

- :mod:`kfw.dl.repro.batchnorm`: Ioffe & Szegedy (2015), section 4.1 and Figure 1 (MNIST);
- :mod:`kfw.dl.repro.dropout`: Srivastava et al. (2014), Table 2 (MNIST);
- :mod:`kfw.dl.repro.report`: their figures and write-ups (``docs/repro-*.md`` and HTML).

This module holds what they share: the device, the data as tensors, and the run record.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kfw.core.runstore import RunStore, config_key, environment, runs_dir
from kfw.dl.idx import load_idx_dir
from kfw.errors import DataError, KfwError


@dataclass
class Digits:
    """An IDX image dataset as flat tensors on one device, pixels scaled to [0, 1]."""

    x_train: torch.Tensor  # (n_train, rows * cols) float32
    y_train: torch.Tensor  # (n_train,) int64
    x_test: torch.Tensor  # (n_test, rows * cols)
    y_test: torch.Tensor  # (n_test,)
    source: str

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1


def load_digits(folder: str | Path, device: torch.device) -> Digits:
    """Read the four IDX files of ``folder`` into :class:`Digits` on ``device``.

    Raises
    ------
    DataError
        Anything :func:`kfw.dl.idx.load_idx_dir` rejects, or labels outside ``0..255``.
    """
    x_train, y_train, x_test, y_test = load_idx_dir(folder)
    for y, name in ((y_train, "train"), (y_test, "test")):
        if y.size and (y.min() < 0 or y.max() > 255):
            raise DataError(f"{folder}: {name} labels outside 0..255 ({y.min()}..{y.max()})")

    def flat(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x.reshape(len(x), -1).astype(np.float32) / 255.0).to(device)

    def labels(y: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(y.astype(np.int64)).to(device)

    return Digits(flat(x_train), labels(y_train), flat(x_test), labels(y_test), str(folder))


def versions() -> dict[str, Any]:
    """What shapes the numbers beyond the config: torch and the device it ran on."""
    out: dict[str, Any] = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        out["cuda_device"] = torch.cuda.get_device_name(0)
    return out


def save_run(
    home: Path,
    slug: str,
    label: str,
    config: dict[str, Any],
    results: dict[str, Any],
    files: dict[str, bytes],
    seconds: float,
) -> Path:
    """Publish a reproduction run atomically: ``run.json`` + ``results.json`` + figures."""
    import json

    store = RunStore(home, slug)
    key = config_key(config)
    record = {
        "id": store.new_id(label, key),
        "kind": slug,
        "label": label,
        "config": config,
        "config_key": key,
        "environment": {**environment(), **versions()},
        "seconds": round(seconds, 2),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    payload = {"results.json": (json.dumps(results, indent=1) + "\n").encode(), **files}
    return store.save(record, payload)


def complete_runs(home: Path, slug: str, label: str | None = None) -> list[Path]:
    """The folders of every complete run of ``slug`` (optionally with this label), oldest first."""
    import json

    return sorted(
        p.parent
        for p in runs_dir(home, slug).glob("*/run.json")
        if label is None or json.loads(p.read_text()).get("label") == label
    )


def latest_run(home: Path, slug: str, label: str | None = None) -> Path:
    """The folder of the newest complete run of ``slug`` (optionally with this label)."""

    root = runs_dir(home, slug)
    runs = complete_runs(home, slug, label)
    if not runs:
        what = f"{slug} ({label})" if label else slug
        raise KfwError(
            f"no {what} run under {root}: run `kfw repro {slug.removeprefix('repro-')}` first"
        )
    return runs[-1]
