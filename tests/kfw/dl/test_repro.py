"""``kfw repro``: the Batch Normalization and Dropout reproductions on small generated IDX data."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from kfw.cli.app import app
from kfw.dl.checkpoint import load_checkpoint
from kfw.dl.idx import STANDARD_NAMES
from kfw.dl.repro import load_digits
from kfw.dl.repro.batchnorm import BNConfig, train
from kfw.dl.repro.dropout import DropoutConfig, train_rows
from kfw.errors import KfwError
from kfw.progress import Callback
from tests.kfw.dl.test_idx import write_idx

torch.set_num_threads(1)
runner = CliRunner()
REPO = Path(__file__).resolve().parents[3]
PNG = b"\x89PNG\r\n\x1a\n"
LEARNED = 0.6  # accuracy a few hundred steps reach on the synthetic digits (chance: 0.1)
REPLICA_TOL = 1e-5  # a replica trained with others equals the same replica trained alone


def synthetic_digits(folder: Path, n_train: int = 600, n_test: int = 200, seed: int = 0) -> Path:
    """Learnable IDX "digits": class k lights one 7 x 7 cell of a 4 x 4 grid, over noise."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 10, n).astype(np.uint8)
        x = rng.integers(0, 90, (n, 28, 28)).astype(np.uint8)
        for i, k in enumerate(y):
            r, c = divmod(int(k), 4)
            x[i, 7 * r : 7 * r + 7, 7 * c : 7 * c + 7] = rng.integers(160, 256, (7, 7))
        return x, y

    arrays = [*make(n_train), *make(n_test)]
    for name, arr in zip(STANDARD_NAMES, arrays, strict=False):
        write_idx(folder / f"{name}.gz", arr)
    return folder


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_digits(tmp_path_factory.mktemp("idx") / "digits")


def _invoke(home: Path, *args: str):
    return runner.invoke(app, ["--home", str(home), "repro", *args], env={"WANDB_MODE": "disabled"})


# ---------------------------------------------------------------------------------------------
# batch normalisation


def test_bn_learns_and_is_deterministic(digits_dir: Path) -> None:
    data = load_digits(digits_dir, torch.device("cpu"))
    config = BNConfig(steps=300, eval_every=100, lr=0.5, batch_size=30)
    a = train(data, config, bn=True, seeds=[0, 1])
    b = train(data, config, bn=True, seeds=[0, 1])
    assert a.steps == [100, 200, 300]
    assert a.accuracy.shape == (2, 3) and a.percentiles.shape == (2, 3, 3)
    assert np.all(a.accuracy[:, -1] >= LEARNED)
    np.testing.assert_array_equal(a.accuracy, b.accuracy)  # same seeds, same numbers
    np.testing.assert_array_equal(a.percentiles, b.percentiles)
    assert np.all(np.diff(a.percentiles, axis=-1) >= 0)  # 15th <= 50th <= 85th


def test_replicas_train_independently(digits_dir: Path) -> None:
    """Seeds batched as replicas give what each seed gives alone: batching changes no number."""
    data = load_digits(digits_dir, torch.device("cpu"))
    config = BNConfig(steps=120, eval_every=40, batch_size=20)
    for bn in (False, True):
        both = train(data, config, bn=bn, seeds=[3, 4], lrs=[0.2, 0.7])
        alone = train(data, config, bn=bn, seeds=[4], lrs=[0.7])
        np.testing.assert_allclose(both.accuracy[1], alone.accuracy[0], atol=REPLICA_TOL)
        np.testing.assert_allclose(both.percentiles[1], alone.percentiles[0], atol=1e-4)


def test_grid_includes_must_show_steps() -> None:
    assert BNConfig(steps=50_000, eval_every=3000).grid()[-1] == 50_000
    grid = BNConfig(steps=50_000, eval_every=3000).grid()
    assert {5000, 10000, 20000, 50000} <= set(grid)
    assert BNConfig(steps=70, eval_every=50).grid() == [50, 70]


def test_batchnorm_cli_end_to_end(digits_dir: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    res = _invoke(home, "batchnorm", "--data", str(digits_dir), "--steps", "60",
                  "--eval-every", "20", "--seeds", "2", "--batch-size", "20")  # fmt: skip
    assert res.exit_code == 0, res.output
    (run,) = (home / "runs" / "repro-batchnorm").iterdir()
    results = json.loads((run / "results.json").read_text())
    record = json.loads((run / "run.json").read_text())
    assert results["steps"] == [20, 40, 60]
    for arm in ("bn", "baseline"):
        acc = np.array(results["test_accuracy"][arm])
        assert acc.shape == (2, 3) and np.all((acc >= 0) & (acc <= 1))
        assert np.array(results["percentiles"][arm]).shape == (2, 3, 3)
    assert results["percentiles"]["q"] == [15, 50, 85]
    assert results["seeds"] == [0, 1]
    assert record["config"]["steps"] == 60 and record["config"]["seeds"] == 2
    assert "torch" in record["environment"] and record["environment"]["versions"]
    for png in ("figure1a.png", "figure1bc.png"):
        assert (run / png).read_bytes().startswith(PNG)

    # the modification, smoke-sized, then the write-up from both runs
    res = _invoke(home, "batchnorm", "--data", str(digits_dir), "--steps", "40",
                  "--eval-every", "20", "--seeds", "2", "--batch-size", "20",
                  "--modification", "lr")  # fmt: skip
    assert res.exit_code == 0, res.output
    mod = next(p for p in (home / "runs" / "repro-batchnorm").iterdir() if "modification" in p.name)
    mres = json.loads((mod / "results.json").read_text())
    assert len(mres["lrs"]) == 4 and np.array(mres["bn"]["accuracy"]).shape == (4, 2, 2)
    for f in mres["bn"]["final"] + mres["baseline"]["final"]:
        assert f["lo"] <= f["mean"] <= f["hi"] and f["n"] == 2

    docs = tmp_path / "docs"
    res = _invoke(home, "report", "batchnorm", "--docs", str(docs))
    assert res.exit_code == 0, res.output
    text = (docs / "repro-batchnorm.md").read_text()
    assert "## Our modification" in text and "Not run yet" not in text
    # the commands say where the runs ran: `auto` would take a GPU where there is one
    assert "kfw repro batchnorm --data DIR --device cpu --threads 1 --seeds 2 --steps 60 " in text
    assert "--data DIR --device cpu --threads 1 --modification lr --seeds 2 --steps 40" in text
    assert f"{100 * np.median(np.array(results['test_accuracy']['bn'])[:, -1]):.2f}%" in text
    page = (docs / "repro-batchnorm.html").read_text()
    assert page.count("data:image/png;base64,") == 3
    assert (docs / "img" / "repro-batchnorm-figure1a.png").read_bytes().startswith(PNG)


# ---------------------------------------------------------------------------------------------
# dropout


def test_dropout_schedules() -> None:
    c = DropoutConfig(epochs=60)
    assert c.momentum(0) == 0.5
    assert c.momentum(5) == pytest.approx(0.5 + 0.49 / 2)  # halfway through a 10-epoch ramp
    assert c.momentum(10) == c.momentum(59) == pytest.approx(0.99)
    assert c.lr_factor(0) == 1.0
    assert c.lr_factor(60) == pytest.approx(0.998**3000)
    assert DropoutConfig(max_norm=4.0).row("dropout-maxnorm").max_norm == 4.0
    assert math.isinf(DropoutConfig(max_norm=4.0).row("dropout").max_norm)


def test_dropout_rows_learn_and_are_deterministic(digits_dir: Path) -> None:
    data = load_digits(digits_dir, torch.device("cpu"))
    # a 3-epoch run on 600 images: the paper's N(0, 0.01) init and its learning rates are
    # tuned for 1024-unit nets on MNIST over many epochs, so scale them for this toy
    config = DropoutConfig(
        epochs=3, hidden=(256, 256, 256), batch_size=20, init_std=0.1, lr_scale=0.05,
        momentum_end=0.9,
    )  # fmt: skip
    res = train_rows(data, config)
    again = train_rows(data, config)
    assert res["rows"] == ["standard", "dropout", "dropout-maxnorm"]
    assert res["test_error"] == again["test_error"]  # masks are seeded too
    for row in res["rows"]:
        assert len(res["test_error"][row]) == 3
        assert res["final_error"][row] <= 100 * (1 - LEARNED), row


class Interrupt(Exception):
    pass


class StopAfter(Callback):
    """Interrupts training (as Ctrl-C would) when epoch ``epoch`` has been logged."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def log(self, metrics: dict, step: int | None = None) -> None:
        if step == self.epoch:
            raise Interrupt


def test_an_interrupted_dropout_run_resumes_to_the_same_numbers(
    digits_dir: Path, tmp_path: Path
) -> None:
    data = load_digits(digits_dir, torch.device("cpu"))
    config = DropoutConfig(
        epochs=4, hidden=(32, 32, 32), batch_size=50, init_std=0.1, lr_scale=0.05,
        momentum_end=0.9, rows=["dropout", "dropout-maxnorm"],
    )  # fmt: skip
    whole = train_rows(data, config)
    ckpt = tmp_path / "ckpt.pt"
    with pytest.raises(Interrupt):
        train_rows(data, config, StopAfter(2), checkpoint=ckpt, checkpoint_every=0)
    assert load_checkpoint(ckpt)["epoch"] == 2
    torch.manual_seed(123)  # the resumed run restores the generators, whatever they hold now
    resumed = train_rows(data, config, checkpoint=ckpt, checkpoint_every=0)
    assert resumed["resumed_from_epoch"] == 2 and whole["resumed_from_epoch"] == 0
    assert resumed["test_error"] == whole["test_error"]  # masks and batch order continue exactly
    assert load_checkpoint(ckpt)["epoch"] == 4
    # a checkpoint of other rows is refused in one line
    other = DropoutConfig(**{**config.__dict__, "rows": ["standard"]})
    with pytest.raises(KfwError, match="delete it"):
        train_rows(data, other, checkpoint=ckpt)


def test_dropout_cli_and_report(
    digits_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kfw.cli.repro import StepProgress

    monkeypatch.setattr(StepProgress, "LOG_EVERY", 0.0)  # a log line for every epoch
    home, docs = tmp_path / "home", tmp_path / "docs"
    res = _invoke(home, "dropout", "--data", str(digits_dir), "--epochs", "1",
                  "--rows", "dropout,dropout-maxnorm", "--report", "--docs", str(docs))  # fmt: skip
    assert res.exit_code == 0, res.output
    (run,) = (home / "runs" / "repro-dropout").iterdir()  # the checkpoint went with success
    results = json.loads((run / "results.json").read_text())
    assert results["rows"] == ["dropout", "dropout-maxnorm"]
    # stderr is no terminal here: the progress comes as log lines with every row's error
    err = results["final_error"]
    assert re.search(rf"epoch 1/1 \(\d+\.\d min\): dropout {err['dropout']:.4f}", res.output)
    assert set(results["final_error"]) == {"dropout", "dropout-maxnorm"}
    assert (run / "table2.png").read_bytes().startswith(PNG)
    text = (docs / "repro-dropout.md").read_text()
    assert "1.25%" in text and "1.06%" in text
    assert f"{results['final_error']['dropout']:.2f}%" in text
    assert "data:image/png;base64," in (docs / "repro-dropout.html").read_text()
    assert "How long the learning rate stays high" not in text  # one schedule only so far
    # torch's own thread count (1 here), as the run had it: the command runs where the run ran
    assert "kfw repro dropout --data DIR --device cpu --threads 1 --epochs 1 --rows" in text

    # a run with a gentler decay joins the write-up as a sensitivity table; the main run stays
    res = _invoke(home, "dropout", "--data", str(digits_dir), "--epochs", "1",
                  "--rows", "standard,dropout", "--total-decay", "0.5")  # fmt: skip
    assert res.exit_code == 0, res.output
    res = _invoke(home, "report", "dropout", "--docs", str(docs))
    assert res.exit_code == 0, res.output
    text = (docs / "repro-dropout.md").read_text()
    assert f"from run `{run.name}`" in text
    assert "## How long the learning rate stays high" in text and "| 0.5000 | 1 |" in text
    assert "--total-decay 0.5 " not in text and "--rows standard,dropout --total-decay 0.5" in text
    assert (docs / "img" / "repro-dropout-decay-0.5.png").read_bytes().startswith(PNG)
    (second,) = {r for r in (home / "runs" / "repro-dropout").iterdir() if r.is_dir()} - {run}
    second_res = json.loads((second / "results.json").read_text())
    fin = second_res["final_error"]
    gap = fin["standard"] - fin["dropout"]
    # paired: the run kept both networks' labels for the same 200 test images
    labels = np.asarray(second_res["test_labels"])
    wrong = {k: np.asarray(v) != labels for k, v in second_res["test_predictions"].items()}
    assert 100 * wrong["standard"].mean() == pytest.approx(fin["standard"], abs=1e-4)
    b = np.sum(wrong["standard"] & ~wrong["dropout"]) / 200
    c = np.sum(~wrong["standard"] & wrong["dropout"]) / 200
    se = 100 * math.sqrt((b + c - (b - c) ** 2) / 200)
    assert f"| {fin['standard']:.2f}% | {fin['dropout']:.2f}% | {gap:+.2f} ± {se:.2f} |" in text
    assert f"clearly worse (gap above 2 SE) in {int(gap > 2 * se)} of these 1 runs" in text
    assert "## The max-norm row" not in text  # the main run has it

    # a main run without the max-norm row states that row's timed cost, and how to add it
    from kfw.dl.repro.report import MAXNORM_SECONDS, dropout_markdown

    alone, _ = dropout_markdown((json.loads((second / "run.json").read_text()), second_res))
    assert "## The max-norm row: timed, not yet run" in alone
    assert f"{MAXNORM_SECONDS['alone']:.1f} s for the max-norm row alone" in alone
    assert "--epochs 1 --rows standard,dropout,dropout-maxnorm\nkfw repro report" in alone


SMOKE = {
    "batchnorm": ("--steps", "20", "--eval-every", "10", "--seeds", "1", "--batch-size", "20"),
    "dropout": ("--epochs", "1", "--rows", "dropout"),
}


@pytest.mark.parametrize("paper", sorted(SMOKE))
def test_threads_reach_torch_while_training_and_are_given_back(
    paper: str, digits_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--threads N``: torch trains with N threads, the run records N, and torch's own setting
    is back afterwards (both reproductions take the same knob)."""
    from kfw.cli.repro import StepProgress

    seen: list[int] = []  # torch's threads at every evaluation, from inside the training loop
    monkeypatch.setattr(
        StepProgress, "log", lambda self, m, step=None: seen.append(torch.get_num_threads())
    )
    before = torch.get_num_threads()
    home = tmp_path / "home"
    res = _invoke(home, paper, "--data", str(digits_dir), "--device", "cpu",
                  "--threads", str(before + 1), *SMOKE[paper])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert seen and set(seen) == {before + 1}
    assert torch.get_num_threads() == before
    (record,) = (home / "runs" / f"repro-{paper}").glob("*/run.json")
    assert json.loads(record.read_text())["config"]["threads"] == before + 1
    assert "--threads" in _fails(
        tmp_path / "h2", paper, "--data", str(digits_dir), "--threads", "0"
    )


def test_the_dropout_gap_is_paired_when_the_predictions_were_kept() -> None:
    from kfw.dl.repro.report import _gap

    labels = np.zeros(1000, dtype=int)
    standard, dropout = labels.copy(), labels.copy()
    standard[:30] = 1  # both wrong on 10 images, only the standard network on 20 more
    dropout[:10] = 1
    dropout[500:504] = 1  # only the dropout network on 4
    res = {
        "n_test": 1000,
        "final_error": {"standard": 3.0, "dropout": 1.4},
        "test_predictions": {"standard": standard.tolist(), "dropout": dropout.tolist()},
        "test_labels": labels.tolist(),
    }
    gap = _gap(res)
    assert gap.discordant == (20, 4)
    assert gap.points == pytest.approx(1.6)
    d = 16 / 1000
    assert gap.se == pytest.approx(100 * math.sqrt((24 / 1000 - d * d) / 1000))
    assert gap.p == pytest.approx(0.0015, abs=1e-4)  # exact binomial: P(<= 4 of 24) x 2
    assert gap.clear and "McNemar p = 0.0015" in gap.describe()
    # a run without predictions (or whose data folder is gone): two independent binomials
    del res["test_predictions"]
    unpaired = _gap(res, data="/nonexistent")
    assert unpaired.discordant is None and unpaired.p is None
    assert unpaired.se == pytest.approx(100 * math.sqrt(0.03 * 0.97 / 1000 + 0.014 * 0.986 / 1000))
    assert unpaired.se > gap.se  # pairing removes the images both get wrong from the noise


# ---------------------------------------------------------------------------------------------
# bad input: one clear line, non-zero exit, nothing written


def _fails(home: Path, *args: str) -> str:
    res = _invoke(home, *args)
    assert res.exit_code != 0
    assert isinstance(res.exception, KfwError), res.output
    message = str(res.exception)
    assert "\n" not in message
    assert not (home / "runs").exists() or not any((home / "runs").rglob("run.json"))
    return message


def test_bad_inputs(digits_dir: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert "nowhere" in _fails(home, "batchnorm", "--data", str(tmp_path / "nowhere"))
    broken = synthetic_digits(tmp_path / "broken", n_train=50, n_test=20)
    path = broken / "train-images-idx3-ubyte.gz"
    import gzip

    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-10]))
    assert "truncated" in _fails(home, "batchnorm", "--data", str(broken), "--steps", "5")
    bad_magic = synthetic_digits(tmp_path / "magic", n_train=50, n_test=20)
    (bad_magic / "t10k-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(b"\x12\x34\x08\x03" + b"\0" * 40)
    )
    assert "magic" in _fails(home, "dropout", "--data", str(bad_magic), "--epochs", "1")
    counts = synthetic_digits(tmp_path / "counts", n_train=50, n_test=20)
    write_idx(counts / "t10k-labels-idx1-ubyte.gz", np.zeros(19, np.uint8))
    assert "19 labels" in _fails(home, "batchnorm", "--data", str(counts), "--steps", "5")
    assert "--rows" in _fails(home, "dropout", "--data", str(digits_dir), "--rows", "nope")
    assert "--total-decay" in _fails(
        home, "dropout", "--data", str(digits_dir), "--total-decay", "0"
    )
    assert "--lr" in _fails(home, "batchnorm", "--data", str(digits_dir), "--lr", "0")
    assert "modification" in _fails(
        home, "batchnorm", "--data", str(digits_dir), "--modification", "x", "--steps", "5"
    )
    assert "repro-dropout" in _fails(home, "report", "dropout", "--docs", str(tmp_path / "d"))
    assert not (tmp_path / "d").exists()


def test_cli_exit_code_and_lazy_torch(tmp_path: Path) -> None:
    """Through ``main``: exit 1 and one red line; ``kfw repro --help`` loads no torch."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    code = "from kfw.cli import main; main(['repro', 'batchnorm', '--data', 'nowhere-dir'])"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "nowhere-dir" in proc.stderr
    code = (
        "import sys\nfrom kfw.cli import main\ntry: main(['repro', '--help'])\n"
        "except SystemExit: pass\nassert 'torch' not in sys.modules, 'torch imported'"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "batchnorm" in proc.stdout and "dropout" in proc.stdout
