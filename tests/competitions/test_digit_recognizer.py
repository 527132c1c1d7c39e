"""Digit Recognizer: a pixel competition in Kaggle's layout, driven as a user drives it.

Kaggle's files have no id column (``ImageId`` is the test row number, ``row_ids = true``):
a generated 300-image competition in that layout goes through ``kfw cv --model torch-resnet``
(the default roster's network, made small) and ``kfw submit --dry-run``; bad pixels, labels,
image sizes, devices and checkpoints fail in one line with no run written. Without a download, ``kfw cv digit-recognizer`` says in one
line how to get one. With the real download in ../shared, its files import and fit the spec.
"""

from __future__ import annotations

import io
import itertools
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits
from typer.testing import CliRunner

from kfw.cli import main
from kfw.cli.app import app
from kfw.core.config import load_competition
from kfw.ensemble.roster import resolve_members
from tests.conftest import shared_zip

RUNNER = CliRunner()
N_TRAIN, N_TEST = 300, 100
MIN_ACCURACY = 0.85  # CV accuracy of a small ResNet on 300 8x8 digits
ALIGNED = 0.7  # its test accuracy: far above chance (0.1) only if labels and ImageIds line up
SPEC = (
    Path(__file__).parents[2] / "competitions" / "digit-recognizer" / "competition.toml"
).read_text()


def _pixels_competition(home: Path) -> np.ndarray:
    """sklearn's 8x8 digits as Kaggle lays out Digit Recognizer; returns the test labels."""
    X, y = load_digits(return_X_y=True)
    pixels = pd.DataFrame(
        (X * 255 / 16).round().astype(int), columns=[f"pixel{i}" for i in range(64)]
    )
    train = pd.concat([pd.Series(y[:N_TRAIN], name="label"), pixels[:N_TRAIN]], axis=1)
    test = pixels[N_TRAIN : N_TRAIN + N_TEST]
    data = home / "download"
    data.mkdir()
    train.to_csv(data / "train.csv", index=False)
    test.to_csv(data / "test.csv", index=False)
    pd.DataFrame({"ImageId": np.arange(1, N_TEST + 1), "Label": 0}).to_csv(
        data / "sample_submission.csv", index=False
    )
    # the built-in spec with a small network and a fast roster, as a user competition
    small = (
        "params = { input_shape = [1, 8, 8], widths = [16, 32], blocks = 1, epochs = 12, "
        "batch_size = 32, augment = false, n_jobs = 1 }"
    )
    spec = re.sub(r'(name = "torch-resnet"\n)params = .*', rf"\g<1>{small}", SPEC)
    assert small in spec
    folder = home / "competitions" / "pixels"
    folder.mkdir(parents=True)
    (folder / "competition.toml").write_text(
        spec.replace('kaggle = "digit-recognizer"', 'kaggle = "pixels"')
    )
    return y[N_TRAIN : N_TRAIN + N_TEST]


def kfw(home: Path, *args: str) -> str:
    result = RUNNER.invoke(app, ["--home", str(home), *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_builtin_spec_declares_row_ids_and_the_roster(home):
    spec = load_competition("digit-recognizer", home)
    assert spec.kaggle == "digit-recognizer" and spec.row_ids and spec.id == "ImageId"
    assert spec.task == "multiclass" and spec.metric == "accuracy"
    assert spec.submission.columns == ("ImageId", "Label") and spec.submission.format == "label"
    assert (spec.folds.scheme, spec.folds.n_splits, spec.folds.seed) == ("stratified", 5, 42)
    assert [m.name for m in spec.models] == ["torch-resnet"]
    params = spec.models[0].params
    assert list(params["input_shape"]) == [1, 28, 28] and params["augment"] is True


def test_the_cpu_preset_is_a_small_cnn_chosen_where_there_is_no_cuda(home):
    # its figure (CV >= 0.994 in under 45 minutes on 2 cores) is benchmarks/digit_recognizer_cpu.py's
    spec = load_competition("digit-recognizer", home)
    cpu = spec.presets["cpu"]
    assert cpu.when == "no-cuda"
    assert [(m.name, m.label) for m in cpu.models] == [("torch-cnn", "cnn-cpu")]
    params = cpu.models[0].params
    assert params["early_stopping"] is False and params["augment"] is True
    resolve_members(spec.with_preset("cpu"))  # builds, with every parameter of the right type


def test_cv_and_submission_of_a_pixel_competition(home, tmp_path):
    truth = _pixels_competition(home)
    kfw(home, "data", "import", "pixels", str(home / "download"))
    out = kfw(home, "cv", "pixels", "--model", "torch-resnet")
    assert out.strip().splitlines()[-1].startswith("CV ")
    runs = sorted((home / "runs" / "pixels").glob("*/run.json"))
    record = json.loads(runs[-1].read_text())
    assert record["score"] > MIN_ACCURACY, record["score"]
    for fold in record["fold_scores"]:  # each fit's epochs are in the run (and its W&B mirror)
        epochs = fold["history"]
        assert [e["epoch"] for e in epochs] == list(range(1, len(epochs) + 1))
        assert {"train_loss", "valid_loss"} <= set(epochs[0])
        assert fold["best_iteration"] in [e["epoch"] for e in epochs]
    oof = pd.read_parquet(runs[-1].parent / "oof.parquet")
    np.testing.assert_array_equal(oof["ImageId"], np.arange(1, N_TRAIN + 1))

    target = tmp_path / "submission.csv"
    kfw(home, "submit", "pixels", "--dry-run", "--output", str(target))
    sub = pd.read_csv(target)
    assert list(sub.columns) == ["ImageId", "Label"]
    np.testing.assert_array_equal(sub["ImageId"], np.arange(1, N_TEST + 1))
    assert set(sub["Label"]) <= set(range(10))
    assert np.mean(sub["Label"].to_numpy() == truth) > ALIGNED


def _error_line(capsys, *args: str) -> str:
    """``kfw ARGS`` as the console script runs it: it must fail with one error line."""
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    assert exc.value.code != 0 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kfw: error: "), err
    return lines[0]


def test_an_id_column_contradicting_row_ids_is_refused(home, capsys):
    _pixels_competition(home)
    test = pd.read_csv(home / "download" / "test.csv")
    test.insert(0, "ImageId", np.arange(1, N_TEST + 1))
    test.to_csv(home / "download" / "test.csv", index=False)
    line = _error_line(
        capsys, "--home", str(home), "data", "import", "pixels", str(home / "download")
    )
    assert "test.csv: has a column 'ImageId'" in line and "row_ids = true" in line
    assert not (home / "data" / "pixels").exists()


def test_without_a_download_cv_says_how_to_get_one(home, capsys):
    line = _error_line(capsys, "--home", str(home), "cv", "digit-recognizer")
    assert "kfw data download digit-recognizer" in line
    assert "kfw data import digit-recognizer" in line


BOTH = ("train.csv", "test.csv")


def _cv_error(capsys, *args: str) -> str:
    """``kfw cv`` failing: info lines (folds) may come first, then exactly one error line."""
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith("kfw: error: ")]
    assert exc.value.code != 0 and out == "" and errors == lines[-1:], err
    assert all(line.startswith("folds: ") for line in lines[:-1]), err
    return lines[-1]


def _no_run(home: Path) -> None:
    assert not list((home / "runs").glob("pixels/*/run.json"))


def _rewrite(home: Path, name: str, edit) -> None:
    path = home / "download" / name
    frame = edit(pd.read_csv(path))
    frame.to_csv(path, index=False)


@pytest.mark.parametrize(
    ("names", "edit", "message"),
    [
        (BOTH, lambda f: f.drop(columns=["pixel5"]), "pixel columns missing: pixel5"),
        (("test.csv",), lambda f: f.assign(pixel3=300), "pixel values must be 0..255: pixel3 is 300"),
        (("train.csv",), lambda f: f.assign(label=f["label"].where(f.index > 0, 12)),
         "label must be a digit 0-9, found ['12']"),
        (BOTH, lambda f: f.drop(columns=["pixel63"]), "images of the wrong size: 63 pixel columns"),
    ],
)  # fmt: skip
def test_bad_files_are_refused_in_one_line(home, capsys, names, edit, message):
    _pixels_competition(home)
    for name in names:
        _rewrite(home, name, edit)
    kfw(home, "data", "import", "pixels", str(home / "download"))
    line = _cv_error(capsys, "--home", str(home), "cv", "pixels", "--model", "torch-resnet")
    assert message in line, line
    _no_run(home)


def test_a_missing_gpu_a_wrong_size_and_a_foreign_checkpoint_are_refused(home, capsys, monkeypatch):
    import torch

    from kfw.dl.checkpoint import save_state
    from models.torch_nets import LeNet

    _pixels_competition(home)
    kfw(home, "data", "import", "pixels", str(home / "download"))
    base = ("--home", str(home), "cv", "pixels", "--model", "torch-resnet")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    line = _cv_error(capsys, *base, "--param", 'device="cuda"')
    assert "device 'cuda' requested but" in line
    line = _cv_error(capsys, *base, "--param", "input_shape=[1, 28, 28]")
    assert "images of the wrong size: input_shape 1x28x28 needs 784 values" in line
    foreign = home / "lenet.pt"
    save_state(LeNet((1, 8, 8), 10), foreign)
    line = _cv_error(capsys, *base, "--param", f'init_from="{foreign}"')
    assert "lenet.pt: checkpoint is of another architecture than ResNet" in line
    _no_run(home)


def _csv_shape(archive: zipfile.ZipFile, name: str) -> tuple[list[str], int]:
    with archive.open(name) as fh:
        header = fh.readline().decode().strip().split(",")
        rows = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 22), b""))
    return header, rows


@pytest.mark.shared
def test_the_real_download_fits_the_spec(home):
    path = shared_zip("digit-recognizer.zip")
    pixels = [f"pixel{i}" for i in range(784)]
    with zipfile.ZipFile(path) as archive:
        assert _csv_shape(archive, "train.csv") == (["label", *pixels], 42000)
        assert _csv_shape(archive, "test.csv") == (pixels, 28000)
        assert _csv_shape(archive, "sample_submission.csv") == (["ImageId", "Label"], 28000)
        # the head of each file, imported through kfw's checks (the whole files take a minute)
        head = home / "head"
        head.mkdir()
        for name, rows in (("train.csv", 500), ("test.csv", 200), ("sample_submission.csv", 200)):
            with archive.open(name) as fh:
                lines = itertools.islice(io.TextIOWrapper(fh), rows + 1)
                (head / name).write_text("".join(lines))
    kfw(home, "data", "import", "digit-recognizer", str(head))
    sample = pd.read_csv(head / "sample_submission.csv")
    np.testing.assert_array_equal(sample["ImageId"], np.arange(1, 201))
