"""Break training on purpose, measure how it breaks, and fix it: three classic failures.

    .venv/bin/python -m scratch_models.demos.training_dynamics --out docs/img

Every run trains a :class:`~scratch_models.fc_net.FullyConnectedNet` on scikit-learn's 8x8
digits (pixels scaled to [0, 1] and centred; 1400 training images, 397 held out) with
mini-batches of 100 and records the loss and each layer's weight-gradient norm per iteration.

(a) Vanishing gradients: 7 hidden sigmoid layers initialised with std 0.01. Each layer
    multiplies the backward signal by ``W' diag(s (1 - s))``, about ``0.01 sqrt(64) / 4`` in
    norm, so the first layer's gradient is ~1e-12 of the last one's and the loss never moves.
    Fixes: ReLU with He initialisation (the backward gain per layer is ~1), or batchnorm.
(b) Dead ReLUs: a unit whose pre-activation is <= 0 on every training image outputs 0 and gets
    0 gradient, for good. Adam with a step of 0.1 pushes most units of the deeper layers
    there within a few steps; a bias initialised at -1 starts them there. Fixes: a 10x
    smaller step, or batchnorm (which recentres each pre-activation whatever its bias); a
    leaky ReLU of slope 0.01 does not rescue the -1 bias (100x less signal per layer).
(c) A learning rate 10x too high: SGD with momentum at 1.0 instead of 0.1 overshoots, the
    loss climbs until it overflows (or the units die); Adam at 0.1 instead of 0.01 (from (b))
    oscillates and ends far higher.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scratch_models.fc_net import FullyConnectedNet, History, train

BATCH_SIZE = 100
FULL_ITERS = 600
QUICK_ITERS = 60
WINDOW = 20  # iterations averaged for "initial" and "final" numbers
DEAD_EVERY = 10  # iterations between two counts of dead units (a pass over the training set)


@dataclass
class Run:
    """One training run: its label, history, held-out accuracy and dead-unit trace."""

    label: str
    history: History
    val_accuracy: float
    dead: list[list[float]] = field(default_factory=list)  # per count, per hidden layer
    dead_at: list[int] = field(default_factory=list)  # iterations done at each count

    def initial(self, layer: int) -> float:
        """Mean |dW_layer| over the first WINDOW iterations."""
        return float(np.mean(self.history.grad_norms[f"W{layer}"][:WINDOW]))

    def final_loss(self) -> float:
        """Mean mini-batch loss over the last WINDOW iterations."""
        return float(np.mean(self.history.loss[-WINDOW:]))


def load_data(seed: int = 0):
    """Digits as ``(X_train, y_train, X_val, y_val)``: pixels / 16, centred on the train mean."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(X))
    train_idx, val_idx = order[:1400], order[1400:]
    X = X / 16
    X = X - X[train_idx].mean(axis=0)
    return X[train_idx], y[train_idx], X[val_idx], y[val_idx]


def dead_fractions(net: FullyConnectedNet, X: np.ndarray) -> list[float]:
    """Per hidden layer, the fraction of units whose pre-activation is <= 0 on every row of X."""
    with np.errstate(over="ignore", invalid="ignore"):
        return [float(np.mean(np.all(~(p > 0), axis=0))) for p in net.preactivations(X)]


def run(label, data, iters, *, hidden, rule, lr, track_dead=False, seed=0, **net_kwargs) -> Run:
    """Train one network and measure it."""
    X, y, X_val, y_val = data
    net = FullyConnectedNet(hidden, X.shape[1], 10, seed=seed, **net_kwargs)
    dead = [dead_fractions(net, X)] if track_dead else []
    dead_at = [0] if track_dead else []

    def record(iteration, net):
        if (iteration + 1) % DEAD_EVERY == 0 or iteration + 1 == iters:
            dead.append(dead_fractions(net, X))
            dead_at.append(iteration + 1)

    history = train(
        net,
        X,
        y,
        update_rule=rule,
        optim_config={"learning_rate": lr},
        batch_size=BATCH_SIZE,
        num_iters=iters,
        seed=seed,
        callback=record if track_dead else None,
    )
    with np.errstate(over="ignore", invalid="ignore"):
        accuracy = float(np.mean(net.predict(X_val) == y_val))
    return Run(label, history, accuracy, dead, dead_at)


def vanishing_gradients(data, iters, seed=0) -> list[Run]:
    """(a) A deep sigmoid net at std 0.01, then ReLU + He and sigmoid + batchnorm."""
    deep, common = [64] * 7, {"rule": "sgd_momentum", "lr": 0.05, "seed": seed}
    return [
        run(
            "sigmoid, std 0.01",
            data,
            iters,
            hidden=deep,
            activation="sigmoid",
            init="small",
            **common,
        ),
        run("ReLU, He", data, iters, hidden=deep, activation="relu", init="he", **common),
        run(
            "sigmoid, std 0.01, batchnorm",
            data,
            iters,
            hidden=deep,
            activation="sigmoid",
            init="small",
            normalization="batchnorm",
            **common,
        ),
    ]


def dead_relus(data, iters, seed=0) -> list[Run]:
    """(b) Units killed by a large Adam step or a -1 bias, and the fixes; dead units tracked."""
    common = {"hidden": [100] * 3, "track_dead": True, "seed": seed}
    return [
        run("Adam lr 0.1", data, iters, rule="adam", lr=0.1, **common),
        run("Adam lr 0.01", data, iters, rule="adam", lr=0.01, **common),
        run(
            "Adam lr 0.1, batchnorm",
            data,
            iters,
            rule="adam",
            lr=0.1,
            normalization="batchnorm",
            **common,
        ),
        run("bias -1, SGD lr 0.1", data, iters, rule="sgd", lr=0.1, bias_init=-1.0, **common),
        run(
            "bias -1, SGD lr 0.1, batchnorm",
            data,
            iters,
            rule="sgd",
            lr=0.1,
            bias_init=-1.0,
            normalization="batchnorm",
            **common,
        ),
        run(
            "bias -1, SGD lr 0.1, leaky ReLU",
            data,
            iters,
            rule="sgd",
            lr=0.1,
            bias_init=-1.0,
            activation="leaky_relu",
            **common,
        ),
    ]


def learning_rate(data, iters, seed=0) -> list[Run]:
    """(c) SGD with momentum at 1.0 (10x too high) and at 0.1."""
    common = {"hidden": [100] * 3, "rule": "sgd_momentum", "seed": seed}
    return [
        run("momentum lr 1.0 (10x)", data, iters, lr=1.0, **common),
        run("momentum lr 0.1", data, iters, lr=0.1, **common),
    ]


def _plot_grad_norms(ax, r: Run):
    import matplotlib.pyplot as plt

    names = list(r.history.grad_norms)
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(names)))
    for name, color in zip(names, colors, strict=True):
        ax.semilogy(r.history.grad_norms[name], color=color, lw=1, label=name)
    ax.set(title=f"|dW| per layer: {r.label}", xlabel="iteration")
    ax.legend(fontsize=6, ncol=2)


def _plot_losses(ax, runs: list[Run], log=False):
    for r in runs:
        (ax.semilogy if log else ax.plot)(r.history.loss, lw=1, label=r.label)
    ax.set(title="mini-batch loss", xlabel="iteration")
    ax.legend(fontsize=7)


def _save(fig, path: Path):
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.14, top=0.91, wspace=0.22)
    fig.savefig(path, dpi=80)


def summarise(a: list[Run], b: list[Run], c: list[Run]) -> dict:
    """The numbers the write-up quotes."""

    def last(r):
        return len(r.history.grad_norms)

    return {
        "vanishing": {
            r.label: {
                "first_layer_grad": r.initial(1),
                "last_layer_grad": r.initial(last(r)),
                "ratio_first_to_last": r.initial(1) / r.initial(last(r)),
                "gain_per_layer": (r.initial(1) / r.initial(last(r))) ** (1 / (last(r) - 1)),
                "final_loss": r.final_loss(),
                "val_accuracy": r.val_accuracy,
            }
            for r in a
        },
        "dead_relus": {
            r.label: {
                "dead_at_init": r.dead[0],
                f"dead_after_{r.dead_at[1]}_iterations": r.dead[1],
                "dead_at_end": r.dead[-1],
                "final_loss": r.final_loss(),
                "val_accuracy": r.val_accuracy,
            }
            for r in b
        },
        "learning_rate": {
            r.label: {
                "final_loss": r.final_loss(),
                "max_loss": float(np.max(r.history.loss)),
                "diverged_at": len(r.history.loss) if r.history.diverged else None,
                "loss_std_last_100": float(np.std(r.history.loss[-100:])),
                "val_accuracy": r.val_accuracy,
            }
            for r in [*c, *b[:2]]
        },
    }


def main(argv: list[str] | None = None) -> dict:
    """Run the three experiments, write their PNGs into ``--out`` and return the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ITERS} iterations a run")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    iters = QUICK_ITERS if args.quick else FULL_ITERS
    data = load_data(args.seed)
    a = vanishing_gradients(data, iters, args.seed)
    b = dead_relus(data, iters, args.seed)
    c = learning_rate(data, iters, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    _plot_grad_norms(axes[0], a[0])
    _plot_grad_norms(axes[1], a[1])
    _plot_losses(axes[2], a)
    _save(fig, args.out / "vanishing-gradients.png")

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for r in b:
        axes[0].plot(r.dead_at, np.mean(r.dead, axis=1), lw=1, label=r.label)
    axes[0].set(title="dead ReLU fraction (all hidden layers)", xlabel="iteration")
    axes[0].set(ylim=(-0.02, 1.45), yticks=np.linspace(0, 1, 6))  # room for the legend
    axes[0].legend(fontsize=6, loc="upper center", ncol=2)
    _plot_grad_norms(axes[1], b[0])
    _plot_losses(axes[2], b, log=True)
    _save(fig, args.out / "dead-relus.png")

    fig, axes = plt.subplots(1, 4, figsize=(15, 3.4))
    _plot_grad_norms(axes[0], c[0])
    _plot_grad_norms(axes[1], c[1])
    _plot_losses(axes[2], c, log=True)
    _plot_losses(axes[3], b[:2], log=True)  # (b)'s Adam pair: 0.1 is 10x the good rate too
    _save(fig, args.out / "learning-rate.png")
    plt.close("all")
    return summarise(a, b, c)


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
