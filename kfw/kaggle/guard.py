"""Refuse the files a competition declares it must never take in (``[[refuse]]`` in its spec).

Digit Recognizer's spec declares MNIST: its test images are MNIST digits, so MNIST's own
labelled files would leak its answers. Every way data enters a competition (``kfw data
import`` of a folder or zip, ``kfw cv --extra-train``) is checked here first: a file whose
name matches a refusal's ``file_pattern``, or whose SHA-256 (of the file, or of its
gunzipped content) is one of its digests, is refused in one line, before anything is written.
The rule is data (:class:`kfw.core.config.Refusal`); this module only applies it.
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

from kfw.core.config import Competition, Refusal
from kfw.errors import DataError

CHUNK = 1 << 20


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


def refuse_declared(spec: Competition, path: Path) -> None:
    """Refuse ``path`` (a folder, zip or file) if it holds a file ``spec`` refuses.

    Raises
    ------
    DataError
        One line naming the offending file and the refusal's reason.
    """
    for refusal in spec.refuse:
        _refuse(refusal, spec.slug, Path(path))


def _refuse(r: Refusal, slug: str, path: Path) -> None:
    pattern = re.compile(r.file_pattern, re.IGNORECASE) if r.file_pattern else None
    hint = f"; {r.hint}" if r.hint else ""
    for name, open_ in _files(path):
        if pattern is not None and pattern.search(Path(name).name):
            what = r.pattern_means or f"a {r.name} file"
            raise DataError(f"{name}: {what} refused for {slug} ({r.why}){hint}")
        if not r.sha256:
            continue
        try:
            for digest in _digests(name, open_):
                if digest in r.sha256:
                    raise DataError(
                        f"{name}: this is {r.name}'s {r.sha256[digest]} (SHA-256 match), refused "
                        f"for {slug} ({r.why})"
                    )
        except (OSError, zipfile.BadZipFile, zlib.error, EOFError):
            continue  # an unreadable file is the importer's to report, not the guard's
