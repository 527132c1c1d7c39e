"""``kfw.dl.idx``: the IDX format of MNIST read back exactly; bad files give one clear line."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from kfw.dl.idx import STANDARD_NAMES, load_idx_dir, read_idx
from kfw.errors import DataError

SHARED_MNIST = Path(__file__).resolve().parents[3].parent / "shared" / "datasets" / "mnist"
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]  # its README


def write_idx(path: Path, array: np.ndarray) -> Path:
    """The IDX encoding of ``array``: magic 0x0000<type><ndim>, big-endian sizes, then data."""
    codes = {np.dtype("uint8"): 0x08, np.dtype("int32"): 0x0C, np.dtype("float32"): 0x0D}
    head = bytes([0, 0, codes[array.dtype], array.ndim])
    head += np.array(array.shape, dtype=">u4").tobytes()
    raw = head + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(raw) if path.name.endswith(".gz") else raw)
    return path


def make_idx_dir(folder: Path, n_train: int = 50, n_test: int = 20, gz: bool = True) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = [
        rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n_train).astype(np.uint8),
        rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n_test).astype(np.uint8),
    ]
    for name, arr in zip(STANDARD_NAMES, arrays, strict=False):
        write_idx(folder / (name + (".gz" if gz else "")), arr)
    return folder


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
        np.array([7, 0, 255], dtype=np.uint8),
        np.array([[-5, 1 << 20], [3, -(1 << 30)]], dtype=np.int32),
        np.array([1.5, -2.25], dtype=np.float32),
    ],
)
def test_roundtrip(tmp_path: Path, suffix: str, array: np.ndarray) -> None:
    out = read_idx(write_idx(tmp_path / f"a{suffix}", array))
    assert out.shape == array.shape
    assert out.dtype == array.dtype  # native byte order, same kind
    np.testing.assert_array_equal(out, array)
    out[...] = 0  # a writable copy, not a view of a read-only buffer


def test_load_dir_gz_and_raw(tmp_path: Path) -> None:
    for gz in (True, False):
        x_tr, y_tr, x_te, y_te = load_idx_dir(make_idx_dir(tmp_path / str(gz), gz=gz))
        assert x_tr.shape == (50, 28, 28) and y_tr.shape == (50,)
        assert x_te.shape == (20, 28, 28) and y_te.shape == (20,)
    np.testing.assert_array_equal(load_idx_dir(tmp_path / "True")[0], x_tr)


def _one_line(exc: pytest.ExceptionInfo[DataError], *needles: str) -> None:
    message = str(exc.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message


def test_bad_magic(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 12)
    with pytest.raises(DataError) as exc:
        read_idx(path)
    _one_line(exc, str(path), "magic")


def test_unknown_type_byte(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_bytes(b"\x00\x00\x07\x01\x00\x00\x00\x01\x00")
    with pytest.raises(DataError) as exc:
        read_idx(path)
    _one_line(exc, "magic")


@pytest.mark.parametrize("cut", [-1, -100, 6])
def test_truncated(tmp_path: Path, cut: int) -> None:
    path = write_idx(tmp_path / "x", np.zeros((3, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:cut])
    with pytest.raises(DataError) as exc:
        read_idx(path)
    _one_line(exc, str(path), "truncated")


def test_trailing_bytes(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "x", np.zeros(4, np.uint8))
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(DataError) as exc:
        read_idx(path)
    _one_line(exc, "trailing")


def test_bad_gzip_and_missing(tmp_path: Path) -> None:
    bad = tmp_path / "x.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(DataError) as exc:
        read_idx(bad)
    _one_line(exc, str(bad))
    with pytest.raises(DataError) as exc:
        read_idx(tmp_path / "absent")
    _one_line(exc, "absent")


def test_dir_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError) as exc:
        load_idx_dir(tmp_path / "nowhere")
    _one_line(exc, "nowhere")
    folder = make_idx_dir(tmp_path / "d")
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as exc:
        load_idx_dir(folder)
    _one_line(exc, "t10k-labels-idx1-ubyte")


def test_mismatched_counts(tmp_path: Path) -> None:
    folder = make_idx_dir(tmp_path / "d")
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(49, np.uint8))
    with pytest.raises(DataError) as exc:
        load_idx_dir(folder)
    _one_line(exc, "50 images", "49 labels")


def test_wrong_rank(tmp_path: Path) -> None:
    folder = make_idx_dir(tmp_path / "d")
    write_idx(folder / "t10k-images-idx3-ubyte.gz", np.zeros((20, 784), np.uint8))
    with pytest.raises(DataError) as exc:
        load_idx_dir(folder)
    _one_line(exc, "3-d")


@pytest.mark.shared
def test_real_mnist() -> None:
    if not SHARED_MNIST.is_dir():
        pytest.skip("../shared/datasets/mnist is absent")
    x_tr, _y_tr, x_te, y_te = load_idx_dir(SHARED_MNIST)
    assert x_tr.shape == (60000, 28, 28) and x_te.shape == (10000, 28, 28)
    assert x_tr.dtype == np.uint8 and x_tr.max() == 255
    assert np.bincount(y_te).tolist() == MNIST_TEST_COUNTS
