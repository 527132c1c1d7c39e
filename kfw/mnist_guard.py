"""Keep the original MNIST files out of the Digit Recognizer pipeline.

Kaggle's Digit Recognizer test images are MNIST digits, so MNIST's own labelled files (the IDX
files LeCun, Cortes and Burges distribute, in ``../shared/datasets/mnist`` for the paper
reproductions) would leak its answers. Every way extra data enters that competition (``kfw data
import`` of a folder or zip, ``kfw cv --extra-train``) is checked here first: a file named like
an IDX file (``*-idx3-ubyte*``, ``*-idx1-ubyte*``), or whose SHA-256 (of the file, or of its
gunzipped content) is one of the official MNIST files', is refused in one line, before anything
is written.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from kfw.errors import DataError

GUARDED = frozenset({"digit-recognizer"})  # Kaggle slugs whose test set is MNIST

# SHA-256 of the uncompressed official MNIST files (../shared/datasets/mnist/README.md)
MNIST_SHA256 = {
    "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db": "train-images-idx3-ubyte",
    "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5": "train-labels-idx1-ubyte",
    "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7": "t10k-images-idx3-ubyte",
    "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2": "t10k-labels-idx1-ubyte",
}
IDX_NAME = re.compile(r"-idx[13]-ubyte", re.IGNORECASE)
CHUNK = 1 << 20


def guarded(slug: str, kaggle: str | None = None) -> bool:
    """Whether a competition (by slug or Kaggle slug) must never see MNIST."""
    return slug in GUARDED or (kaggle or "") in GUARDED


def _sha256(stream: IO[bytes]) -> str:
    h = hashlib.sha256()
    while chunk := stream.read(CHUNK):
        h.update(chunk)
    return h.hexdigest()


def _digests(name: str, open_: Callable[[], IO[bytes]]) -> Iterator[str]:
    """The file's SHA-256 and, for a gzip file, that of its content."""
    with open_() as f:
        yield _sha256(f)
    if name.lower().endswith(".gz"):
        try:
            with open_() as raw, gzip.open(raw) as f:
                yield _sha256(f)
        except (OSError, EOFError, zlib.error):
            return  # named .gz but not gzip: its own hash was checked above


def _files(path: Path) -> Iterator[tuple[str, Callable[[], IO[bytes]]]]:
    """``(name, opener)`` of every file in a folder (recursively), a zip (nested zips too) or a file."""
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            if p.is_file():
                yield from _files(p)
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            for member in zf.namelist():
                if member.endswith("/"):
                    continue
                yield f"{path}:{member}", lambda m=member: zf.open(m)
                if member.lower().endswith(".zip"):  # Kaggle zips some files again
                    with zf.open(member) as inner:
                        data = io.BytesIO(inner.read())
                    with zipfile.ZipFile(data) as nested:
                        for m in nested.namelist():
                            if not m.endswith("/"):
                                yield f"{path}:{member}:{m}", lambda m=m, z=nested: z.open(m)
    elif path.is_file():
        yield str(path), lambda: path.open("rb")


def refuse_mnist(slug: str, path: Path, kaggle: str | None = None) -> None:
    """Refuse ``path`` (a folder, zip or file) as data for ``slug`` if it holds MNIST's files.

    Raises
    ------
    DataError
        One line naming the offending file, when ``slug`` is guarded and ``path`` holds an
        IDX-named file or a file with an official MNIST hash.
    """
    if not guarded(slug, kaggle):
        return
    why = "Kaggle's Digit Recognizer test images are MNIST digits, so MNIST's labels would leak its answers"
    for name, open_ in _files(Path(path)):
        if IDX_NAME.search(Path(name).name):
            raise DataError(
                f"{name}: an MNIST IDX file refused for {slug} ({why}); keep MNIST for `kfw repro`"
            )
        try:
            for digest in _digests(name, open_):
                if digest in MNIST_SHA256:
                    raise DataError(
                        f"{name}: this is MNIST's {MNIST_SHA256[digest]} (SHA-256 match), refused "
                        f"for {slug} ({why})"
                    )
        except (OSError, zipfile.BadZipFile, zlib.error, EOFError):
            continue  # an unreadable file is the importer's to report, not the guard's
