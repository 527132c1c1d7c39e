"""What the runs of one competition share: its data, folds, design, store and W&B mirror.

:func:`prepare` loads the data (the open copy when no download is present), reads or computes
the persisted folds, builds the design (row features on train and test together, without the
target; the fitted features to clone into every fold) and opens the run store; the
:class:`Context` it returns is what every later stage takes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfw.core.config import Competition
from kfw.core.folds import Folds, get_folds
from kfw.core.metrics import get_metric
from kfw.core.runstore import RunStore
from kfw.kaggle.data import Dataset, data_dir, load_dataset
from kfw.kaggle.guard import refuse_declared
from kfw.pipeline.design import Design, build_design
from kfw.pipeline.mirror import Mirror
from kfw.progress import NULL, Callback


@dataclass
class Context:
    """Everything the runs of one competition share."""

    spec: Competition
    home: Path
    dataset: Dataset
    folds: Folds
    design: Design
    store: RunStore
    mirror: Mirror | None = None  # W&B, called after each run is saved

    def loop_args(self, callback: Callback = NULL, label: str = "model") -> dict[str, Any]:
        """Keyword arguments of :func:`kfw.core.cv.cross_validate` that every caller shares.

        Everything the competition decides (metric, task, fitted features, target transform,
        training-part filters, excluded rows, extra rows, early stopping, the decision threshold, calibration); the caller adds
        the estimator, the target and ``X_test`` when it wants test predictions.
        """
        spec, d = self.spec, self.design
        return dict(
            metric=get_metric(spec.metric), task=spec.task, features=d.features,
            target_transform=spec.target_transform, train_mask=d.train_mask,
            exclude=d.exclude, extra=d.extra, early_stopping=spec.early_stopping,
            threshold=spec.threshold, calibration=spec.calibration, callback=callback,
            label=label,
        )  # fmt: skip


def prepare(
    spec: Competition,
    kfw_home: Path,
    callback: Callback = NULL,
    force_folds: bool = False,
    wandb: bool = True,
    extra_train: Path | None = None,
) -> Context:
    """Load the data (the open copy when none is present), the folds and the design.

    ``wandb=False`` (``--no-wandb``) keeps the runs out of W&B (see :mod:`kfw.pipeline.mirror`).
    ``extra_train`` adds rows to every training part (see :func:`kfw.pipeline.design.build_design`).
    """
    if extra_train is not None:
        refuse_declared(spec, Path(extra_train))
    dataset = load_dataset(spec, kfw_home, callback)
    folds, created = get_folds(
        data_dir(kfw_home, spec.slug),
        spec.folds,
        dataset.train,
        spec.id,
        dataset.y[:, 0]
        if spec.multi_target
        else dataset.y,  # several targets: the first stratifies
        spec.task,
        force=force_folds,
    )
    state = "computed and saved" if created else "read"
    callback.info(f"folds: {spec.folds.name} ({folds.n_fits} fits, hash {folds.hash}), {state}")
    design = build_design(spec, dataset, extra_train)
    # from here on the design holds the rows: drop the raw frames (on a million-row
    # competition they are the largest objects in memory), keep their columns and dtypes
    dataset = dataclasses.replace(dataset, train=dataset.train.head(0), test=dataset.test.head(0))
    if design.extra is not None:
        callback.info(
            f"extra training rows: {len(design.extra[1])} from {extra_train}, in every training part only"
        )
    return Context(
        spec,
        kfw_home,
        dataset,
        folds,
        design,
        RunStore(kfw_home, spec.slug),
        Mirror(kfw_home, enabled=wandb),
    )
