"""The IDX file format of MNIST and Fashion-MNIST (LeCun et al.), read into NumPy.

An IDX file is a 4-byte magic number ``0x00 0x00 <type> <ndim>``, ``ndim`` big-endian int32
dimension sizes, then the data in C order, big-endian. The four standard files of a dataset
(``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
``t10k-labels-idx1-ubyte``, each optionally ``.gz``) live in one directory.

Plain NumPy, no torch: the data layer of the paper reproductions and of any dataset in this format.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from kfw.errors import DataError

# type byte -> big-endian dtype, from the format's definition
_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

STANDARD_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (raw, or gzip when its name ends in ``.gz``).

    Parameters
    ----------
    path : str or Path
        The file.

    Returns
    -------
    numpy.ndarray
        The array in its stored shape, native byte order (``uint8`` for MNIST).

    Raises
    ------
    DataError
        One line naming the file: missing, unreadable gzip, bad magic number, or a size that
        does not match the header (a truncated or padded file).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such IDX file")
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    if len(raw) < 4:
        raise DataError(f"{path}: not an IDX file ({len(raw)} bytes, no header)")
    zero, kind, ndim = int.from_bytes(raw[:2], "big"), raw[2], raw[3]
    if zero != 0 or kind not in _TYPES or ndim == 0:
        raise DataError(
            f"{path}: not an IDX file (magic number 0x{raw[:4].hex()}, "
            "expected 0x0000 then a type byte in 08/09/0B/0C/0D/0E and a dimension count)"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes, need {header})")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _TYPES[kind]
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        state = "truncated" if len(raw) < expected else "has trailing bytes"
        raise DataError(
            f"{path}: IDX file {state}: header says shape {shape} ({expected} bytes), "
            f"file has {len(raw)} bytes"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))  # a writable copy in native byte order


def _find(folder: Path, name: str) -> Path:
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    raise DataError(f"{folder}: missing {name}[.gz] (expected the four standard IDX files)")


def load_idx_dir(
    folder: str | Path,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read the four standard IDX files of a directory (MNIST, Fashion-MNIST).

    Parameters
    ----------
    folder : str or Path
        A directory holding ``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
        ``t10k-images-idx3-ubyte[.gz]`` and ``t10k-labels-idx1-ubyte[.gz]``.

    Returns
    -------
    x_train, y_train, x_test, y_test : numpy.ndarray
        Images ``(n, rows, cols)`` uint8 and labels ``(n,)``.

    Raises
    ------
    DataError
        A missing directory or file, a bad file, images that are not 3-d, labels that are not
        1-d, or image and label counts that differ.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such data directory (expected the four IDX files of MNIST)")
    paths = [_find(folder, name) for name in STANDARD_NAMES]
    x_train, y_train, x_test, y_test = (read_idx(p) for p in paths)
    for images, labels, pi, pl in (
        (x_train, y_train, paths[0], paths[1]),
        (x_test, y_test, paths[2], paths[3]),
    ):
        if images.ndim != 3:
            raise DataError(f"{pi}: images must be 3-d (n, rows, cols), got shape {images.shape}")
        if labels.ndim != 1:
            raise DataError(f"{pl}: labels must be 1-d, got shape {labels.shape}")
        if len(images) != len(labels):
            raise DataError(
                f"{pi.name} has {len(images)} images but {pl.name} has {len(labels)} labels"
            )
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(
            f"{folder}: train images are {x_train.shape[1:]} but test images are {x_test.shape[1:]}"
        )
    return x_train, y_train, x_test, y_test
