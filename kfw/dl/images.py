"""Image competitions in Kaggle's file layout: CIFAR-10 (``kaggle competitions download cifar-10``).

Kaggle's ``cifar-10`` competition ships ``train.7z`` and ``test.7z`` (one ``<id>.png`` per
image, 32 x 32 RGB, ids 1..50000 and 1..300000), ``trainLabels.csv`` (``id,label`` with the
class names) and ``sampleSubmission.csv``. :func:`load_cifar10` reads the extracted layout::

    DIR/trainLabels.csv
    DIR/train/1.png  DIR/train/2.png ...
    DIR/test/1.png   ...            (optional)

into uint8 arrays in id order. Pillow is imported when the first image is read; py7zr is not a
dependency, so archives that are still packed are reported in one line with the command that
unpacks them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kfw.errors import DataError

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
CIFAR10_SHAPE = (32, 32, 3)


@dataclass
class ImageSet:
    """Images and labels of an image competition.

    Attributes
    ----------
    x_train : ndarray of shape (n_train, H, W, C), uint8
    y_train : ndarray of shape (n_train,), int64
        Index into ``classes``.
    train_ids : ndarray of shape (n_train,)
    x_test : ndarray of shape (n_test, H, W, C), uint8, or None when there is no ``test/``
    test_ids : ndarray of shape (n_test,) or None
    classes : list of str
    """

    x_train: np.ndarray
    y_train: np.ndarray
    train_ids: np.ndarray
    x_test: np.ndarray | None
    test_ids: np.ndarray | None
    classes: list[str]


def _check_extracted(folder: Path, name: str) -> Path:
    images = folder / name
    if images.is_dir():
        return images
    if (folder / f"{name}.7z").is_file():
        raise DataError(
            f"{folder / f'{name}.7z'} is not extracted: unpack it first (7z x {name}.7z, in {folder}); "
            "kfw does not read .7z archives"
        )
    raise DataError(f"{folder}: no {name}/ folder of PNG images (nor {name}.7z)")


def _pngs(folder: Path) -> tuple[np.ndarray, list[Path]]:
    """Numeric ids and paths of ``<id>.png`` files, in id order."""
    found = []
    for p in folder.glob("*.png"):
        if not p.stem.isdigit():
            raise DataError(f"{p}: image names must be <id>.png with a numeric id")
        found.append((int(p.stem), p))
    if not found:
        raise DataError(f"{folder}: no <id>.png images")
    found.sort()
    return np.array([i for i, _ in found]), [p for _, p in found]


def read_images(paths: list[Path], shape: tuple[int, int, int] = CIFAR10_SHAPE) -> np.ndarray:
    """Read PNGs into one uint8 array ``(n, H, W, C)``; every image must have ``shape``.

    Raises
    ------
    DataError
        An unreadable image, or one of another size or channel count (named, with both shapes).
    """
    from PIL import Image, UnidentifiedImageError

    out = np.empty((len(paths), *shape), dtype=np.uint8)  # (n, H, W, C)
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[shape[2]]
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as im:
                if im.size != (shape[1], shape[0]):
                    raise DataError(
                        f"{path}: image is {im.size[0]}x{im.size[1]}, expected {shape[1]}x{shape[0]}"
                    )
                if im.mode != mode:
                    im = im.convert(mode)  # a palette or grey PNG of the right size is fine
                pixels = np.asarray(im, dtype=np.uint8)
        except (OSError, UnidentifiedImageError) as exc:
            raise DataError(f"{path}: not a readable PNG ({exc})") from None
        out[i] = pixels.reshape(shape)
    return out


def load_cifar10(folder: str | Path, classes: tuple[str, ...] = CIFAR10_CLASSES) -> ImageSet:
    """Load Kaggle's ``cifar-10`` files from their extracted folder.

    Parameters
    ----------
    folder : str or Path
        Holds ``trainLabels.csv`` and ``train/`` (PNG per id); ``test/`` is read when present.
    classes : tuple of str
        The class names; a label's index in it is its integer label.

    Returns
    -------
    ImageSet

    Raises
    ------
    DataError
        Archives not extracted, missing ``trainLabels.csv`` or its columns, an image without a
        label or a label without an image, an unknown class name, or an image of the wrong size.
    """
    import pandas as pd

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder (expected Kaggle's cifar-10 files)")
    labels_csv = folder / "trainLabels.csv"
    if not labels_csv.is_file():
        raise DataError(f"{folder}: trainLabels.csv is missing")
    train_dir = _check_extracted(folder, "train")
    labels = pd.read_csv(labels_csv)
    if list(labels.columns[:2]) != ["id", "label"]:
        raise DataError(f"{labels_csv}: expected columns id,label, got {','.join(labels.columns)}")
    if labels["id"].duplicated().any():
        dup = labels["id"][labels["id"].duplicated()].iloc[0]
        raise DataError(f"{labels_csv}: id {dup} appears twice")
    by_id = dict(zip(labels["id"].astype(int), labels["label"].astype(str), strict=True))
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted(set(by_id.values()) - set(index))
    if unknown:
        raise DataError(
            f"{labels_csv}: unknown class {unknown[0]!r} (expected one of {', '.join(classes)})"
        )
    train_ids, train_paths = _pngs(train_dir)
    missing = [i for i in train_ids.tolist() if i not in by_id]
    if missing:
        raise DataError(f"{train_dir / f'{missing[0]}.png'}: no label in {labels_csv.name}")
    orphans = sorted(set(by_id) - set(train_ids.tolist()))
    if orphans:
        raise DataError(f"{labels_csv}: id {orphans[0]} has a label but no {orphans[0]}.png")
    y = np.array([index[by_id[i]] for i in train_ids.tolist()], dtype=np.int64)
    x_test = test_ids = None
    if (folder / "test").is_dir() or (folder / "test.7z").is_file():
        test_ids, test_paths = _pngs(_check_extracted(folder, "test"))
        x_test = read_images(test_paths)
    return ImageSet(read_images(train_paths), y, train_ids, x_test, test_ids, list(classes))
