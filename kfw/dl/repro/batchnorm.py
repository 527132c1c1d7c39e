"""Ioffe & Szegedy (2015), "Batch Normalization", section 4.1 and Figure 1, on MNIST.

The paper: "we trained a simple network with 3 fully-connected hidden layers with 100
activations each. Each hidden layer computes y = g(Wu + b) with sigmoid nonlinearity, and the
weights W initialized to small random Gaussian values. The last hidden layer is followed by a
fully-connected layer with 10 activations (one per class) and cross-entropy loss. We trained
the network for 50000 steps, with 60 examples per mini-batch. We added Batch Normalization to
each hidden layer of the network." Figure 1: (a) test accuracy against training steps, with and
without BN; (b, c) the 15th, 50th and 85th percentiles of the input to one sigmoid of the last
hidden layer over training, without and with BN.

Where the paper is silent we choose (see :class:`BNConfig`): plain SGD without momentum or
weight decay (the simplest optimiser, so any difference comes from BN alone), one learning rate
shared by both networks, weights ~ N(0, 0.01^2) with zero biases (a "small" init, where the
sigmoids start in their linear region and the un-normalised net learns slowly), pixels scaled
to [0, 1], BN replacing the bias of the layer it follows (beta plays that role).

Several seeds (and, for the modification, several learning rates) train as ONE batched
computation: every weight has a leading replica dimension ``R`` and the layers use ``bmm``, so
R small networks cost about as much as one on a CPU-bound, overhead-dominated workload.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kfw.dl.device import cpu_threads, resolve_device
from kfw.dl.layers import BatchNorm1d, ReplicaLinear
from kfw.dl.repro import Digits, load_digits, save_run
from kfw.dl.repro.report import figure1a, figure1bc, modification_figure
from kfw.errors import ConfigError
from kfw.progress import NULL, Callback

SLUG = "repro-batchnorm"
MUST_SHOW_STEPS = (5000, 10000, 20000, 50000)
PERCENTILES = (15, 50, 85)


@dataclass
class BNConfig:
    """The experiment's settings; the defaults are the paper's where it gives them.

    Attributes
    ----------
    steps, batch_size, hidden : the paper's 50,000 steps, 60 examples, 3 x 100 sigmoid units.
    lr : float
        The SGD learning rate, shared by both networks (our choice; see the module docstring).
    init_std : float
        Standard deviation of the Gaussian initial weights (our choice of "small").
    seeds : int
        Independent networks per arm (different initialisations and batch orders).
    seed : int
        The first seed; replica ``r`` uses ``seed + r``.
    eval_every : int
        Test accuracy and percentiles every this many steps (plus the must-show steps).
    momentum : float
        BN's moving-average rate for the population statistics used at test time.
    percentile_batch : int
        The fixed test batch (its first images) on which the percentiles are tracked.
    unit : int
        Which sigmoid of the last hidden layer is tracked.
    device : str
        ``auto`` (cuda when available), ``cpu``, ``cuda``...
    threads : int or None
        CPU threads for torch while training, restored afterwards (None: leave torch's
        setting). The network is so small that every step is dominated by per-op overhead: on
        a shared 2-core machine we measured 1.1 ms per step with one thread and 4-7 ms with
        two, so the default is 1.
    extra_steps : list of int
        More steps to include in the evaluation grid.
    """

    steps: int = 50_000
    batch_size: int = 60
    hidden: tuple[int, ...] = (100, 100, 100)
    lr: float = 0.1
    init_std: float = 0.01
    seeds: int = 3
    seed: int = 0
    eval_every: int = 500
    momentum: float = 0.1
    percentile_batch: int = 1000
    unit: int = 0
    device: str = "auto"
    threads: int | None = 1
    extra_steps: list[int] = field(default_factory=list)

    def validate(self) -> None:
        for name in ("steps", "batch_size", "seeds", "eval_every", "percentile_batch"):
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}"
                )
        if self.batch_size < 2:
            raise ConfigError("--batch-size must be >= 2: BN needs two examples for a variance")
        if not self.lr > 0:
            raise ConfigError(f"--lr must be > 0, got {self.lr}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {self.threads}")
        if not 0 <= self.unit < self.hidden[-1]:
            raise ConfigError(f"unit {self.unit} is not in the last hidden layer")

    def grid(self) -> list[int]:
        """The evaluation steps: multiples of ``eval_every``, the must-show steps, the last."""
        steps = set(range(self.eval_every, self.steps + 1, self.eval_every))
        steps |= {s for s in (*MUST_SHOW_STEPS, *self.extra_steps) if s <= self.steps}
        return sorted(steps | {self.steps})


# ---------------------------------------------------------------------------------------------
# the network: R replicas of 784 -> 100 -> 100 -> 100 -> 10, sigmoid, optional BN before each


class SigmoidMLP(nn.Module):
    """The paper's network; ``bn=True`` puts :class:`BatchNorm1d` before every sigmoid."""

    def __init__(
        self,
        replicas: int,
        n_in: int,
        hidden: tuple[int, ...],
        n_out: int,
        bn: bool,
        momentum: float = 0.1,
    ) -> None:
        super().__init__()
        sizes = (n_in, *hidden)
        # with BN a bias before it is cancelled by the mean subtraction: beta replaces it
        self.linears = nn.ModuleList(
            ReplicaLinear(replicas, a, b, bias=not bn) for a, b in itertools.pairwise(sizes)
        )
        self.norms = nn.ModuleList(
            BatchNorm1d(h, momentum=momentum, replicas=replicas) if bn else nn.Identity()
            for h in hidden
        )
        self.out = ReplicaLinear(replicas, hidden[-1], n_out)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(R, B, n_out)`` and the last sigmoid inputs ``(R, B, hidden[-1])``."""
        z = x
        for linear, norm in zip(self.linears, self.norms, strict=False):
            z = norm(linear(x))  # the sigmoid's input (after BN when BN is on)
            x = torch.sigmoid(z)
        return self.out(x), z


def init_weights(model: nn.Module, seeds: list[int], std: float) -> None:
    """N(0, std^2) weights, replica r drawn from its own generator (same on every device)."""
    with torch.no_grad():
        weights = [
            p for name, p in model.named_parameters()
            if name.endswith("weight") and "norms" not in name
        ]  # fmt: skip
        for layer, p in enumerate(weights):  # (R, in, out)
            draws = [
                torch.randn(p.shape[1:], generator=torch.Generator().manual_seed(s * 1000 + layer))
                for s in seeds
            ]
            p.copy_(torch.stack(draws).mul_(std))


# ---------------------------------------------------------------------------------------------
# training


@dataclass
class Curves:
    """What one batched training run measured, replica-major."""

    steps: list[int]
    accuracy: np.ndarray  # (R, n_steps)
    percentiles: np.ndarray  # (R, n_steps, 3)
    seconds: float


@torch.no_grad()
def evaluate(
    model: SigmoidMLP, data: Digits, unit: int, n_pct: int, chunk: int = 5000
) -> tuple[torch.Tensor, torch.Tensor]:
    """Test accuracy per replica ``(R,)`` and the percentiles ``(R, 3)`` of one sigmoid input."""
    model.eval()
    correct = None
    for i in range(0, len(data.x_test), chunk):
        x = data.x_test[i : i + chunk]
        logits, _ = model(x.expand(model.out.weight.shape[0], -1, -1))  # (R, b, 10)
        hits = (logits.argmax(-1) == data.y_test[i : i + chunk]).sum(-1)
        correct = hits if correct is None else correct + hits
    _, z = model(data.x_test[:n_pct].expand(model.out.weight.shape[0], -1, -1))
    q = torch.tensor([p / 100 for p in PERCENTILES], device=z.device)
    pct = torch.quantile(z[:, :, unit], q, dim=-1).T  # (R, 3)
    model.train()
    return correct.float() / len(data.x_test), pct


def train(
    data: Digits,
    config: BNConfig,
    *,
    bn: bool,
    seeds: list[int],
    lrs: list[float] | None = None,
    callback: Callback = NULL,
    label: str = "",
) -> Curves:
    """Train ``len(seeds)`` networks at once; replica r uses seed ``seeds[r]`` and ``lrs[r]``.

    Plain SGD: ``w <- w - lr * grad`` of the mean cross-entropy of the replica's mini-batch.
    Batches come from a fresh permutation of the training set every epoch, per replica.
    """
    device = data.x_train.device
    n, r = len(data.x_train), len(seeds)
    lrs = lrs or [config.lr] * r
    if config.batch_size > n:
        raise ConfigError(f"--batch-size {config.batch_size} exceeds the {n} training images")
    model = SigmoidMLP(
        r, data.x_train.shape[1], tuple(config.hidden), data.n_classes, bn, config.momentum
    ).to(device)
    init_weights(model, seeds, config.init_std)
    params = list(model.parameters())
    # every parameter is (R, ...): a per-replica learning rate broadcasts over the rest
    lr = torch.tensor(lrs, device=device, dtype=torch.float32)
    lr_views = [lr.view(-1, *([1] * (p.dim() - 1))) for p in params]
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    with cpu_threads(device, config.threads):
        return _loop(model, params, lr_views, gens, data, config, callback, label)


def _loop(
    model: SigmoidMLP,
    params: list[torch.Tensor],
    lr_views: list[torch.Tensor],
    gens: list[torch.Generator],
    data: Digits,
    config: BNConfig,
    callback: Callback,
    label: str,
) -> Curves:
    device = data.x_train.device
    n, r = len(data.x_train), len(gens)
    per_epoch = n // config.batch_size
    grid, order, acc, pct = config.grid(), None, [], []
    t0 = time.perf_counter()
    for step in range(1, config.steps + 1):
        k = (step - 1) % per_epoch
        if k == 0:  # a new epoch: one permutation per replica, (R, per_epoch, B)
            order = torch.stack(
                [torch.randperm(n, generator=g)[: per_epoch * config.batch_size] for g in gens]
            )
            order = order.view(r, per_epoch, config.batch_size).to(device)
        idx = order[:, k]  # (R, B)
        logits, _ = model(data.x_train[idx])  # (R, B, 784) -> (R, B, 10)
        # the sum over replicas of each replica's mean loss: gradients stay independent
        loss = (
            F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), data.y_train[idx].reshape(-1), reduction="sum"
            )
            / config.batch_size
        )
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g, v in zip(params, grads, lr_views, strict=False):
                p.sub_(v * g)
        if step == grid[len(acc)]:
            a, q = evaluate(model, data, config.unit, config.percentile_batch)
            acc.append(a.cpu().numpy())
            pct.append(q.cpu().numpy())
            callback.log(
                {
                    "label": label,
                    "loss": float(loss.detach()) / r,
                    "test_accuracy": float(a.mean()),
                },
                step=step,
            )
    seconds = time.perf_counter() - t0
    return Curves(grid, np.stack(acc, 1), np.stack(pct, 1), seconds)


# ---------------------------------------------------------------------------------------------
# the experiment and the modification


def run_batchnorm(
    data_dir: str | Path, home: Path, config: BNConfig, callback: Callback = NULL
) -> tuple[Path, dict[str, Any]]:
    """Figure 1: both networks, ``config.seeds`` seeds each; write the run; return it.

    The run folder holds ``run.json``, ``results.json`` (steps, test accuracy per arm, seed and
    step, the percentiles, wall times), ``figure1a.png`` and ``figure1bc.png``.
    """

    config.validate()
    device = resolve_device(config.device)
    data = load_digits(data_dir, device)
    seeds = [config.seed + i for i in range(config.seeds)]
    callback.info(
        f"batchnorm: {len(data.x_train)} train / {len(data.x_test)} test images on {device}, "
        f"{config.steps} steps, {len(seeds)} seeds per arm, lr {config.lr}"
    )
    t0 = time.perf_counter()
    curves = {}
    for arm in ("baseline", "bn"):
        curves[arm] = train(data, config, bn=arm == "bn", seeds=seeds, callback=callback, label=arm)
        acc = curves[arm].accuracy
        callback.info(
            f"{arm}: {np.median(acc[:, -1]):.4f} median test accuracy at step {config.steps} ({curves[arm].seconds:.1f} s)"
        )
    results = {
        "steps": curves["bn"].steps,
        "test_accuracy": {arm: c.accuracy.round(6).tolist() for arm, c in curves.items()},
        "percentiles": {
            "q": list(PERCENTILES),
            "unit": config.unit,
            "test_batch": config.percentile_batch,
            **{arm: c.percentiles.round(5).tolist() for arm, c in curves.items()},
        },
        "seconds": {arm: round(c.seconds, 2) for arm, c in curves.items()},
        "seeds": seeds,
        "device": str(device),
        "n_train": len(data.x_train),
        "n_test": len(data.x_test),
    }
    files = {"figure1a.png": figure1a(results), "figure1bc.png": figure1bc(results)}
    cfg = {**asdict(config), "data": str(data_dir)}
    path = save_run(home, SLUG, "figure1", cfg, results, files, time.perf_counter() - t0)
    return path, results


MOD_LR_MULTIPLIERS = (1.0, 3.0, 10.0, 30.0)


def run_lr_modification(
    data_dir: str | Path,
    home: Path,
    config: BNConfig,
    multipliers: tuple[float, ...] = MOD_LR_MULTIPLIERS,
    callback: Callback = NULL,
) -> tuple[Path, dict[str, Any]]:
    """Our question: how much higher a learning rate does BN tolerate, and what does it buy?

    Both networks train at ``lr * m`` for every multiplier ``m``, ``config.seeds`` seeds each,
    all replicas of one arm as one batched computation, for ``config.steps`` steps. Reported:
    the test accuracy at the end and at every grid step, with a 95% t-interval over seeds.
    """

    config.validate()
    device = resolve_device(config.device)
    data = load_digits(data_dir, device)
    seeds = [config.seed + i for i in range(config.seeds)]
    lrs = [config.lr * m for m in multipliers]
    callback.info(
        f"batchnorm learning-rate modification: lr {lrs} x {len(seeds)} seeds per arm, "
        f"{config.steps} steps on {device}"
    )
    t0 = time.perf_counter()
    out: dict[str, Any] = {"lrs": lrs, "multipliers": list(multipliers), "seeds": seeds}
    for arm in ("baseline", "bn"):
        # replica order: lr-major, seed-minor
        c = train(
            data,
            config,
            bn=arm == "bn",
            seeds=[s for _ in lrs for s in seeds],
            lrs=[lr for lr in lrs for _ in seeds],
            callback=callback,
            label=arm,
        )
        acc = c.accuracy.reshape(len(lrs), len(seeds), -1)  # (n_lr, S, n_steps)
        out["steps"] = c.steps
        out[arm] = {
            "accuracy": acc.round(6).tolist(),
            "final": [summarise(acc[i, :, -1]) for i in range(len(lrs))],
            "seconds": round(c.seconds, 2),
        }
    out["device"] = str(device)
    files = {"modification_lr.png": modification_figure(out)}
    cfg = {**asdict(config), "data": str(data_dir), "multipliers": list(multipliers)}
    path = save_run(home, SLUG, "modification-lr", cfg, out, files, time.perf_counter() - t0)
    return path, out


def summarise(values: np.ndarray) -> dict[str, float]:
    """Mean and a 95% Student-t interval over seeds (NaN-free: a diverged net scores chance)."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    mean = float(v.mean())
    if len(v) < 2:
        return {"mean": mean, "lo": mean, "hi": mean, "n": len(v)}
    half = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "n": len(v)}
