"""The MNIST guard: the original MNIST files never enter the Digit Recognizer pipeline.

The refusal is data in Digit Recognizer's spec (``[[refuse]]``). Generated files stand in for
MNIST: IDX files (the format, with the official names but not the official bytes), and a tiny
file whose SHA-256 a user's copy of the spec adds to MNIST's digests.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kfw.cli import main
from kfw.core.config import builtin_competitions_dir, load_competition
from tests.kfw.study.test_ablate import pixels_competition

SLUG = "digit-recognizer"


def _kaggle_files(folder: Path) -> Path:
    """Digit Recognizer's three files, a few rows of 784 pixels (valid, so only the guard refuses)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    pixels = pd.DataFrame(
        rng.integers(0, 256, size=(20, 784)), columns=[f"pixel{i}" for i in range(784)]
    )
    pixels.insert(0, "label", np.arange(20) % 10)
    pixels.to_csv(folder / "train.csv", index=False)
    pixels.drop(columns="label").head(5).to_csv(folder / "test.csv", index=False)
    pd.DataFrame({"ImageId": range(1, 6), "Label": 0}).to_csv(
        folder / "sample_submission.csv", index=False
    )
    return folder


def _idx_images(path: Path, n: int = 3) -> None:
    """A small IDX3 file of n 28x28 uint8 images (MNIST's format, not its bytes)."""
    header = struct.pack(">BBBBIII", 0, 0, 0x08, 3, n, 28, 28)
    data = header + np.zeros((n, 28, 28), np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)


def _refused(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> str:
    with pytest.raises(SystemExit) as exc:
        main(["--home", str(home), *args])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert exc.value.code != 0 and out == "" and len(lines) == 1, err
    assert not (home / "data" / SLUG).exists()  # nothing written
    return lines[0]


@pytest.mark.parametrize("name", ["train-images-idx3-ubyte", "t10k-labels-idx1-ubyte.gz"])
def test_idx_files_in_an_import_folder_are_refused(home, tmp_path, capsys, name) -> None:
    source = _kaggle_files(tmp_path / "download")
    _idx_images(source / name)
    line = _refused(capsys, home, "data", "import", SLUG, str(source))
    assert name in line and "MNIST IDX file refused for digit-recognizer" in line


def test_idx_files_inside_a_zip_are_refused(home, tmp_path, capsys) -> None:
    source = _kaggle_files(tmp_path / "download")
    archive = tmp_path / "digit-recognizer.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in source.iterdir():
            zf.write(p, p.name)
        zf.writestr("mnist/train-labels-idx1-ubyte", b"\x00\x00\x08\x01\x00\x00\x00\x00")
    line = _refused(capsys, home, "data", "import", SLUG, str(archive))
    assert "mnist/train-labels-idx1-ubyte" in line


def test_a_renamed_file_with_an_mnist_hash_is_refused(home, tmp_path, capsys) -> None:
    source = _kaggle_files(tmp_path / "download")
    payload = b"pretend these are MNIST's test labels"
    digest = hashlib.sha256(payload).hexdigest()
    # the spec declares the digests: a user's copy of it (which wins) declares this one too
    spec = (builtin_competitions_dir() / SLUG / "competition.toml").read_text()
    mine = home / "competitions" / SLUG / "competition.toml"
    mine.parent.mkdir(parents=True)
    mine.write_text(spec + f'{digest} = "t10k-labels-idx1-ubyte"\n')
    (source / "labels.bin").write_bytes(payload)
    line = _refused(capsys, home, "data", "import", SLUG, str(source))
    assert "labels.bin: this is MNIST's t10k-labels-idx1-ubyte (SHA-256 match)" in line
    # gzipped under another name: the content's hash is checked too
    (source / "labels.bin").unlink()
    (source / "extra.gz").write_bytes(gzip.compress(payload))
    line = _refused(capsys, home, "data", "import", SLUG, str(source))
    assert "extra.gz: this is MNIST's t10k-labels-idx1-ubyte" in line


def test_the_same_folder_without_mnist_imports(home, tmp_path) -> None:
    source = _kaggle_files(tmp_path / "download")
    (source / "notes.txt").write_text("not MNIST")
    with pytest.raises(SystemExit) as exc:
        main(["--home", str(home), "data", "import", SLUG, str(source)])
    assert exc.value.code in (0, None)
    assert (home / "data" / SLUG / "train.csv").is_file()


def test_extra_training_data_from_mnist_is_refused(home, tmp_path, capsys) -> None:
    extra = tmp_path / "train-images-idx3-ubyte"
    _idx_images(extra)
    line = _refused(capsys, home, "cv", SLUG, "--extra-train", str(extra), "--no-wandb")
    assert "train-images-idx3-ubyte" in line and "refused for digit-recognizer" in line


def test_other_competitions_are_not_guarded(home, tmp_path) -> None:
    download = pixels_competition(home)  # a Digit Recognizer look-alike whose spec refuses nothing
    _idx_images(download / "train-images-idx3-ubyte")
    with pytest.raises(SystemExit) as exc:
        main(["--home", str(home), "data", "import", "pixels", str(download)])
    assert exc.value.code in (0, None)
    (mnist,) = load_competition(SLUG, home).refuse  # the refusal is data in the spec
    assert mnist.name == "MNIST" and len(mnist.sha256) == 4
    assert load_competition("pixels", home).refuse == ()
