"""Srivastava et al. (2014), "Dropout", Table 2 (MNIST), rows for 3 x 1024 ReLU networks.

Rows (``ROWS``):

- ``standard``: 784 -> 1024 -> 1024 -> 1024 -> 10, ReLU, softmax cross-entropy, no dropout;
- ``dropout``: the same with inverted dropout, inputs kept with p = 0.8, hidden units with
  p = 0.5 (Table 2: 1.25% test error);
- ``dropout-maxnorm``: dropout plus the max-norm constraint ``||w|| <= c`` on every unit's
  incoming weights (Table 2: 1.06%).

Optimisation follows the MNIST recipe of the dropout papers' appendices (Hinton et al. 2012,
appendix A; Srivastava et al. 2014, appendix B.1) as best we know it: SGD on mini-batches of
100, weights ~ N(0, 0.01^2), momentum ramped linearly from 0.5 to 0.99 over the first sixth of
training (500 of 3000 epochs) then held, a learning rate ``eps0 * decay^epoch`` with
``decay^3000 = 0.998^3000`` (so it falls by the paper's total factor whatever the length), and
the update ``v <- m v - (1 - m) eps g; w <- w + v`` (the ``(1 - m)`` keeps the step size
independent of the momentum). ``eps0 = 1`` for every row: Hinton et al.'s ``eps0 = 10`` with
max-norm left all units dead within the first epoch of our compressed schedule (88.65% test
error after 3 epochs on 2 CPU cores; biases are not constrained), and 3 was unstable too.
Every schedule is in epochs, so a short run is the long run compressed.

All rows train together as replicas of one batched computation (``bmm``); on a GPU this is
what keeps the small 100-example steps from being launch-bound.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kfw.core.runstore import config_key, runs_dir
from kfw.dl.checkpoint import load_checkpoint, rng_state, save_atomic, set_rng_state
from kfw.dl.device import cpu_threads, resolve_device
from kfw.dl.layers import Dropout, ReplicaLinear, max_norm_
from kfw.dl.repro import Digits, load_digits, save_run
from kfw.dl.repro.report import dropout_figure
from kfw.errors import ConfigError
from kfw.progress import NULL, Callback

SLUG = "repro-dropout"


@dataclass(frozen=True)
class Row:
    """One row of Table 2: its dropout, constraint and initial learning rate."""

    name: str
    p_input: float
    p_hidden: float
    max_norm: float  # inf: unconstrained
    lr: float
    paper_error: float | None  # Table 2's test error (%), where the paper has this row
    description: str


ROWS = {
    "standard": Row(
        "standard", 1.0, 1.0, math.inf, 1.0, None, "3 x 1024 ReLU, no dropout (our baseline)"
    ),
    "dropout": Row("dropout", 0.8, 0.5, math.inf, 1.0, 1.25, "Dropout NN, ReLU, 3 x 1024"),
    "dropout-maxnorm": Row(
        "dropout-maxnorm", 0.8, 0.5, 4.0, 1.0, 1.06, "Dropout NN + max-norm, ReLU, 3 x 1024"
    ),
}


@dataclass
class DropoutConfig:
    """The settings of a Table 2 run (defaults: a CPU-sized length; the paper ran 3000 epochs).

    Attributes
    ----------
    epochs : int
        Training length; the momentum ramp and the learning-rate decay scale with it.
    rows : list of str
        Which of ``ROWS`` to train.
    batch_size, hidden, init_std : 100, (1024, 1024, 1024), 0.01 as in the papers.
    momentum_start, momentum_end, ramp_fraction : 0.5 -> 0.99 over the first 1/6 of training.
    total_decay : float
        The learning rate's factor over the whole run (0.998^3000 in the paper).
    max_norm : float or None
        Overrides the max-norm row's ``c`` (default 4: the paper's
        range is 3 to 4, and Hinton et al. 2012 capped the squared length at 15).
    lr_scale : float
        Multiplies every row's initial learning rate (1: the rates of ``ROWS``).
    train_subset : int or None
        Train on the first N images only (tests and smoke runs).
    threads : int or None
        CPU threads for torch while training, restored afterwards (None: leave torch's
        setting, which ``OMP_NUM_THREADS`` or torch's default decides). The float sums, hence
        the last digits of the errors, depend on it.
    """

    epochs: int = 100
    rows: list[str] = field(default_factory=lambda: list(ROWS))
    batch_size: int = 100
    hidden: tuple[int, ...] = (1024, 1024, 1024)
    init_std: float = 0.01
    momentum_start: float = 0.5
    momentum_end: float = 0.99
    ramp_fraction: float = 500 / 3000
    total_decay: float = 0.998**3000
    max_norm: float | None = None
    lr_scale: float = 1.0
    seed: int = 0
    device: str = "auto"
    train_subset: int | None = None
    threads: int | None = None

    def validate(self) -> None:
        unknown = [r for r in self.rows if r not in ROWS]
        if unknown or not self.rows:
            raise ConfigError(f"--rows {','.join(self.rows)}: choose from {', '.join(ROWS)}")
        if not 0 < self.total_decay <= 1:
            raise ConfigError(f"--total-decay must be in (0, 1], got {self.total_decay}")
        if not self.lr_scale > 0:
            raise ConfigError(f"--lr-scale must be > 0, got {self.lr_scale}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("--epochs and --batch-size must be >= 1")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {self.threads}")

    def row(self, name: str) -> Row:
        row = ROWS[name]
        if self.max_norm is not None and math.isfinite(row.max_norm):
            row = Row(**{**asdict(row), "max_norm": self.max_norm})
        if self.lr_scale != 1.0:
            row = Row(**{**asdict(row), "lr": row.lr * self.lr_scale})
        return row

    def momentum(self, epoch: float) -> float:
        """Linear ramp from ``momentum_start`` to ``momentum_end``, then constant."""
        ramp = max(self.ramp_fraction * self.epochs, 1e-9)
        t = min(epoch / ramp, 1.0)
        return self.momentum_start + t * (self.momentum_end - self.momentum_start)

    def lr_factor(self, epoch: int) -> float:
        """``decay^epoch`` with ``decay^epochs = total_decay``."""
        return self.total_decay ** (epoch / self.epochs)


class ReluNet(nn.Module):
    """R replicas of 784 -> 1024 x 3 -> 10 ReLU with per-replica input and hidden dropout."""

    def __init__(self, rows: list[Row], n_in: int, hidden: tuple[int, ...], n_out: int) -> None:
        super().__init__()
        r, sizes = len(rows), (n_in, *hidden)
        self.drop_in = Dropout([row.p_input for row in rows])
        self.linears = nn.ModuleList(ReplicaLinear(r, a, b) for a, b in itertools.pairwise(sizes))
        self.drops = nn.ModuleList(Dropout([row.p_hidden for row in rows]) for _ in hidden)
        self.out = ReplicaLinear(r, hidden[-1], n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop_in(x)  # (R, B, 784)
        for linear, drop in zip(self.linears, self.drops, strict=False):
            x = drop(F.relu(linear(x)))  # (R, B, 1024)
        return self.out(x)  # (R, B, 10)


@torch.no_grad()
def test_predictions(model: ReluNet, data: Digits, chunk: int = 2000) -> torch.Tensor:
    """Predicted test labels per replica, ``(R, n_test)``, with dropout off (inverted: identity)."""
    model.eval()
    r = model.out.weight.shape[0]
    preds = [
        model(data.x_test[i : i + chunk].expand(r, -1, -1)).argmax(-1)  # (R, chunk)
        for i in range(0, len(data.x_test), chunk)
    ]
    model.train()
    return torch.cat(preds, dim=1)


def test_error(model: ReluNet, data: Digits) -> np.ndarray:
    """Test error (%) per replica, ``(R,)``."""
    wrong = (test_predictions(model, data) != data.y_test).float().mean(-1)
    return (100.0 * wrong).cpu().numpy()


def train_rows(
    data: Digits,
    config: DropoutConfig,
    callback: Callback = NULL,
    checkpoint: Path | None = None,
    checkpoint_every: float = 60.0,
) -> dict[str, Any]:
    """Train every row of ``config.rows`` as one replica each; return per-epoch test errors.

    With ``checkpoint``, the whole state (weights, velocities, both generators, the errors so
    far) is written there atomically after an epoch once ``checkpoint_every`` seconds have passed
    since the last write, and after the last epoch; a call that finds it continues from it, and
    on the CPU the resumed run equals the uninterrupted one bit for bit. torch trains with
    ``config.threads`` CPU threads, and has its own setting back afterwards.
    """
    with cpu_threads(data.x_train.device, config.threads):
        return _train_rows(data, config, callback, checkpoint, checkpoint_every)


def _train_rows(
    data: Digits,
    config: DropoutConfig,
    callback: Callback,
    checkpoint: Path | None,
    checkpoint_every: float,
) -> dict[str, Any]:
    device = data.x_train.device
    rows = [config.row(name) for name in config.rows]
    x, y = data.x_train, data.y_train
    if config.train_subset:
        x, y = x[: config.train_subset], y[: config.train_subset]
    n, r = len(x), len(rows)
    if config.batch_size > n:
        raise ConfigError(f"--batch-size {config.batch_size} exceeds the {n} training images")
    torch.manual_seed(config.seed)  # the dropout masks (rand_like uses the global generator)
    if device.type == "cuda":
        torch.cuda.manual_seed_all(config.seed)
    model = ReluNet(rows, x.shape[1], tuple(config.hidden), data.n_classes).to(device)
    gen = torch.Generator().manual_seed(config.seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 3 and p.shape[1] > 1:  # weights (R, in, out); biases stay 0
                p.copy_(torch.randn(p.shape, generator=gen) * config.init_std)
    params = list(model.parameters())
    velocity = [torch.zeros_like(p) for p in params]
    lr0 = torch.tensor([row.lr for row in rows], device=device).view(r, 1, 1)
    c = torch.tensor([row.max_norm for row in rows], device=device).view(r, 1, 1)
    constrained = bool(torch.isfinite(c).any())
    weights = [lin.weight for lin in model.linears] + [model.out.weight]
    per_epoch = n // config.batch_size
    errors: list[np.ndarray] = []
    start, before = 0, 0.0  # epochs and seconds done before this call (a resumed run)
    if checkpoint is not None and checkpoint.exists():
        state = load_checkpoint(checkpoint)
        if state["rows"] != [row.name for row in rows]:
            raise ConfigError(f"checkpoint {checkpoint} is for rows {state['rows']}; delete it")
        model.load_state_dict(state["model"])
        for v, saved in zip(velocity, state["velocity"], strict=True):
            v.copy_(saved)
        gen.set_state(state["generator"])
        set_rng_state(state["rng"], device)
        errors = [e.numpy() for e in state["errors"]]
        start, before = state["epoch"], state["seconds"]
        callback.info(f"resuming at epoch {start + 1} of {config.epochs} from {checkpoint}")
    t0 = saved_at = time.perf_counter()
    for epoch in range(start, config.epochs):
        lr = lr0 * config.lr_factor(epoch)
        # one permutation per epoch, shared by the rows (their masks differ)
        order = torch.randperm(n, generator=gen)[: per_epoch * config.batch_size].to(device)
        order = order.view(per_epoch, config.batch_size)
        for k in range(per_epoch):
            m = config.momentum(epoch + k / per_epoch)
            idx = order[k]  # (B,)
            logits = model(x[idx].expand(r, -1, -1))  # (R, B, 10)
            # sum over replicas of each one's mean loss: independent gradients per replica
            loss = (
                F.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), y[idx].repeat(r), reduction="sum"
                )
                / config.batch_size
            )
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                for p, g, v in zip(params, grads, velocity, strict=False):
                    v.mul_(m).sub_((1 - m) * lr * g)  # lr is (R, 1, 1): broadcasts per replica
                    p.add_(v)
                if constrained:
                    for w in weights:
                        max_norm_(w, c, dim=-2)  # each unit's incoming vector: a column
        err = test_error(model, data)
        errors.append(err)
        elapsed = before + time.perf_counter() - t0
        last = epoch + 1 == config.epochs
        if checkpoint is not None and (last or time.perf_counter() - saved_at >= checkpoint_every):
            state = {
                "rows": [row.name for row in rows],
                "epoch": epoch + 1,
                "seconds": elapsed,
                "model": model.state_dict(),
                "velocity": velocity,
                "generator": gen.get_state(),
                "rng": rng_state(device),
                "errors": [torch.from_numpy(e) for e in errors],
            }
            save_atomic(state, checkpoint)
            saved_at = time.perf_counter()
        callback.log(
            {
                **{f"test_error/{row.name}": float(e) for row, e in zip(rows, err, strict=False)},
                "seconds": elapsed,
            },
            step=epoch + 1,
        )
    seconds = before + time.perf_counter() - t0
    errs = np.stack(errors, 1)  # (R, epochs)
    # the final networks' labels: a paired comparison of the rows on the same test images
    final_pred = test_predictions(model, data).cpu().numpy()
    return {
        "rows": [row.name for row in rows],
        "row_settings": [asdict(row) for row in rows],
        "epochs": list(range(1, config.epochs + 1)),
        "test_error": {row.name: errs[i].round(4).tolist() for i, row in enumerate(rows)},
        "final_error": {row.name: float(errs[i, -1]) for i, row in enumerate(rows)},
        "test_predictions": {row.name: final_pred[i].tolist() for i, row in enumerate(rows)},
        "test_labels": data.y_test.cpu().tolist(),
        "seconds": round(seconds, 2),
        "resumed_from_epoch": start,
        "seconds_per_epoch": round(seconds / config.epochs, 3),
        "n_train": n,
        "n_test": len(data.x_test),
        "device": str(device),
    }


def run_dropout(
    data_dir: str | Path, home: Path, config: DropoutConfig, callback: Callback = NULL
) -> tuple[Path, dict[str, Any]]:
    """Table 2's rows at ``config.epochs``: write ``results.json`` and ``table2.png`` to a run."""

    config.validate()
    device = resolve_device(config.device)
    data = load_digits(data_dir, device)
    callback.info(
        f"dropout: rows {', '.join(config.rows)}, {config.epochs} epochs on {device} "
        f"({len(data.x_train)} train / {len(data.x_test)} test images)"
    )
    cfg = {**asdict(config), "data": str(data_dir)}
    # an interrupted run leaves its state here; the same command continues from it
    checkpoint = runs_dir(home, SLUG) / f".checkpoint-table2-{config_key(cfg)}.pt"
    results = train_rows(data, config, callback, checkpoint)
    t0 = time.perf_counter()
    files = {"table2.png": dropout_figure(results)}
    seconds = results["seconds"] + time.perf_counter() - t0  # training, over every call
    path = save_run(home, SLUG, "table2", cfg, results, files, seconds)
    checkpoint.unlink(missing_ok=True)
    return path, results
