"""The CIFAR-10 loader on a few generated PNGs in Kaggle's ``cifar-10`` layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from kfw.dl.images import CIFAR10_CLASSES, load_cifar10
from kfw.errors import DataError

N_TRAIN, N_TEST = 7, 3


def _png(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def _cifar(folder: Path, seed: int = 0) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Random 32x32 RGB PNGs, written in shuffled order, with ids 1..N; returns what was written."""
    rng = np.random.default_rng(seed)
    train = rng.integers(0, 256, size=(N_TRAIN, 32, 32, 3), dtype=np.uint8)
    test = rng.integers(0, 256, size=(N_TEST, 32, 32, 3), dtype=np.uint8)
    names = [CIFAR10_CLASSES[i] for i in rng.integers(0, 10, size=N_TRAIN)]
    for i in rng.permutation(N_TRAIN):  # file order must not matter
        _png(folder / "train" / f"{i + 1}.png", train[i])
    for i in range(N_TEST):
        _png(folder / "test" / f"{i + 1}.png", test[i])
    # trainLabels.csv in another order than the ids, as a careless export might write it
    order = rng.permutation(N_TRAIN)
    pd.DataFrame({"id": order + 1, "label": [names[i] for i in order]}).to_csv(
        folder / "trainLabels.csv", index=False
    )
    return train, names, test


def test_pixels_and_labels_come_back_in_id_order(tmp_path: Path) -> None:
    train, names, test = _cifar(tmp_path)
    data = load_cifar10(tmp_path)
    assert data.x_train.dtype == np.uint8 and data.x_train.shape == (N_TRAIN, 32, 32, 3)
    np.testing.assert_array_equal(data.x_train, train)  # PNG is lossless: exact pixels
    np.testing.assert_array_equal(data.train_ids, np.arange(1, N_TRAIN + 1))
    assert [data.classes[k] for k in data.y_train] == names
    assert data.classes == list(CIFAR10_CLASSES)
    np.testing.assert_array_equal(data.x_test, test)
    np.testing.assert_array_equal(data.test_ids, np.arange(1, N_TEST + 1))


def test_ids_sort_numerically_not_as_text(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    pixels = {i: rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8) for i in (2, 10, 1)}
    for i, p in pixels.items():
        _png(tmp_path / "train" / f"{i}.png", p)
    pd.DataFrame({"id": [1, 2, 10], "label": ["cat", "dog", "ship"]}).to_csv(
        tmp_path / "trainLabels.csv", index=False
    )
    data = load_cifar10(tmp_path)
    np.testing.assert_array_equal(data.train_ids, [1, 2, 10])
    np.testing.assert_array_equal(data.x_train[2], pixels[10])
    assert data.y_train.tolist() == [3, 5, 8] and data.x_test is None


def _one_line(folder: Path) -> str:
    with pytest.raises(DataError) as exc:
        load_cifar10(folder)
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_a_wrong_size_image_is_named(tmp_path: Path) -> None:
    _cifar(tmp_path)
    _png(tmp_path / "train" / "3.png", np.zeros((28, 32, 3), dtype=np.uint8))
    message = _one_line(tmp_path)
    assert "3.png" in message and "32x28" in message and "expected 32x32" in message


def test_an_image_without_a_label_is_named(tmp_path: Path) -> None:
    _cifar(tmp_path)
    _png(tmp_path / "train" / f"{N_TRAIN + 1}.png", np.zeros((32, 32, 3), dtype=np.uint8))
    assert f"{N_TRAIN + 1}.png: no label in trainLabels.csv" in _one_line(tmp_path)


def test_an_unknown_class_name_is_named(tmp_path: Path) -> None:
    _cifar(tmp_path)
    labels = pd.read_csv(tmp_path / "trainLabels.csv")
    labels.loc[0, "label"] = "spaceship"
    labels.to_csv(tmp_path / "trainLabels.csv", index=False)
    assert "unknown class 'spaceship'" in _one_line(tmp_path)


def test_packed_archives_are_reported_not_read(tmp_path: Path) -> None:
    pd.DataFrame({"id": [1], "label": ["cat"]}).to_csv(tmp_path / "trainLabels.csv", index=False)
    (tmp_path / "train.7z").write_bytes(b"7z\xbc\xaf\x27\x1c")
    message = _one_line(tmp_path)
    assert "train.7z is not extracted" in message and "7z x train.7z" in message
